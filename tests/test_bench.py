"""bench/bench_rnn.py, bench_lstm.py, bench_attention.py and bench_transformer.py run, meet their targets
and print their ratios (the quick version)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("script, target", [("bench_rnn.py", "1.20"), ("bench_lstm.py", "1.10"),
                                            ("bench_attention.py", "1.10"), ("bench_transformer.py", "1.10")])
def test_bench_quick_runs_and_meets_its_target(script, target):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    pattern = rf"worst fused ratio seqmem/torch: (\d+\.\d+) \(target <= {re.escape(target)}\): ok"
    worst = re.search(pattern, run.stdout)
    assert worst and float(worst.group(1)) <= float(target), run.stdout
    # one row per configuration: the fused ratio and the from-scratch (reference) ratio
    rows = re.findall(r"^cpu +\S.*?(\d+\.\d+) +\d+\.\d+ +(\d+\.\d+)$", run.stdout, flags=re.M)
    assert len(rows) == 2, run.stdout
    assert all(float(scratch) > 0 for _, scratch in rows), run.stdout
