"""The results record of a heavy experiment: what ran, on what machine, with which seeds, and what came.

An experiment too heavy for the book's build is a script (``book/*/experiments/*.py``) whose results
file the chapter reads and plots. ``Record`` writes that file, in one layout for every script::

    {"experiment": "what it measures", "config": {...}, "seeds": [...],
     "commands": [{"command": "python book/.../x.py --seeds 1", "date": ..., "python": ...,
                   "torch": ..., "numpy": ..., "seqmem": ..., "machine": ..., "processor": ...,
                   "system": ..., "cpu_count": ..., "device": ...}, ...],
     "wall_seconds": ..., "finished": ..., ...the script's own fields..., "runs": [{...}, ...]}

One entry of ``commands`` per invocation, with the versions and the machine it ran on
(``environment``); ``wall_seconds`` adds up the invocations' wall times, ``finished`` is when the
file was last written (UTC). The file is rewritten after every run, so an interrupted sweep keeps what it
finished. With ``merge=True`` an invocation adds its runs to an existing file made with the same
``config`` (a run with the same key as an old one replaces it) and appends its own command.
``merge_files`` joins files that invocations running in parallel wrote (one seed each, say) into
one, and records its own invocation too.
"""
from __future__ import annotations

import argparse

import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["environment", "invocation", "Record", "merge_files", "add_training_arguments", "apply_quick"]


def _processor() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows of it."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def environment(device: str = "cpu") -> dict:
    """The versions and the machine of this process: python, torch, numpy, seqmem, CPU, device."""
    from . import __version__

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "seqmem": __version__, "machine": platform.machine(), "processor": _processor(),
            "system": platform.platform(), "cpu_count": os.cpu_count(), "device": device}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def invocation(device: str = "cpu", argv: Sequence[str] | None = None) -> dict:
    """This run of a script: its command line (the script relative to the working directory), the
    time it started (UTC) and ``environment(device)``."""
    argv = list(sys.argv if argv is None else argv)
    script = os.path.relpath(argv[0]) if argv and os.path.exists(argv[0]) else (argv[0] if argv else "")
    return {"command": "python " + shlex.join([script, *argv[1:]]), "date": _now(), **environment(device)}


class Record:
    """A results file, rewritten after every ``add(run)``.

    Args:
        path: the JSON file.
        experiment: one line saying what the experiment measures.
        config: the settings every run shares; a merge must have the same.
        seeds: the seeds this invocation runs.
        key: the fields that name a run, e.g. ``("model", "seed")``: a run with the key of one
            already in the file replaces it.
        order: a function of a run giving its place in the file (runs may finish in any order).
        merge: add to the existing file at ``path`` instead of starting a new one.
        device: what the runs compute on, for the record.
        **fields: the script's own top-level fields (``models={...}``); on a merge, dicts are
            updated and other values replaced.
    """

    def __init__(self, path: str | os.PathLike, experiment: str, config: dict, seeds: Sequence[int], *,
                 key: Sequence[str], order: Callable[[dict], object], merge: bool = False, device: str = "cpu",
                 **fields):
        self.path, self.key, self.order = Path(path), tuple(key), order
        self._start = time.perf_counter()
        if merge:
            data = json.loads(self.path.read_text())
            if data["config"] != config:
                raise SystemExit(f"a merge into {self.path} needs its config, {data['config']}, not {config}")
            for name, value in fields.items():
                data[name] = {**data[name], **value} if isinstance(value, dict) and name in data else value
            data["seeds"] = sorted(set(data["seeds"]) | set(seeds))
            data["commands"].append(invocation(device))
        else:
            data = {"experiment": experiment, "config": config, "seeds": sorted(seeds),
                    "commands": [invocation(device)], "wall_seconds": 0.0, "finished": None, **fields, "runs": []}
        self.data, self._wall_before = data, data.get("wall_seconds")

    @property
    def runs(self) -> list:
        return self.data["runs"]

    def add(self, run: dict) -> None:
        """Put ``run`` in the file (in place of a run with the same key), in ``order``; rewrite the file."""
        name = tuple(run[k] for k in self.key)
        runs = [r for r in self.runs if tuple(r[k] for k in self.key) != name] + [run]
        self.data["runs"] = sorted(runs, key=self.order)
        if self._wall_before is not None:  # unknown for a file that never recorded it
            self.data["wall_seconds"] = round(self._wall_before + time.perf_counter() - self._start, 1)
        self.data["finished"] = _now()
        self.path.write_text(json.dumps(self.data, indent=1) + "\n")


