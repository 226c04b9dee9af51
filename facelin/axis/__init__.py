"""Chang & Tsao's axis model of face cells, and the tests that tell axis units apart.

An *axis unit* responds to a face ``x`` (a point of the shape-appearance space) through
one projection only: ``r = f(w . x)``, ramp-shaped along its axis ``w`` and flat along
every orthogonal direction. This module measures how far real units are from that:

- :func:`sta` and :func:`regression_axis`: the unit's axis, two ways;
- :func:`tuning`, :func:`orthogonal_axis`, :func:`flatness`: binned tuning along the
  axis and along the longest orthogonal axis, and statistics of both;
- :func:`compare_models`: cross-validated explained variance of the linear, axis,
  exemplar and a free reference model (kernel ridge tuned per unit), per unit, for
  thousands of units at once;
- :func:`simulate_axis_units`, :func:`simulate_exemplar_units` (in two geometries),
  :func:`matched_null`, :func:`control_populations`: populations whose answer is known;
- :func:`tuning_map`, :func:`engineered_test`: 2-d tuning maps and Chang & Tsao's
  engineered faces;
- :func:`unit_table`, :func:`departing`, :func:`claim3_verdict`: every unit beside its
  matched null, and the chapter's decision rule;
- :func:`study_network`, :func:`variant_verdicts`, :func:`engineered_units` and the
  findings helpers: the study of whole networks, layer by layer;
- :func:`departing_figure`, :func:`gain_figure`, :func:`tuning_figure`,
  :func:`engineered_figure`, :func:`engineered_example_figure`: the chapter's figures.

All functions take ``params`` (n faces x d dimensions) and ``responses`` (n faces x U
units) as numpy arrays or torch tensors and compute in float64.
"""
from .tuning_curves import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .simulate import *  # noqa: F401,F403
from .engineered import *  # noqa: F401,F403
from .verdict import *  # noqa: F401,F403
from .study import *  # noqa: F401,F403
from .figures import *  # noqa: F401,F403
from . import tuning_curves, models, simulate, engineered, verdict, study, figures

__all__ = (tuning_curves.__all__ + models.__all__ + simulate.__all__
           + engineered.__all__ + verdict.__all__ + study.__all__ + figures.__all__)
