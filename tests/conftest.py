"""Shared fixtures: the devices to test on, and the repository's paths."""
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# cpu always; cuda where this machine has it (those cases carry the gpu marker).
DEVICES = [pytest.param("cpu", id="cpu"),
           pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def dev(request):
    return torch.device(request.param)
