"""bench/bench_rnn.py and bench_lstm.py run, meet their targets and print their ratios (the quick version)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_rnn_quick_runs_and_meets_its_target():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_rnn.py"), "--quick"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    worst = re.search(r"worst fused ratio seqmem/torch: (\d+\.\d+) \(target <= 1\.20\): ok", run.stdout)
    assert worst and float(worst.group(1)) <= 1.2, run.stdout
    rows = re.findall(r"^cpu +\S.*?(\d+\.\d+) +\d+\.\d+ +(\d+\.\d+)$", run.stdout, flags=re.M)
    assert len(rows) == 2, run.stdout  # one row per configuration: the fused and the reference ratio


@pytest.mark.slow
def test_bench_lstm_quick_runs_and_meets_its_target():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_lstm.py"), "--quick"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    worst = re.search(r"worst fused ratio seqmem/torch: (\d+\.\d+) \(target <= 1\.10\): ok", run.stdout)
    assert worst and float(worst.group(1)) <= 1.1, run.stdout
    # one row per configuration: the fused ratio and the from-scratch ratio
    rows = re.findall(r"^cpu +\S.*?(\d+\.\d+) +\d+\.\d+ +(\d+\.\d+)$", run.stdout, flags=re.M)
    assert len(rows) == 2, run.stdout
    assert all(float(scratch) > 0 for _, scratch in rows), run.stdout
