"""The Neural Programmer on tables (programmer_tables.json, chapter 9): the record the chapter reads."""
import json
import math
from pathlib import Path

import torch

from seqmem import tasks

EXPERIMENTS = Path(__file__).resolve().parents[2] / "book" / "09-act-neural-programmer" / "experiments"
KINDS = tasks.TABLE_KINDS + tasks.MULTI_COLUMN_KINDS
ETAS, SEEDS = (0.0, 0.1), (0, 1, 2)


def _runs():
    record = json.loads((EXPERIMENTS / "programmer_tables.json").read_text())
    return record, {(r["columns"], r["eta"], r["seed"]): r for r in record["runs"]}


def _shortcut(kind: str, test_size: int) -> float:
    """The accuracy on a kind of the test questions of 'count the values greater than n'."""
    test = tasks.table_questions(test_size, generator=torch.Generator().manual_seed(6000))
    asked = test.kinds == KINDS.index(kind)
    counts = (test.tables[:, :, 0] > test.numbers[:, 0, None]).sum(1).float()
    return float((counts[asked] == test.scalar_answers[asked]).float().mean())


def test_the_record_has_both_variants_with_and_without_noise_over_three_seeds():
    record, runs = _runs()
    cfg = record["config"]
    assert (cfg["rows"], cfg["high"], cfg["d"], cfg["program_steps"], cfg["width"]) == (8, 50, 64, 5, 10.0)
    assert (cfg["steps"], cfg["batch_size"], cfg["lr"], cfg["test_size"]) == (20_000, 64, 1e-3, 2000)
    assert set(runs) == {(c, eta, seed) for c in (1, 3) for eta in ETAS for seed in SEEDS}
    assert all(c["command"].startswith("python book/") for c in record["commands"])
    for (columns, _, _), run in runs.items():
        assert [c["step"] for c in run["curve"]] == list(range(1000, 20_001, 1000))
        assert all(math.isfinite(c["train_loss"]) for c in run["curve"])
        kinds = tasks.TABLE_KINDS + (tasks.MULTI_COLUMN_KINDS if columns > 1 else ())
        assert sorted(run["test"]["hard_by_kind"]) == sorted(kinds)
        assert len(run["programs"]) == 12 and all(len(p["program"]) == 5 for p in run["programs"])
        assert run["best_step"] == max(run["curve"], key=lambda c: c["hard"])["step"]


def test_the_best_single_column_run_reaches_the_target_and_the_misses_are_the_shortcut():
    record, runs = _runs()
    single = [runs[1, eta, seed]["test"] for eta in ETAS for seed in SEEDS]
    assert max(t["hard"] for t in single) >= 0.95  # the chapter's target, reached by the best run
    between = _shortcut("count_between", record["config"]["test_size"])
    difference = _shortcut("difference", record["config"]["test_size"])
    assert between < 0.5 and difference < 0.5
    for t in single:  # the long programs: learned (count_between) or at most the shortcut's accuracy
        by = t["hard_by_kind"]
        assert by["count_between"] >= 0.99 or by["count_between"] <= between + 1e-6
        assert by["difference"] <= difference + 1e-6
    assert sum(t["hard_by_kind"]["count_between"] >= 0.99 for t in single) >= 1
