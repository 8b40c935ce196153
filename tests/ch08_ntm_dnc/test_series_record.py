"""The DNC trained on series of copies (dnc_series.json) reuses its 15 slots; the copy-trained one does not."""
import json
from pathlib import Path

import numpy as np
import torch

from seqmem import dnc

EXPERIMENTS = Path(__file__).resolve().parents[2] / "book" / "08-ntm-dnc" / "experiments"


def _perfect(name, slots, parts):
    record = json.loads((EXPERIMENTS / name).read_text())
    return [r["results"][slots]["series_by_parts"][str(parts)]["perfect"] for r in record["runs"]], record


def test_series_record_has_three_seeds_each_tested():
    _, record = _perfect("dnc_series.json", "15", 1)
    assert record["seeds"] == [0, 1, 2] and [r["seed"] for r in record["runs"]] == [0, 1, 2]
    assert record["config"]["memory_slots"] == 15 and record["config"]["series_parts"] == 3


def test_series_pass_through_fewer_slots_than_they_need():
    # four copies of lengths 1-10 are 22 vectors on average, more than the 15 slots (five, 27.5):
    # the series-trained DNC passes them by reusing slots (page 05 shows how, on series that do
    # not fit); the copy-trained DNC fails any second sequence, whatever its memory (page 04)
    for parts in (3, 4, 5):
        series, _ = _perfect("dnc_series.json", "15", parts)
        copy_trained, _ = _perfect("dnc_copy.json", "15", parts)
        assert float(np.median(series)) > 0.5, (parts, series)
        assert max(copy_trained) < 0.05, (parts, copy_trained)


def test_saved_series_machine_has_its_own_record_of_the_same_configuration():
    # dnc_series_seed1.pt (the parameters page 05 looks inside) comes with the record of its run:
    # seed 1 of dnc_series.json's configuration, passing the same bar as the three-seed run
    own, record = _perfect("dnc_series_seed1.json", "15", 3)
    _, three = _perfect("dnc_series.json", "15", 3)
    assert record["seeds"] == [1] and record["config"] == three["config"]
    assert own[0] > 0.5
    saved = torch.load(EXPERIMENTS / "dnc_series_seed1.pt", weights_only=True)
    assert saved["seed"] == 1 and saved["config"] == record["config"]
    model = dnc.DNCCell(9, saved["config"]["hidden_size"], 8, memory_slots=saved["config"]["memory_slots"],
                        word_size=saved["config"]["word_size"], read_heads=saved["config"]["read_heads"])
    model.load_state_dict(saved["state_dict"])  # every parameter present, every shape right
