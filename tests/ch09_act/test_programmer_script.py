"""The chapter's Neural Programmer script runs end to end (--quick) and writes a record with what the
chapter reads: soft and hard accuracies by kind, the curve, and the programs written."""
import importlib.util
import json

from seqmem import tasks

from conftest import ROOT


def _script():
    path = ROOT / "book" / "09-act-neural-programmer" / "experiments" / "programmer_tables.py"
    spec = importlib.util.spec_from_file_location("programmer_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_quick_run_writes_a_record_of_accuracies_and_programs(tmp_path):
    out = tmp_path / "quick.json"
    _script().main(["--quick", "--seeds", "0", "--etas", "0", "0.1", "--columns", "1", "3", "--out", str(out)])
    data = json.loads(out.read_text())
    assert [(r["columns"], r["eta"], r["seed"]) for r in data["runs"]] == [(1, 0.0, 0), (1, 0.1, 0), (3, 0.0, 0),
                                                                          (3, 0.1, 0)]
    for run in data["runs"]:
        test = run["test"]
        assert 0 <= test["hard"] <= 1 and 0 <= test["soft"] <= 1
        assert set(test["hard_by_kind"]) <= {*tasks.TABLE_KINDS, *tasks.MULTI_COLUMN_KINDS}
        assert [c["step"] for c in run["curve"]] == [20, 40]
        assert len(run["programs"]) == 12 and all(len(p["program"]) == 5 for p in run["programs"])
    assert data["config"]["steps"] == 40 and data["commands"][0]["command"].startswith("python ")
