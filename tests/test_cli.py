"""The terminal front end, run as a learner runs it: ``python -m labkit …`` in a subprocess."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from labkit.core.keys import Keys
from tests.conftest import ROOT
from tests.helpers import check

NS = "cli"  # cleaned by the keys fixture pattern below


@pytest.fixture
def ns_keys(r):
    from tests.conftest import _delete_namespace
    from labkit.core.keyspace import keys_for
    k = keys_for(r, Keys(NS + str(os.getpid())))   # hash-tagged when REDIS_URL names a cluster
    _delete_namespace(r, k)
    yield k
    _delete_namespace(r, k)


def test_produce_prints_the_course_lines(cli, ns_keys):
    res = cli("produce", "--days", "2", "--interval", "60", namespace=ns_keys.namespace)
    assert res.returncode == 0, res.stderr
    p = ns_keys.partition_prefix
    assert res.stdout.splitlines() == ["Deleting old streams:", f"{p}20250101", f"{p}20250102",
                                       f"Populating stream partition {p}20250101.",
                                       f"Populating stream partition {p}20250102."]
    assert "Wrote 2,880 readings to 2 partitions" in res.stderr


def test_demo_the_readmes_main_job_verifies_every_hour_and_saves_its_plot(cli, ns_keys, r, tmp_path):
    """The README's first command ends in ``python -m labkit demo``; here on 2.5 days, then on 1.5 (36 hours, the
    final one included) over what the first run left (a learner runs it again, smaller: the days the first wrote
    and the second does not are the demo's leftovers, cleared first; a key it did not write stays)."""
    from tests.conftest import _delete_namespace
    from labkit.core.keyspace import keys_for
    from labkit.core.runner import list_partitions
    demo_keys = keys_for(r, Keys(ns_keys.namespace + "-demo"))    # the demo's own namespace, apart from the lab's
    mine = demo_keys.key("notes")
    try:
        r.set(mine, "not the demo's")
        for run, days, hours in ((1, "2.5", 60), (2, "1.5", 36)):
            plot = tmp_path / f"demo{run}.png"
            res = cli("demo", "--days", days, "--plot", str(plot), namespace=ns_keys.namespace, timeout=300)
            assert res.returncode == 0, res.stdout + res.stderr
            assert res.stdout.splitlines()[-1] == f"demo: {hours}/{hours} hours verified", res.stdout
            assert f"the data stays in namespace {demo_keys.namespace}" in res.stdout
            assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
            rep, averages, _ = check(r, demo_keys)
            assert rep.ok and rep.matched == hours == len(averages)
        assert len(list_partitions(r, demo_keys)) == 2 and r.get(mine) == b"not the demo's"
        bad = cli("demo", "--days", "1", "--plot", str(tmp_path / "no" / "such" / "dir.png"), namespace=ns_keys.namespace)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr and "--plot" in bad.stderr, bad.stderr
        assert len(list_partitions(r, demo_keys)) == 2            # refused before anything was written
        # The notebooks (LABKIT_NAMESPACE as it was) find nothing of the demo's.
        assert list_partitions(r, ns_keys) == [] and not r.exists(ns_keys.averages)
    finally:
        _delete_namespace(r, demo_keys)


def test_done_when_full_dataset_240_hours_then_144_from_day_5(cli, course_keys, r):
    assert cli("produce", "--no-progress").returncode == 0
    res = cli("consume", "temps:20250101", "--averages-maxlen", "0", "--idle-exit", "1")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "agg: Starting aggregating consumer in stream temps:20250101 at message 0." or \
        lines[1] == "agg: Starting aggregating consumer in stream temps:20250101 at message 0."
    assert "agg: Changing partition to consume stream: temps:20250110" in lines
    assert sum(l.startswith("avg: Average temperature for ") for l in lines) == 240
    assert "\x1b[" not in res.stdout       # not a TTY: no colour codes
    v = cli("verify")
    assert v.returncode == 0 and "240 hours compared: 240 matched, 0 mismatched, 0 missing" in v.stdout
    res = cli("consume", "temps:20250105", "--averages-maxlen", "0", "--idle-exit", "1")
    assert res.returncode == 0
    avgs = [l for l in res.stdout.splitlines() if l.startswith("avg: Average")]
    assert len(avgs) == 144 and avgs[0].startswith("avg: Average temperature for 2025/01/05 at 0 was ")
    rep, averages, _ = check(r, course_keys)
    assert rep.ok and rep.matched == 144 and len(averages) == 144


def test_verify_imports_neither_pandas_nor_numpy(cli, ns_keys):
    """verify's time is much start-up: the command audits on plain Python structures (labkit.core.audit,
    summed by labkit.core.tally); pandas stays at the notebooks' edge (labkit.core.truth), numpy with the
    producer and the consumer's fast fold."""
    ns = ns_keys.namespace
    assert cli("produce", "--days", "1", "--interval", "60", namespace=ns).returncode == 0
    assert cli("consume", f"{ns}:temps:20250101", "--idle-exit", "1", namespace=ns).returncode == 0
    v = cli("verify", namespace=ns, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert v.returncode == 0, v.stdout + v.stderr
    assert "24 hours compared: 24 matched" in v.stdout
    imported = {line.split("|")[-1].strip() for line in v.stderr.splitlines() if line.startswith("import time:")}
    assert "labkit.core.audit" in imported             # the profile is there: the check below can see
    for heavy in ("pandas", "numpy"):
        assert not {m for m in imported if m == heavy or m.startswith(heavy + ".")}, f"verify imported {heavy}"


def test_capped_averages_verify_counts_trimmed(cli, ns_keys):
    ns = ns_keys.namespace
    cli("produce", "--interval", "60", namespace=ns)
    assert cli("consume", f"{ns}:temps:20250101", "--idle-exit", "1", namespace=ns).returncode == 0
    v = cli("verify", namespace=ns)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "0 mismatched, 0 missing, 100 trimmed by the cap" in v.stdout


def test_kill_9_at_random_moments_loses_and_repeats_no_hour(cli, ns_keys, r, target, lab_home):
    ns = ns_keys.namespace
    assert cli("produce", "--days", "3", "--no-progress", namespace=ns).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(LABKIT_HOME=str(lab_home), PYTHONPATH=str(ROOT), LABKIT_NAMESPACE=ns)
    if not target.embedded:
        env["REDIS_URL"] = target.url
    rnd = random.Random(int(os.environ.get("LABKIT_TEST_SEED", time.time())))
    # Kill when the saved position passes random points of the first 80% of the data, so every
    # kill lands mid-run, however fast the server is.
    t0 = 1735689600000
    points = sorted(rnd.uniform(0, 0.8 * 3 * 86_400_000) for _ in range(6))
    kills = 0
    args = [f"{ns}:temps:20250101"]
    for point in points:
        p = subprocess.Popen([sys.executable, "-m", "labkit", "consume", *args, "--averages-maxlen", "0"],
                             env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        args = []
        deadline = time.monotonic() + 30
        while p.poll() is None and time.monotonic() < deadline:
            last = r.hget(ns_keys.aggregating_state, "last_message_id")
            if last and last != b"0" and int(last.split(b"-")[0]) - t0 >= point:
                break
            time.sleep(0.001)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        kills += 1
    before = r.xlen(ns_keys.averages)
    assert before < 72            # the kills really interrupted work
    res = cli("consume", "--averages-maxlen", "0", "--idle-exit", "1", namespace=ns)
    assert res.returncode == 0, res.stderr
    rep, averages, _ = check(r, ns_keys)
    assert rep.ok and rep.matched == 72 and rep.duplicates == 0 and len(averages) == 72, (kills, rep.summary())


def test_ctrl_c_stops_promptly_with_state_saved(cli, ns_keys, r, target, lab_home):
    ns = ns_keys.namespace
    cli("produce", "--days", "1", "--interval", "60", namespace=ns)
    env = dict(os.environ, LABKIT_HOME=str(lab_home), PYTHONPATH=str(ROOT), LABKIT_NAMESPACE=ns)
    if not target.embedded:
        env["REDIS_URL"] = target.url
    p = subprocess.Popen([sys.executable, "-m", "labkit", "consume", f"{ns}:temps:20250101"], env=env, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while r.xlen(ns_keys.averages) < 24 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # both consumers now wait in blocking reads
    t = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    # The README says "within a second" (measured on an idle machine); the bound leaves room for a busy one (the
    # suite runs four workers on two cores) and still fails a stop that waits for a timeout instead.
    assert time.monotonic() - t < 2.0
    assert p.returncode == 130 and "Traceback" not in err
    assert r.hget(ns_keys.averages_state, "last_message_id") == r.xrevrange(ns_keys.averages, count=1)[0][0]
    assert r.hget(ns_keys.aggregating_state, "current_stream_key") == f"{ns}:temps:20250101".encode()


def test_server_commands_mask_the_password(cli, target):
    res = cli("server", "status")
    assert res.returncode == 0, res.stderr
    assert "redis_version" in res.stdout
    url = cli("server", "url")
    assert url.returncode == 0 and "***" in url.stdout
    from urllib.parse import urlsplit
    pw = urlsplit(target.url).password
    if pw:
        assert pw not in res.stdout + res.stderr + url.stdout
        assert pw in cli("server", "url", "--reveal").stdout


def test_server_url_is_what_redis_cli_takes(cli):
    """The notebooks' "type it yourself" line, ``redis-cli -u "$(python -m labkit server url --reveal)"``, logs
    in (Debian 12's redis-cli 7.0 refused the embedded server's ``redis://:pw@`` with WRONGPASS)."""
    import shutil
    from labkit.servers.connection import cli_url
    assert cli_url("redis://:pw@h:1/0") == "redis://default:pw@h:1/0"
    assert cli_url("rediss://u:pw@h:1") == "rediss://u:pw@h:1" and cli_url("redis://h:1/0") == "redis://h:1/0"
    if not shutil.which("redis-cli"):
        pytest.skip("redis-cli is not installed (apt install redis-tools): CI installs it")
    url = cli("server", "url", "--reveal").stdout.strip()
    res = subprocess.run(["redis-cli", "-u", url, "PING"], capture_output=True, text=True, timeout=30)
    assert res.stdout.strip() == "PONG", res.stdout + res.stderr


def test_lab_command_line_adds_what_this_machine_needs():
    from pathlib import Path
    from labkit.commands.lab import command
    as_root = command(8899, "t0k", Path("/x/notebooks"), browser=False, is_root=True)
    assert as_root[1:3] == ["-m", "jupyterlab"] and "--allow-root" in as_root and "--no-browser" in as_root
    assert as_root[as_root.index("--ip") + 1] == "127.0.0.1" and "--ServerApp.root_dir=/x/notebooks" in as_root
    assert "--allow-root" not in command(8899, "t0k", Path("/x"), browser=True, is_root=False)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_lab_opens_jupyterlab_on_the_notebooks_and_prints_its_url(tmp_path):
    """``python -m labkit lab`` (the README's third command) starts JupyterLab, as root here too, prints a URL
    that answers with the notebooks, and stops it (and its process group) on SIGTERM."""
    import json
    import re
    import urllib.request
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_CONFIG_DIR",)}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "jconfig"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jruntime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "jworkspaces"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "labkit", "lab", "--no-browser"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 120
        seen = []
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = re.search(r"open (http://127\.0\.0\.1:\d+)/lab/tree/00-start-here\.ipynb\?token=(\w+)", line)
            if m:
                url = m.groups()
        assert url, "".join(seen) + proc.stderr.read() if proc.poll() is not None else "".join(seen)
        base, token = url
        if os.geteuid() == 0:
            assert any("--allow-root" in line for line in seen), seen
        page = urllib.request.urlopen(f"{base}/lab/tree/00-start-here.ipynb?token={token}", timeout=10)
        assert page.status == 200 and "JupyterLab" in page.read().decode()
        listing = json.loads(urllib.request.urlopen(f"{base}/api/contents?token={token}", timeout=10).read())
        names = {item["name"] for item in listing["content"]}
        assert {"00-start-here.ipynb", "04-running-the-consumers.ipynb"} <= names, names
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    assert rc == 143, (rc, proc.stderr.read())
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=3)


def test_verify_before_any_consume_says_there_is_nothing_to_verify(cli, ns_keys):
    """Partitions produced, nothing consumed yet: one line saying so, not a 'lost' line for every hour."""
    assert cli("produce", "--days", "1", "--interval", "60", namespace=ns_keys.namespace).returncode == 0
    v = cli("verify", namespace=ns_keys.namespace)
    assert v.returncode == 2 and "nothing to verify" in v.stderr and "lost:" not in v.stdout, v.stdout + v.stderr
    assert f"consume {ns_keys.partition_prefix}YYYYMMDD" in v.stderr
