"""Refusals met in operation: a password rotated mid-run, an ACL that fences keys or commands, a clock behind the
partition's newest reading.  Each is one line with a hint, said at once, and nothing is written wrongly."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis

from labkit.core import producer
from labkit.core.keys import Keys
from labkit.core.live import run_live
from labkit.core.partition import day_of, partition_name
from labkit.errors import LabkitError
from labkit.log import ListSink
from labkit.servers import connection
from labkit.servers.embedded import free_port
from tests.conftest import ROOT
from tests.helpers import need_program, wait_for


def one_error_line(stderr: str) -> str:
    """The CLI's one error line (what it printed before, e.g. course lines, aside); no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("labkit: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def rotate_password(r, password: str = "rotated-sekrit") -> None:
    """What an admin does: a new password for the default user, then every client is disconnected."""
    r.config_set("requirepass", password)
    r.client_kill_filter(_type="normal")    # SKIPME yes: this admin connection stays


# ---------------------------------------------------------------- a password rotated mid-run

def test_a_refused_password_is_not_a_lost_connection():
    assert not connection.is_lost(redis.AuthenticationError("invalid username-password pair"))
    assert connection.is_lost(redis.ConnectionError("Connection closed by server."))


@pytest.fixture
def plain_server(tmp_path):
    """Debian's redis-server on a free loopback port, without a password (as in a learner's own install);
    stopped by its PID."""
    binary = need_program("redis-server", "apt-get install redis-server")
    port = free_port()
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = connection.Target(f"redis://127.0.0.1:{port}/0", embedded=False)
    probe = redis.Redis(port=port)
    try:
        wait_for(lambda: _answers(probe), timeout=10)
        yield t
    finally:
        probe.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def _answers(r) -> bool:
    try:
        return bool(r.ping())
    except redis.ConnectionError:
        return False


@pytest.mark.integration
@pytest.mark.own_server
def test_consume_stops_at_once_when_the_password_is_rotated(plain_server, tmp_path):
    t = plain_server
    r = connection.connect(t)
    keys = Keys("rot")
    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 1, 60_000), keys)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR",)}
    env.update(REDIS_URL=t.url, LABKIT_HOME=str(tmp_path / "home"), LABKIT_NAMESPACE=keys.namespace,
               PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "labkit", "consume", keys.partition_prefix + "20250101",
                          "--reconnect-seconds", "30"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: r.xlen(keys.averages) >= 24 or p.poll() is not None, timeout=60)
        time.sleep(0.3)     # both consumers now wait in blocking reads
        rotate_password(r)
        began = time.monotonic()
        _, err = p.communicate(timeout=40)
    finally:
        if p.poll() is None:
            p.kill()
    assert time.monotonic() - began < 5, err      # not the 30 s reconnect window, nor seconds of retries
    assert p.returncode != 0
    line = one_error_line(err)
    assert "refused the credentials" in line and "check the user and password in REDIS_URL" in line, line
    assert "cannot reach" not in err


def test_produce_stops_at_once_when_the_password_is_rotated(own_server):
    home, t = own_server
    r = connection.connect(t)
    admin = connection.connect(t)
    keys = Keys("rotprod")
    seen = []

    def rotate(n):
        seen.append(n)
        if len(seen) == 3:     # mid-way through the first partition
            rotate_password(admin)

    began = time.monotonic()
    with pytest.raises((redis.AuthenticationError, LabkitError)) as exc:
        producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 2), keys, ListSink(),
                         progress=rotate, reconnect_s=30)
    assert time.monotonic() - began < 5
    assert "refused the credentials" in connection.failure(exc.value, t).text


