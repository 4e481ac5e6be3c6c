"""``labkit bench`` on a small dataset: it measures its limits, checks the fast path against the plain one,
cleans only its own keys.

No timings are asserted: speed targets live in the bench's own output.
"""

from __future__ import annotations

import re


def test_bench_reports_ratios_to_its_limits_and_cleans_only_its_own_keys(cli, r, keys):
    r.set(keys.key("mine"), "kept")
    r.set("labkit-bench-other:x", "kept")          # a namespace that merely starts the same
    try:
        res = cli("bench", "--days", "0.05", "--baseline-readings", "300", timeout=300)
        assert res.returncode == 0, res.stderr
        out = res.stdout
        assert re.search(r"produce: +4,320 readings in .* \(best of 2; ", out), out
        assert re.search(r"XADD ceiling: .* [\d,]+/s \(best of 2; ", out), out
        assert re.search(r"produce: +\d+\.\d\dx the XADD ceiling", out), out
        assert re.search(r"read ceiling: XRANGE over 1 partition\(s\).*: \d+\.\d\d s \(best of 2 each: COUNT 50,000", out), out
        assert re.search(r"aggregate: 4,320 readings into 2 hours .* = \d+\.\d\dx the read time \(best of 2; ", out), out
        assert re.search(r"aggregate \(plain path, fast=False\): 4,320 readings into 2 hours .*x the read time; "
                         r"the same averages as the fast path", out), out
        assert re.search(r"verify: +python -m labkit verify, the whole command \(start-up included\): 2 hours, "
                         r"all matched, in \d+\.\d\d s = \d+\.\d\dx the read time \(best of 2; .*; CPU \d+\.\d\d s, "
                         r"\d+\.\d\d s\)", out), out
        assert "baseline:" in out
        assert re.search(r"limits: produce >= 0.9x XADD ceiling (met|NOT met); "
                         r"aggregate <= 1.5x read time (met|NOT met); verify <= 2x read time "
                         r"\(set for 10 days: start-up weighs more on fewer\) (met|NOT met)$",
                         out, re.M), out
        assert list(r.scan_iter(match="labkit-bench:*", count=1000)) == []
        assert r.get(keys.key("mine")) == b"kept" and r.get("labkit-bench-other:x") == b"kept"
        r.set("labkit-bench:foreign", "not the bench's")    # in its namespace, not written by it: refused, kept
        res = cli("bench", "--days", "0.05", "--baseline-readings", "300", timeout=300)
        assert res.returncode == 2 and "bench did not write" in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert r.get("labkit-bench:foreign") == b"not the bench's"
        res = cli("bench", "--baseline-readings", "-5")
        assert res.returncode == 2 and "--baseline-readings must be above 0" in res.stderr, res.stderr
    finally:
        r.delete("labkit-bench-other:x", "labkit-bench:foreign")
