"""ACT on 16-bit parity (act_parity.json, chapter 9): the records of the runs the chapter plots."""
import json
import math
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[2] / "book" / "09-act-neural-programmer" / "experiments"


def _runs():
    record = json.loads((EXPERIMENTS / "act_parity.json").read_text())
    return record, {(r["model"], r["setting"], r["seed"]): r for r in record["runs"]}


def test_the_record_has_every_model_over_three_seeds_and_the_tau_sweep():
    record, runs = _runs()
    cfg = record["config"]
    assert (cfg["n_bits"], cfg["cell_kind"], cfg["hidden_size"], cfg["max_steps"]) == (16, "rnn", 128, 20)
    assert (cfg["steps"], cfg["batch_size"], cfg["lr"], cfg["test_size"]) == (120_000, 128, 1e-3, 10_000)
    for key in (("act", 1e-3), ("rnn", 0.0), ("repeat", 2.0), ("repeat", 5.0)):
        assert all((*key, seed) in runs for seed in (0, 1, 2)), key
    assert {s for (m, s, seed) in runs if m == "act" and seed == 0} == {1e-4, 1e-3, 1e-2, 1e-1}
    for run in runs.values():
        assert len(run["curve"]) == cfg["steps"] // cfg["eval_every"]
        assert all(math.isfinite(c["train_loss"]) for c in run["curve"])
        by_k = run["test"]["by_k"]
        assert sorted(int(k) for k in by_k) == list(range(1, 17))


def test_act_ponders_longer_on_harder_vectors_and_beats_the_one_step_rnn():
    _, runs = _runs()
    act = [runs["act", 1e-3, seed]["test"] for seed in (0, 1, 2)]
    rnn = [runs["rnn", 0.0, seed]["test"] for seed in (0, 1, 2)]
    assert max(t["accuracy"] for t in act) >= 0.98  # the target, reached by the best seed
    assert max(t["accuracy"] for t in rnn) < 0.6 < min(t["accuracy"] for t in act)
    for t in act:
        assert t["ponder_k_correlation"] > 0.2 and t["steps"] > 1
        assert t["by_k"]["16"]["ponder"] > t["by_k"]["1"]["ponder"]
    assert all(t["steps"] == 1.0 and "ponder_k_correlation" not in t for t in rnn)
