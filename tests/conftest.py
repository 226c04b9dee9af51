"""Shared test fixtures: the devices every op is checked on; the book's findings folder
for the notebooks that nbval runs (their kernels inherit this environment)."""
import os
from pathlib import Path

import pytest
import torch

import facelin

os.environ.setdefault("FACELIN_FINDINGS",
                      str(Path(__file__).resolve().parent.parent / "book" / "findings"))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() and facelin.cuda_built() else [])


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device and a CUDA build of facelin")
    for item in items:
        if "cuda" in item.keywords and "cuda" not in DEVICES:
            item.add_marker(skip_cuda)


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)
