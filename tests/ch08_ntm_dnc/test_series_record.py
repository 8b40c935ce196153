"""The DNC trained on series of copies (dnc_series.json) reuses its 15 slots; the copy-trained one does not."""
import json
from pathlib import Path

import numpy as np

EXPERIMENTS = Path(__file__).resolve().parents[2] / "book" / "08-ntm-dnc" / "experiments"


def _perfect(name, slots, parts):
    record = json.loads((EXPERIMENTS / name).read_text())
    return [r["results"][slots]["series_by_parts"][str(parts)]["perfect"] for r in record["runs"]], record


def test_series_record_has_three_seeds_each_tested():
    _, record = _perfect("dnc_series.json", "15", 1)
    assert record["seeds"] == [0, 1, 2] and [r["seed"] for r in record["runs"]] == [0, 1, 2]
    assert record["config"]["memory_slots"] == 15 and record["config"]["series_parts"] == 3


def test_series_pass_through_fewer_slots_than_they_need():
    # four copies of lengths 1-10 are 22 vectors on average, more than the 15 slots: without
    # freeing and reallocating slots they cannot be copied; the copy-trained DNC fails them
    for parts in (3, 4, 5):
        series, _ = _perfect("dnc_series.json", "15", parts)
        copy_trained, _ = _perfect("dnc_copy.json", "15", parts)
        assert float(np.median(series)) > 0.5, (parts, series)
        assert max(copy_trained) < 0.05, (parts, copy_trained)
