"""The compiled core: build, lazy import, dispatch and the gather_gram op."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import facelin
from facelin import _ops


def reference_gather_gram(gram, subsets):
    return gram[subsets[:, :, None], subsets[:, None, :]]


ALL_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def test_extension_is_loaded():
    assert hasattr(_ops.library(), "gather_gram")
    assert isinstance(facelin.cuda_built(), bool)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (200, 40)])
def test_gather_gram_matches_indexing(device, dtype, shape):
    batch, s = shape
    gen = torch.Generator().manual_seed(batch * 100 + s)
    r = torch.randn(50, 60, generator=gen, dtype=dtype)
    gram = (r.T @ r).to(device)
    subsets = torch.stack([torch.randperm(60, generator=gen)[:s] for _ in range(batch)]).to(device)
    out = _ops.gather_gram(gram, subsets)
    assert out.shape == (batch, s, s) and out.dtype == dtype and out.device == gram.device
    assert torch.equal(out, reference_gather_gram(gram, subsets))


def test_gather_gram_repeated_and_empty_subsets(device):
    gram = torch.arange(16.0, dtype=torch.float64, device=device).reshape(4, 4)
    subsets = torch.tensor([[3, 3, 0]], device=device)
    assert torch.equal(_ops.gather_gram(gram, subsets), reference_gather_gram(gram, subsets))
    empty = torch.empty(0, 5, dtype=torch.long, device=device)
    assert _ops.gather_gram(gram, empty).shape == (0, 5, 5)


def test_gather_gram_non_contiguous_input(device):
    base = torch.randn(12, 12, dtype=torch.float64, device=device)
    gram = base.T  # a transposed view
    subsets = torch.tensor([[0, 5, 11], [2, 2, 7]], device=device)
    assert torch.equal(_ops.gather_gram(gram, subsets), reference_gather_gram(gram, subsets))


@pytest.mark.parametrize(
    "gram, subsets, message",
    [
        (torch.ones(3, 3), torch.tensor([[0, 3]]), "indices in \\[0, 3\\]"),
        (torch.ones(3, 3), torch.tensor([[-1, 0]]), "indices in \\[-1, 0\\]"),
        (torch.ones(3, 4), torch.tensor([[0]]), "must be square"),
        (torch.ones(3, 3, dtype=torch.int64), torch.tensor([[0]]), "float32 or float64"),
        (torch.ones(3, 3), torch.tensor([[0]], dtype=torch.int32), "must be int64"),
        (torch.ones(3, 3), torch.tensor([0, 1]), "must have 2 dimensions"),
    ],
)
def test_gather_gram_rejects_bad_input(gram, subsets, message):
    with pytest.raises(RuntimeError, match=message):
        _ops.gather_gram(gram, subsets)


def test_gather_gram_fake_tensor_shape():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        out = _ops.gather_gram(torch.empty(9, 9), torch.zeros(4, 3, dtype=torch.long))
    assert out.shape == (4, 3, 3)


@pytest.mark.parametrize("device_name", ALL_DEVICES)
def test_gather_gram_opcheck(device_name):
    gram = torch.randn(6, 6, dtype=torch.float64, device=device_name)
    subsets = torch.tensor([[1, 4], [5, 0]], device=device_name)
    torch.library.opcheck(_ops.library().gather_gram.default, (gram, subsets))


@pytest.mark.skipif(facelin.cuda_built(), reason="checks the message of a CPU-only build")
def test_cuda_tensor_in_cpu_build_says_how_to_build(monkeypatch):
    fake_cuda = torch.ones(2, 2)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    with pytest.raises(RuntimeError, match="FACELIN_CUDA=1"):
        _ops.gather_gram(fake_cuda, torch.zeros(1, 1, dtype=torch.long))


def test_import_without_extension_gives_build_command(tmp_path):
    # A copy of the Python sources without the compiled library: importing works, the
    # first compiled op says how to build the core.
    pkg = tmp_path / "facelin"
    pkg.mkdir()
    src = os.path.dirname(facelin.__file__)
    for name in os.listdir(src):
        if name.endswith(".py"):
            (pkg / name).write_text(open(os.path.join(src, name)).read())
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        # An editable install finds the package through a meta-path finder; drop it.
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        import torch
        import facelin
        from facelin import linalg
        print("imported from", facelin.__file__)
        try:
            linalg.lstsq(torch.ones(1, 3, 2), torch.ones(1, 3, 1))
        except ImportError as err:
            print(err)
        """
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, cwd=tmp_path, check=True).stdout
    assert f"imported from {pkg / '__init__.py'}" in out
    assert "make build" in out and "pip install --no-build-isolation -e ." in out
