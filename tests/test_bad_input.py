"""The bad-input catalog: each case is one line on stderr with a hint, exit ≠ 0,
no traceback, and nothing changed in Redis.  docs/troubleshooting.md lists these cases."""

from __future__ import annotations


import pytest

from tests.conftest import _delete_namespace

# The module's dataset is under the course's own key names, which every client of a server shares.
pytestmark = pytest.mark.server_wide


def snapshot(r):
    """Every key of the course's names (hash-tagged ones on a cluster) with its type and content; other tests'
    namespaces on a shared server are not this test's."""
    from labkit.core.keyspace import scan_keys
    out = {}
    for k in sorted(scan_keys(r, "*")):   # every master of a cluster
        if not (k.startswith(("temps:", "{temps:")) or k in ("aggregating_consumer_state", "averages_consumer_state")):
            continue
        t = r.type(k)
        if t == b"stream":
            out[k] = (t, r.xlen(k), r.xrevrange(k, count=1))
        elif t == b"hash":
            out[k] = (t, r.hgetall(k))
        else:
            out[k] = (t, r.dump(k))
    return out


@pytest.fixture(scope="module")
def dataset(target, lab_home):
    """Two small partitions under the course's names, produced once for the module."""
    from labkit.servers import connection
    from labkit.core import producer
    from labkit.core.keys import Keys
    r = connection.connect(target)
    _delete_namespace(r, Keys(""))
    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 2, 60_000), Keys(""))
    yield
    _delete_namespace(r, Keys(""))
    r.close()


def _closed_port() -> int:
    """A free port on 127.0.0.1: nothing listens there."""
    from labkit.servers.embedded import free_port
    return free_port()


def url_with(target, **parts) -> str:
    from urllib.parse import urlsplit
    u = urlsplit(target.url)
    scheme = parts.get("scheme", u.scheme)
    pw = parts.get("password", u.password)
    port = parts.get("port", u.port)
    return f"{scheme}://{(':' + pw + '@') if pw else ''}{u.hostname}:{port}/0"


def _state(r) -> str:
    """The aggregating state's name for the server ``r`` talks to (hash-tagged on a cluster)."""
    from labkit.core.keys import Keys
    from labkit.core.keyspace import keys_for
    return keys_for(r, Keys("")).aggregating_state


# (id, argv, extra env or callable(target)->env, setup(r) or None, words the message must contain)
CASES = [
    ("partition-missing", ["consume", "temps:20250120"], None, None, "existing partitions: temps:20250101"),
    ("resume-without-state", ["consume"], None, None, "no saved state"),
    ("state-missing-fields", ["consume"], None,
     lambda r: r.hset(_state(r), "current_stream_key", "temps:20250101"), "missing"),
    ("state-corrupt-count", ["consume"], None,
     lambda r: r.hset(_state(r), mapping={
         "current_stream_key": "temps:20250101", "last_message_id": "0",
         "current_hourly_total": "x", "current_hourly_count": "1"}), "corrupt"),
    ("state-corrupt-id", ["consume"], None,
     lambda r: r.hset(_state(r), mapping={
         "current_stream_key": "temps:20250101", "last_message_id": "yesterday",
         "current_hourly_total": "0", "current_hourly_count": "0"}), "not a stream ID"),
    ("averages-wrong-type", ["consume", "temps:20250101"], None,
     lambda r: r.set("temps:averages", "oops"), "holds a string"),
    ("state-wrong-type", ["consume"], None,
     lambda r: r.set(_state(r), "oops"), "holds a string"),
    ("url-wrong-port", ["verify"], lambda t: {"REDIS_URL": url_with(t, port=_closed_port())}, None, "cannot reach"),
    ("url-wrong-password", ["verify"], lambda t: {"REDIS_URL": url_with(t, password="wrong-password")}, None,
     "refused the credentials"),
    ("url-tls-to-plain", ["verify"], lambda t: {"REDIS_URL": url_with(t, scheme="rediss")}, None, "TLS"),
    ("consume-huge-maxlen", ["consume", "temps:20250101", "--averages-maxlen", "9223372036854775808"], None,
     lambda r: r.xadd("temps:averages", {"hour": "0"}, id="1-0"), "above 1,000,000,000"),   # nothing reset
    ("verify-accept-not-a-name", ["verify", "--accept", "foo"], None, None, "names neither a partition"),
    ("partition-with-dashes", ["consume", "temps:2025-01-01"], None, None, "not a partition name"),
    ("partition-month-13", ["consume", "temps:20251301"], None, None, "names no calendar date"),
    ("partition-feb-30", ["consume", "temps:20250230"], None, None, "names no calendar date"),
    ("partition-prefix-only", ["consume", "temps:"], None, None, "not a partition name"),
    ("partition-other-prefix", ["consume", "other:20250101"], None, None, "not a partition name"),
    ("partition-empty", ["consume", ""], None, None, "not a partition name"),
    ("partition-spaces", ["consume", "temps: 20250101"], None, None, "not a partition name"),
    ("partition-unicode-digits", ["consume", "temps:２０２５０１０１"], None, None, "not a partition name"),
    ("produce-retention-too-short", ["produce", "--retention-days", "0.5"], None, None, "--retention-days"),
    ("consume-negative-maxlen", ["consume", "temps:20250101", "--averages-maxlen", "-1"], None, None, "negative"),
]

