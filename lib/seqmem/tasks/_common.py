"""What the tasks share: argument checks and seeded draws, every one through a ``torch.Generator``."""
from __future__ import annotations

from typing import Sequence

import torch

from ..core import check_positive_int


def check_sizes(**sizes: int) -> None:
    """Raise ``ValueError`` unless every size is a positive int (a bool is not)."""
    for name, value in sizes.items():
        check_positive_int(name, value)


def gen_device(generator: torch.Generator | None) -> torch.device:
    """Where a generator draws: data are drawn there and then moved, so a seed gives the same data on
    every device."""
    return generator.device if generator is not None else torch.device("cpu")


def randint(n: int, generator) -> int:
    """A uniform draw from 0 ... n - 1."""
    return int(torch.randint(n, (1,), generator=generator))


def choice(items: Sequence, generator):
    return items[randint(len(items), generator)]


def coin(p: float, generator) -> bool:
    return bool(torch.rand(1, generator=generator) < p)
