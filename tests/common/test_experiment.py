"""seqmem.experiment: the results record every heavy script writes (command, seeds, versions, machine).

And the committed results files of the chapters are in that layout, so that the notebooks read
one shape.
"""
import json
import platform

import pytest
import torch

import seqmem
from conftest import ROOT
from seqmem.experiment import Record, environment, invocation, merge_files

RESULTS = sorted(ROOT.glob("book/*/experiments/*.json"))


def test_environment_and_invocation_say_what_ran_where():
    env = environment("cuda")
    assert env["torch"] == torch.__version__ and env["seqmem"] == seqmem.__version__
    assert env["python"] == platform.python_version() and env["device"] == "cuda" and env["cpu_count"] >= 1
    run = invocation(argv=[__file__, "--seeds", "1", "two words"])
    assert run["command"].startswith("python ") and run["command"].endswith("--seeds 1 'two words'")
    assert run["date"].endswith("+00:00") and run["torch"] == torch.__version__


def _record(path, **kw):
    return Record(path, "a test", {"T": 10}, [0, 1], key=("model", "seed"), order=lambda r: (r["model"], r["seed"]), **kw)


def test_record_is_rewritten_after_each_run_in_order_and_replaces_a_rerun(tmp_path):
    path = tmp_path / "r.json"
    rec = _record(path, models={"a": "first"})
    rec.add({"model": "b", "seed": 0, "mse": 0.5})
    assert json.loads(path.read_text())["runs"] == [{"model": "b", "seed": 0, "mse": 0.5}]  # written already
    rec.add({"model": "a", "seed": 1, "mse": 0.2})
    rec.add({"model": "b", "seed": 0, "mse": 0.4})  # a rerun replaces the old run
    data = json.loads(path.read_text())
    assert [(r["model"], r["seed"], r["mse"]) for r in data["runs"]] == [("a", 1, 0.2), ("b", 0, 0.4)]
    assert data["experiment"] == "a test" and data["config"] == {"T": 10} and data["seeds"] == [0, 1]
    assert len(data["commands"]) == 1 and data["models"] == {"a": "first"} and data["wall_seconds"] >= 0


def test_a_merge_adds_runs_seeds_and_a_command_to_a_file_of_the_same_config(tmp_path):
    path = tmp_path / "r.json"
    _record(path, models={"a": "first"}).add({"model": "a", "seed": 0, "mse": 0.5})
    more = Record(path, "a test", {"T": 10}, [2], key=("model", "seed"), order=lambda r: (r["model"], r["seed"]),
                  merge=True, models={"b": "second"})
    more.add({"model": "b", "seed": 2, "mse": 0.1})
    data = json.loads(path.read_text())
    assert data["seeds"] == [0, 1, 2] and len(data["commands"]) == 2 and len(data["runs"]) == 2
    assert data["models"] == {"a": "first", "b": "second"}
    with pytest.raises(SystemExit, match="needs its config"):
        Record(path, "a test", {"T": 20}, [0], key=("model",), order=len, merge=True)


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_the_chapters_results_files_are_records(path):
    data = json.loads(path.read_text())
    assert {"experiment", "config", "seeds", "commands", "runs"} <= set(data)
    for command in data["commands"]:
        assert command["command"].startswith("python book/") and {"python", "torch", "seqmem"} <= set(command)
    seeds = {run["seed"] for run in data["runs"]}
    assert seeds == set(data["seeds"]), (seeds, data["seeds"])


def test_merge_files_joins_parallel_records_and_records_itself(tmp_path):
    parts = []
    for seed, mse in ((1, 0.3), (0, 0.5)):
        path = tmp_path / f"s{seed}.json"
        Record(path, "a test", {"T": 10}, [seed], key=("seed",), order=lambda r: r["seed"]).add(
            {"seed": seed, "mse": mse})
        parts.append(path)
    first = json.loads(parts[0].read_text())
    data = merge_files(tmp_path / "all.json", parts, key=("seed",), argv=["x.py", "--combine", "s1", "s0"])
    assert json.loads((tmp_path / "all.json").read_text()) == data
    assert data["seeds"] == [0, 1] and [(r["seed"], r["mse"]) for r in data["runs"]] == [(0, 0.5), (1, 0.3)]
    assert len(data["commands"]) == 3 and data["commands"][0] == first["commands"][0]
    assert data["commands"][-1]["merged"] == [str(p) for p in parts]
    assert data["commands"][-1]["command"] == "python x.py --combine s1 s0"
    parts_wall = [json.loads(p.read_text())["wall_seconds"] for p in parts]
    assert data["wall_seconds"] == round(sum(parts_wall), 1) and list(data)[:3] == ["experiment", "config", "seeds"]
    other = tmp_path / "other.json"
    Record(other, "a test", {"T": 20}, [2], key=("seed",), order=lambda r: r["seed"]).add({"seed": 2, "mse": 0.1})
    with pytest.raises(ValueError, match="another config"):
        merge_files(tmp_path / "bad.json", [parts[0], other], key=("seed",))
    with pytest.raises(ValueError, match="at least one"):
        merge_files(tmp_path / "bad.json", [], key=("seed",))


def test_training_arguments_and_the_quick_budget():
    import argparse

    from seqmem.experiment import QUICK, add_training_arguments, apply_quick

    parser = argparse.ArgumentParser()
    add_training_arguments(parser, steps=500, eval_every=50, batch_size=8, lr=0.01, val_size=30, test_size=40,
                           out="r.json", what="test vectors")
    args = apply_quick(parser.parse_args(["--lr", "0.5", "--combine", "a.json", "b.json"]))
    assert (args.steps, args.eval_every, args.batch_size, args.lr, args.val_size, args.test_size) == (500, 50, 8, 0.5,
                                                                                                       30, 40)
    assert args.combine == ["a.json", "b.json"] and args.out == "r.json" and not args.quick
    quick = apply_quick(parser.parse_args(["--quick", "--batch-size", "4"]))
    assert {name: getattr(quick, name) for name in QUICK} == QUICK and quick.batch_size == 4
    assert "200 test vectors" in parser.format_help()