# Refused before labkit connects: REDIS_URL names a closed port in their test (the url-malformed ones their
# own), so what they check does not depend on any server; they run without one.
ARG_CASES = [
    ("url-malformed-scheme", ["verify"], lambda t: {"REDIS_URL": "http://127.0.0.1:6379"}, None, "not a Redis URL"),
    ("url-malformed-port", ["verify"], lambda t: {"REDIS_URL": "redis://127.0.0.1:notaport"}, None, "malformed"),
    ("produce-days-zero", ["produce", "--days", "0"], None, None, "--days"),
    ("produce-days-negative", ["produce", "--days", "-1"], None, None, "--days"),
    ("produce-interval-zero", ["produce", "--interval", "0"], None, None, "--interval"),
    ("produce-start-unparsable", ["produce", "--start", "2025-13-01"], None, None, "is not a date"),
    ("produce-start-words", ["produce", "--start", "yesterday"], None, None, "is not a date"),
    ("consume-idle-exit-zero", ["consume", "temps:20250101", "--idle-exit", "0"], None, None, "--idle-exit"),
    ("unknown-option", ["produce", "--dayz", "3"], None, None, "unrecognized arguments"),
    ("not-a-number", ["produce", "--days", "ten"], None, None, "invalid float value"),
    ("lab-port-out-of-range", ["lab", "--port", "99999"], None, None, "use 1 to 65535"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_with_a_hint_and_changes_nothing(case, cli, r, target, dataset):
    name, argv, env, setup, words = case
    try:
        if setup:
            setup(r)
        before = snapshot(r)
        res = cli(*argv, env=env(target) if env else None, timeout=60)
        assert res.returncode != 0
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        assert lines[0].startswith("labkit: error: ") and "(hint: " in lines[0], lines[0]
        assert words in lines[0], lines[0]
        assert "Traceback" not in res.stderr + res.stdout
        assert snapshot(r) == before
        from urllib.parse import urlsplit
        pw = urlsplit(target.url).password
        assert not pw or pw not in res.stderr + res.stdout
    finally:
        r.delete(_state(r), "averages_consumer_state", "temps:averages")


@pytest.mark.parametrize("case", ARG_CASES, ids=[c[0] for c in ARG_CASES])
def test_bad_arguments_are_refused_in_one_line_before_anything_connects(case, tmp_path):
    """No server at all: REDIS_URL names a port nothing listens on, so a case that reached Redis would say
    "cannot reach" instead of its own words."""
    import os
    import subprocess
    import sys
    from tests.conftest import ROOT
    name, argv, env, setup, words = case
    e = {k: v for k, v in os.environ.items() if k not in ("LABKIT_NAMESPACE", "NO_COLOR")}
    e.update(LABKIT_HOME=str(tmp_path), PYTHONPATH=str(ROOT), REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    e.update(env(None) if env else {})
    res = subprocess.run([sys.executable, "-m", "labkit", *argv], capture_output=True, text=True, env=e,
                         timeout=60, cwd=ROOT)
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1, res.stderr
    assert lines[0].startswith("labkit: error: ") and "(hint: " in lines[0] and words in lines[0], lines[0]
    assert "Traceback" not in res.stderr + res.stdout
