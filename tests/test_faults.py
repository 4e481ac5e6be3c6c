"""Faults: the server restarting or vanishing under running consumers and producer."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest
import redis

from labkit.servers import connection, embedded as server
from labkit.core import producer
from labkit.core.keys import Keys
from labkit.errors import LabkitError
from labkit.log import ListSink
from labkit.core.runner import start_consumers
from tests.helpers import check


def test_consumers_ride_out_a_server_restart(own_server):
    home, t = own_server
    r = connection.connect(t)
    keys = Keys("restart")
    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 3), keys)
    sink = ListSink()
    h = start_consumers(keys.partition_prefix + "20250101", averages_maxlen=0, sink=sink, keys=keys, target=t,
                        batch=2000, reconnect_s=30)
    while h.status()["readings"] < 40_000:
        time.sleep(0.001)
    info_before = server.read_info(home)
    server.stop(home)           # SIGTERM: the server writes its AOF and exits
    time.sleep(0.5)
    info_after, started = server.start(home)
    assert started and info_after.port == info_before.port
    assert h.wait_idle(0.5, timeout=60), h.status()
    h.stop()
    assert h.error is None and h.status()["reconnects"] >= 1
    texts = sink.texts()
    assert any("lost the connection to Redis" in l for l in texts)
    assert any("reconnected to Redis" in l for l in texts)
    r = connection.connect(t)
    rep, averages, _ = check(r, keys)
    assert rep.ok and rep.matched == 72 and rep.duplicates == 0


def test_server_gone_too_long_stops_cleanly_with_state_intact(own_server):
    home, t = own_server
    r = connection.connect(t)
    keys = Keys("gone")
    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 2), keys)
    sink = ListSink()
    h = start_consumers(keys.partition_prefix + "20250101", averages_maxlen=0, sink=sink, keys=keys, target=t,
                        batch=2000, reconnect_s=1.0)
    while h.status()["readings"] < 30_000:
        time.sleep(0.001)
    server.stop(home)
    h.join(timeout=20)
    assert not h.running and h.error is not None and "cannot reach Redis" in str(h.error)
    server.start(home)
    r = connection.connect(t)
    assert r.hgetall(keys.aggregating_state)   # state survived (AOF)
    h2 = start_consumers(None, averages_maxlen=0, sink=ListSink(), keys=keys, target=t)
    assert h2.wait_idle(0.5, timeout=60)
    h2.stop()
    rep, _, _ = check(r, keys)
    assert rep.ok and rep.matched == 48 and rep.duplicates == 0


def test_producer_resumes_after_a_server_restart(own_server):
    home, t = own_server
    r = connection.connect(t)
    keys = Keys("prodrestart")
    sink = ListSink()
    seen = []

    def bounce(n):
        seen.append(n)
        if len(seen) == 3:           # mid-way through the first partition (20,000-reading batches)
            server.stop(home)
            threading.Timer(0.3, lambda: server.start(home)).start()

    data = producer.Dataset(producer.parse_start("2025-01-01"), 2)
    res = producer.produce(r, data, keys, sink, progress=bounce, reconnect_s=30)
    assert res["readings"] == 2 * 86400
    assert any("resuming" in l for l in sink.texts())
    assert r.xlen(keys.partition_prefix + "20250101") == 86400 == r.xlen(keys.partition_prefix + "20250102")
    assert r.pttl(keys.partition_prefix + "20250101") > 0


def test_embedded_server_is_private_and_loopback_only(own_server):
    home, t = own_server
    info = server.read_info(home)
    assert info.host == "127.0.0.1"
    anon = redis.Redis(host=info.host, port=info.port)
    with pytest.raises(redis.AuthenticationError):   # NOAUTH without the generated password
        anon.ping()
    anon.close()
    r = connection.connect(t)
    assert r.config_get("bind")["bind"].split() == ["127.0.0.1"]
    for path in (home, home / "data", home / "server.json", home / "server.conf"):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & 0o077 == 0, (path, oct(mode))
    assert len(info.password) >= 24


def test_server_stop_stops_a_server_whose_password_was_changed(own_server):
    """A learner who follows a lab's CONFIG SET requirepass: the embedded server no longer answers to its
    recorded password, and ``server stop`` said nothing ran and left it running (CI leaked two a run)."""
    home, t = own_server
    info = server.read_info(home)
    connection.connect(t).config_set("requirepass", "changed-by-the-learner")
    assert server.read_info(home) is None and server.is_alive(info.pid)
    with pytest.raises(LabkitError, match="no longer answers to labkit's password"):
        server.start(home)                  # not a second server beside the one that still runs
    assert server.stop(home) is True
    assert not server.is_alive(info.pid)
