"""Linear encoding and decoding of unit responses in the face-parameter space.

Chang & Tsao (2017) showed that face cells are *encoded* linearly by a face's shape and
appearance parameters (each cell's response is ``w . x + b``) and that the parameters
are
*decoded* linearly from a population (``x = B r + c``), well enough to reconstruct the
face and to pick it out among distractors. This module fits both directions, scores them
on held-out faces, and runs the identification test over random unit subsets.
"""
from .ridge import *  # noqa: F401,F403
from .identification import *  # noqa: F401,F403
from .controls import *  # noqa: F401,F403
from .verdict import *  # noqa: F401,F403
from .study import *  # noqa: F401,F403
from . import ridge, identification, controls, verdict, study

__all__ = (ridge.__all__ + identification.__all__ + controls.__all__
           + verdict.__all__ + study.__all__)
