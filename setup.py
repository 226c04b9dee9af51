"""Build facelin and its compiled core, facelin._C.

FACELIN_CUDA selects the build:
  auto (default)  CUDA kernels when torch is a CUDA build and nvcc is found, else CPU only
  1               CUDA kernels or a build error that says what is missing
  0               CPU only
FACELIN_NO_EXT=1 registers the package without compiling; the Makefile uses it for the
editable install and then compiles in place with `setup.py build_ext --inplace`, which
ninja keeps incremental.
A CUDA build also needs TORCH_CUDA_ARCH_LIST when no GPU can be queried (for example
"8.0;9.0"); see the README.
"""
import glob
import os
import site
import sys
from pathlib import Path

from setuptools import find_packages, setup

import torch
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = Path(__file__).parent


def requirements():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


def wants_cuda():
    flag = os.environ.get("FACELIN_CUDA", "auto").lower()
    if flag not in {"auto", "0", "1"}:
        sys.exit(f"FACELIN_CUDA must be auto, 0 or 1, got {flag!r}")
    if flag == "0":
        return False
    missing = []
    if torch.version.cuda is None:
        missing.append(f"torch {torch.__version__} is a CPU-only build")
    if CUDA_HOME is None or not Path(CUDA_HOME, "bin", "nvcc").exists():
        missing.append("nvcc was not found (set CUDA_HOME)")
    if missing and flag == "1":
        sys.exit("FACELIN_CUDA=1 but a CUDA build is not possible: " + "; ".join(missing))
    return not missing


def pip_cuda_include_dirs():
    """Headers of the pip-installed CUDA wheels (nvidia/cu13/include and similar)."""
    roots = site.getsitepackages() + [site.getusersitepackages()]
    found = []
    for root in roots:
        found += sorted(glob.glob(os.path.join(root, "nvidia", "cu[0-9]*", "include")))
    return found


def extension():
    sources = ["csrc/facelin.cpp"] + sorted(glob.glob("csrc/cpu/*.cpp"))
    cxx_flags = ["-O3", "-std=c++20", "-fopenmp"]
    if wants_cuda():
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        return CUDAExtension(
            "facelin._C",
            sources,
            include_dirs=pip_cuda_include_dirs(),
            define_macros=[("FACELIN_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-std=c++20"]},
            extra_link_args=["-fopenmp"],
        )
    return CppExtension(
        "facelin._C",
        sources,
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=["-fopenmp"],
    )


setup(
    name="facelin",
    version="0.1.0",
    description="Is a face CNN's code linear in a shape-appearance space? A reproduction "
    "of Sun, Dong & Hu (2019) with a compiled C++/CUDA core.",
    packages=find_packages(include=["facelin", "facelin.*"]),
    python_requires=">=3.10",
    install_requires=requirements(),
    ext_modules=[] if os.environ.get("FACELIN_NO_EXT") == "1" else [extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    zip_safe=False,
)
