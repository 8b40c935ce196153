"""The chapter's long runs stayed finite: ten thousand training steps of an NTM and of a DNC
(``book/08-ntm-dnc/experiments/stability.py``'s record), and every step of the copy records."""
import json
import math
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "book" / "08-ntm-dnc" / "experiments"


def test_ten_thousand_steps_of_each_machine_stayed_finite_and_learned():
    record = json.loads((EXPERIMENTS / "stability.json").read_text())
    steps = record["config"]["steps"]
    assert steps >= 10_000
    runs = {run["machine"]: run for run in record["runs"]}
    assert set(runs) == {"ntm", "dnc"}
    for name, run in runs.items():
        assert run["finite_loss_steps"] == steps and run["finite_grad_norm_steps"] == steps, name
        assert run["parameters_finite"] and run["memory_finite"], name
        assert all(math.isfinite(x) for x in run["train_loss"]), name
        # it trained: far below chance (half the recall bits, 4 L per sequence of length L)
        chance = 4 * (1 + run["max_len"]) / 2
        assert run["test"]["bit_errors"] < chance / 4, (name, run["test"])


@pytest.mark.parametrize("name", ["ntm_copy", "lstm_copy", "dnc_copy"])
def test_the_copy_records_have_finite_curves(name):
    record = json.loads((EXPERIMENTS / f"{name}.json").read_text())
    for run in record["runs"]:
        for curve in ("train_loss", "val_cost_bits", "val_bit_errors"):
            assert run[curve] and all(math.isfinite(x) for x in run[curve]), (name, run["seed"], curve)
