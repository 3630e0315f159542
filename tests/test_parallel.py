"""Thread counts: from the free cores, or --threads; applied to numba and torch."""
from __future__ import annotations

import os

import numba
import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from hdae import parallel


def test_free_cores_counts_the_load(monkeypatch):
    monkeypatch.setattr(parallel, "available_cores", lambda: 8)
    monkeypatch.setattr(parallel, "busy_cores", lambda: 2.6)
    assert parallel.free_cores() == 5  # 8 - 2.6, rounded
    monkeypatch.setattr(parallel, "busy_cores", lambda: 11.0)
    assert parallel.free_cores() == 1  # never below one
    monkeypatch.setattr(parallel, "busy_cores", lambda: 0.0)
    assert parallel.free_cores() == 8


def test_busy_cores_sees_other_processes_at_once():
    """The runnable count of /proc/loadavg, not the lagging load average: a CPU-burning child is seen
    within a second (the 1-minute average would need about a minute to reach it)."""
    import subprocess
    import sys
    import time

    if not os.path.exists("/proc/loadavg"):
        pytest.skip("no /proc/loadavg")
    idle = min(parallel.busy_cores() for _ in range(5))
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        busy = max(parallel.busy_cores() for _ in range(20))
    finally:
        for p in burners:
            p.kill()
    assert busy >= idle + 1


def test_set_threads_applies_to_numba_and_torch():
    before = numba.get_num_threads(), torch.get_num_threads()
    try:
        assert parallel.set_threads(1) == 1
        assert numba.get_num_threads() == 1 and torch.get_num_threads() == 1
        n = parallel.set_threads(None)
        assert 1 <= n <= parallel.available_cores() and torch.get_num_threads() == n
        assert parallel.set_threads(10_000) == parallel.available_cores()  # capped at the cores we may use
        with pytest.raises(ValueError, match="threads"):
            parallel.set_threads(0)
    finally:
        numba.set_num_threads(before[0])
        torch.set_num_threads(before[1])


def test_threads_option():
    before = numba.get_num_threads(), torch.get_num_threads()
    try:
        res = CliRunner().invoke(cli, ["simulate", "--threads", "0", "-o", "x.h5"])
        assert res.exit_code == 2 and "--threads" in res.output
        for cmd in ("simulate", "solve", "run"):
            assert "--threads" in CliRunner().invoke(cli, [cmd, "--help"]).output
    finally:
        numba.set_num_threads(before[0])
        torch.set_num_threads(before[1])


@pytest.mark.parametrize("user_setting", [None, "ACTIVE"])
def test_openmp_threads_sleep_at_barriers_unless_the_user_says_otherwise(user_setting):
    """hdae sets OMP_WAIT_POLICY=PASSIVE before numba/torch load (spinning OpenMP waiters made a
    2-thread kernel 4x slower than 1 thread on a busy 2-core machine); a user's setting is kept."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user_setting:
        env["OMP_WAIT_POLICY"] = user_setting
    out = subprocess.run([sys.executable, "-c", "import os, hdae; print(os.environ['OMP_WAIT_POLICY'])"],
                         capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == (user_setting or "PASSIVE")
