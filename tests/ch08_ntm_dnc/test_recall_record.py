"""Associative recall (ntm_recall.json, lstm_recall.json): the NTM learns the lists of 2-6 items and
keeps recalling in longer lists, where the LSTM baseline does not; the saved NTM is the best seed's."""
import json
import math
from pathlib import Path

import numpy as np
import torch

from seqmem import memory_runs, ntm

EXPERIMENTS = Path(__file__).resolve().parents[2] / "book" / "08-ntm-dnc" / "experiments"
TRAIN, BEYOND = range(2, 7), range(7, 13)


def _record(name):
    return json.loads((EXPERIMENTS / f"{name}_recall.json").read_text())


def _errors(run, items):  # mean bit errors per episode over these numbers of items
    return float(np.mean([run["results"][str(n)]["bit_errors"] for n in items]))


def test_both_records_have_three_seeds_of_the_documented_configuration():
    ntm_record, lstm_record = _record("ntm"), _record("lstm")
    for record in (ntm_record, lstm_record):
        assert record["seeds"] == [0, 1, 2] and [r["seed"] for r in record["runs"]] == [0, 1, 2]
        cfg = record["config"]
        assert cfg["train_items"] == [2, 6] and cfg["item_len"] == 3 and cfg["n_bits"] == 6
        assert cfg["test_max_items"] == 12 and cfg["test_size"] == 200
        assert (cfg["lr"], cfg["clip_norm"], cfg["batch_size"]) == (1e-3, 10.0, 16)
        for run in record["runs"]:
            assert sorted(int(n) for n in run["results"]) == list(range(2, 13))
            for curve in ("train_loss", "val_cost_bits", "val_bit_errors"):
                assert all(math.isfinite(x) for x in run[curve]), (run["seed"], curve)
    cfg = ntm_record["config"]
    assert (cfg["controller_size"], cfg["memory_size"], cfg["word_size"], cfg["read_heads"]) == (100, 128, 20, 1)
    assert (lstm_record["config"]["hidden_size"], lstm_record["config"]["num_layers"]) == (256, 3)
    shared = ("steps", "eval_every", "val_size", "test_size", "test_max_items", "batch_size", "lr", "clip_norm",
              "task", "loss", "test_set", "selection")
    assert {k: cfg[k] for k in shared} == {k: lstm_record["config"][k] for k in shared}  # the same budget


def test_ntm_learns_the_training_lists_and_recalls_in_longer_ones_better_than_the_lstm():
    ntm_runs, lstm_runs = _record("ntm")["runs"], _record("lstm")["runs"]
    # converged: at most 0.1 bit errors per episode (of 18 recalled bits) over lists of 2-6 items
    assert sum(_errors(run, TRAIN) <= 0.1 for run in ntm_runs) >= 2
    assert all(memory_runs.sequences_to_converge(run, 16) is not None for run in ntm_runs)
    # beyond the training lists, every NTM seed errs less than every LSTM seed
    assert max(_errors(run, BEYOND) for run in ntm_runs) < min(_errors(run, BEYOND) for run in lstm_runs)
    # the LSTM does far better than chance (9 of 18 bits) on the shortest lists, and errs more the longer the list
    for run in lstm_runs:
        assert _errors(run, [2]) < 9 / 4 < _errors(run, [6]) < _errors(run, [12]), run["seed"]


def test_saved_ntm_is_the_best_seed_and_loads_into_its_configuration():
    record = _record("ntm")
    saved = torch.load(EXPERIMENTS / "ntm_recall.pt", weights_only=True)
    best = min(record["runs"], key=lambda run: min(run["val_cost_bits"]))
    assert saved["seed"] == best["seed"] and saved["config"] == record["config"]
    cfg = saved["config"]
    model = ntm.NTMCell(8, 6, controller_size=cfg["controller_size"], memory_size=cfg["memory_size"],
                        word_size=cfg["word_size"], read_heads=cfg["read_heads"])
    model.load_state_dict(saved["state_dict"])  # every parameter present, every shape right
    assert sum(p.numel() for p in model.parameters()) == best["parameters"]