def merge_files(out: str | os.PathLike, parts: Sequence[str | os.PathLike], key: Sequence[str],
                argv: Sequence[str] | None = None) -> dict:
    """Join results files of one experiment, written by invocations that ran side by side, into ``out``.

    Every part must have the same ``experiment`` and ``config``. The joined file has every part's
    commands in order, then this merge's own invocation (its command line, ``argv``, with
    ``"merged": [the parts]``), the union of the seeds, every run (a run whose ``key`` fields equal
    a later part's is replaced by it), sorted by ``key``; ``wall_seconds`` adds up the parts' (the
    time spent, not the time elapsed when they overlapped) and ``finished`` is the latest part's.
    The script's own top-level fields are the first part's. Returns the joined record.
    """
    if not parts:
        raise ValueError("merge_files needs at least one results file to merge")
    records = [json.loads(Path(p).read_text()) for p in parts]
    first = records[0]
    for path, record in zip(parts[1:], records[1:]):
        for field in ("experiment", "config"):
            if record.get(field) != first.get(field):
                raise ValueError(f"{path} has another {field} than {parts[0]}: {record.get(field)!r} "
                                 f"against {first.get(field)!r}")
    runs = {}
    for record in records:
        for run in record["runs"]:
            runs[tuple(run[k] for k in key)] = run
    merge = {**invocation("cpu", argv), "merged": [str(p) for p in parts]}
    merge.pop("device")
    data = {**first, "seeds": sorted({s for r in records for s in r["seeds"]}),
            "commands": [c for r in records for c in r["commands"]] + [merge],
            "wall_seconds": round(sum(r.get("wall_seconds") or 0.0 for r in records), 1),
            "finished": max(r["finished"] for r in records), "runs": [runs[k] for k in sorted(runs)]}
    data = {k: data[k] for k in first} | {k: v for k, v in data.items() if k not in first}
    Path(out).write_text(json.dumps(data, indent=1) + "\n")
    return data


QUICK = {"steps": 40, "eval_every": 20, "val_size": 200, "test_size": 200}  # a tiny run, to try a script


def add_training_arguments(parser: argparse.ArgumentParser, *, steps: int, eval_every: int, batch_size: int,
                           lr: float, val_size: int, test_size: int, out: str | os.PathLike, what: str) -> None:
    """The options that end a training script's command line: its budget (``--steps``, ``--eval-every``,
    ``--batch-size``, ``--lr``), its validation and test sizes, ``--quick`` (see ``apply_quick``),
    ``--combine PART ...`` (join results files written side by side, ``merge_files``) and ``--out``.
    ``what`` names the examples in the help ("test vectors")."""
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--eval-every", type=int, default=eval_every)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--val-size", type=int, default=val_size)
    parser.add_argument("--test-size", type=int, default=test_size)
    parser.add_argument("--quick", action="store_true", help=f"a tiny run: {QUICK['steps']} steps, "
                        f"{QUICK['test_size']} {what}")
    parser.add_argument("--combine", nargs="+", metavar="PART", help="join these results files (runs side "
                        "by side) into --out instead of training")
    parser.add_argument("--out", default=str(out))


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    """With ``--quick``, the tiny budget of ``QUICK`` in place of the options' values."""
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    return args
