"""bench/bench_rnn.py, bench_lstm.py, bench_attention.py and bench_transformer.py run, meet their targets
and print their ratios (the quick version); so does bench_memory.py, whose table is also its JSON."""
import json
import re
import statistics
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


@pytest.mark.slow
def test_bench_memory_quick_runs_meets_its_target_and_writes_its_table_as_json(tmp_path):
    out = tmp_path / "memory.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_memory.py"), "--quick", "--json", str(out)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    verdict = re.search(r"worst ratio loop/batched: (\d+\.\d+) \(target >= (\d+\.\d+)\): ok", run.stdout)
    assert verdict and float(verdict.group(1)) >= float(verdict.group(2)) >= 5.0, run.stdout
    # one row per model on the CPU: B, T, N, W, rounds, batched ms, loop ms, ratio
    rows = re.findall(r"^cpu +(NTM|DNC) +32 +\d+ +128 +20 +\d+ +(\d+\.\d+) +(\d+\.\d+) +(\d+\.\d+)$",
                      run.stdout, flags=re.M)
    assert [r[0] for r in rows] == ["NTM", "DNC"], run.stdout
    data = json.loads(out.read_text())
    assert data["ok"] is True and data["quick"] is True and data["target"] == float(verdict.group(2))
    cpu = [r for r in data["rows"] if r["device"] == "cpu"]
    for (model, batched, loop, ratio), row in zip(rows, cpu):
        assert row["model"] == model and (row["B"], row["N"], row["W"]) == (32, 128, 20)
        assert f"{row['batched_ms']:.2f}" == batched and f"{row['loop_ms']:.2f}" == loop
        assert f"{row['ratio']:.2f}" == ratio and row["ratio"] >= data["target"]
    assert data["worst"] == min(r["ratio"] for r in data["rows"])
    # steps to converge on copy, from chapter 8's records, beside pytorch-ntm's "< 30K" at batch size 1
    experiments = ROOT / "book" / "08-ntm-dnc" / "experiments"
    conv = {c["model"]: c for c in data["convergence"]}
    assert set(conv) == {"NTM", "DNC"}
    for model, name in (("NTM", "ntm_copy.json"), ("DNC", "dnc_copy.json")):
        record = json.loads((experiments / name).read_text())
        batch = record["config"]["batch_size"]
        firsts = [next((s for s, e in zip(r["val_steps"], r["val_bit_errors"]) if e <= 0.1), None)
                  for r in record["runs"]]
        assert None not in firsts  # every seed of both records converged
        median = statistics.median(f * batch for f in firsts)
        assert conv[model]["median_episodes"] == median and conv[model]["converged"] == len(firsts)
        line = re.search(rf"^{model} +{len(firsts)} of {len(firsts)} .* {median:,.0f} +(\S+) +(\S+)$",
                         run.stdout, re.M)
        assert line, run.stdout
        if model == "DNC":  # no reference stated: no reference and no ratio in its row
            assert line.groups() == ("-", "-") and conv["DNC"]["reference_episodes"] is None
    assert conv["NTM"]["reference_episodes"] == 30_000
    assert conv["NTM"]["ratio_to_reference"] == conv["NTM"]["median_episodes"] / 30_000
    assert re.search(r"^NTM .* 30,000 +" + f"{conv['NTM']['ratio_to_reference']:.2f}$", run.stdout, re.M)