def test_live_stops_at_once_when_the_password_is_rotated(own_server):
    home, t = own_server
    r = connection.connect(t)
    admin = connection.connect(t)
    keys = Keys("rotlive")
    out = {}

    def run():
        try:
            run_live(r, keys, rate=200, duration=40, reconnect_s=30)
        except BaseException as exc:    # noqa: BLE001 - the test reads it
            out["error"] = exc

    th = threading.Thread(target=run, daemon=True)
    th.start()
    today = partition_name(day_of(int(time.time() * 1000)), keys.partition_prefix)
    wait_for(lambda: admin.exists(today), timeout=20)
    rotate_password(admin)
    began = time.monotonic()
    th.join(timeout=35)
    assert not th.is_alive() and time.monotonic() - began < 5
    assert "refused the credentials" in connection.failure(out["error"], t).text


# ---------------------------------------------------------------- an ACL that fences keys or commands

@pytest.mark.classroom
@pytest.mark.parametrize("bobs", [True, False], ids=["other-namespace", "no-namespace"])
def test_a_namespace_outside_the_users_acl_is_named_with_the_fix(cli, r, two_learners, bobs):
    alice, bob = two_learners
    env = {"REDIS_URL": two_learners[alice]}
    if bobs:
        env["LABKIT_NAMESPACE"] = bob
    res = cli("produce", "--days", "1", "--interval", "3600", env=env)
    assert res.returncode != 0
    line = one_error_line(res.stderr)
    named = f"for namespace '{bob}'" if bobs else "under the course's own names (LABKIT_NAMESPACE is unset)"
    assert "ACL" in line and "refused labkit's keys" in line and named in line, line
    assert f"user 'labkit-{alice}'" in line, line
    assert "set LABKIT_NAMESPACE to the namespace your Redis user may use" in line and "instructor" in line, line
    if bobs:
        assert not r.exists(Keys(bob).producer_lease)


@pytest.mark.classroom
def test_a_command_outside_the_users_acl_is_named_as_a_command(r, two_learners):
    alice, _ = two_learners
    t = connection.Target(two_learners[alice], embedded=False)
    learner = connection.connect(t)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError) as exc:
            learner.config_get("maxmemory")
    finally:
        learner.close()
    err = connection.explain(exc.value, t)
    assert "refused the command CONFIG GET" in err.message and f"user 'labkit-{alice}'" in err.message, err
    assert "keys" not in err.message and "instructor" in err.hint, err


# ---------------------------------------------------------------- a clock behind the partition's newest reading

def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _partitions(r, keys: Keys) -> dict:
    """What live mode wrote: each partition's length, newest reading and manifest record."""
    names = [partition_name(day_of(int(time.time() * 1000)) + dt.timedelta(days=d), keys.partition_prefix)
             for d in (-1, 0, 1)]
    return {n: (r.xlen(n), r.xrevrange(n, count=1), r.hget(keys.manifest, n)) for n in names}


def test_live_refuses_a_clock_behind_the_partitions_newest_reading(r, keys):
    run_live(r, keys, rate=50, duration=1)
    before = _partitions(r, keys)
    newest = max(int(top[0][0].split(b"-")[0]) for _, top, _ in before.values() if top)
    with pytest.raises(LabkitError) as exc:
        run_live(r, keys, rate=50, duration=1, clock=lambda: time.time() - 30)
    err = exc.value
    assert "the clock given" in err.message and "behind the newest reading" in err.message, err
    assert _utc(newest) in err.message and "UTC" in err.message, err
    assert "NTP" in err.hint and "wait" in err.hint, err
    assert _partitions(r, keys) == before                   # nothing written
    assert not r.exists(keys.producer_lease)                # and the lease let go


def test_live_cli_names_this_machines_clock(cli, r, keys):
    run_live(r, keys, rate=50, duration=1, clock=lambda: time.time() + 120)   # written by a clock ahead
    before = _partitions(r, keys)
    res = cli("produce", "--live", "--rate", "50", "--duration", "1", namespace=keys.namespace)
    assert res.returncode != 0
    line = one_error_line(res.stderr)
    assert "this machine's clock" in line and "behind the newest reading" in line and "UTC" in line, line
    assert "Command #" not in line and "pipeline" not in line, line
    assert _partitions(r, keys) == before
