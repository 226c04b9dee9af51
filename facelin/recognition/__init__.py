"""Face identification and verification on equal terms, with bootstrap intervals.

All metric functions take plain feature matrices (one row per image), so any
representation is scored the same way: a CNN's descriptors, parameters decoded from its
units, responses predicted from face parameters, the parameters themselves, or pixels.

- Metrics: rank-1 identification against a gallery of one image per identity; the
  verification ROC of all pairs (scikit-learn's ``roc_curve``), its AUC, equal error
  rate (EER) and true-accept rate (TAR) at fixed false-accept rates (FAR).
- :func:`bootstrap`: intervals by resampling evaluation identities, and paired intervals
  of every route's difference from a reference route on the same resamples.
- :func:`metric_table`: every distance (Euclidean, cosine, each raw and whitened) for
  every route, the one reported chosen on the fitting identities.
- :func:`claim2_verdict`: the chapter's decision rule, from the paired intervals.
- :func:`identity_features` / :func:`recognition_routes`: synthetic identities under two
  landmark conditions, recorded once and cached; :func:`nuisance_sweep`.
- :func:`lfw_pairs_protocol`: LFW's standard 10-fold protocol for any extractor.
- :func:`summary_table`, :func:`roc_figure`, :func:`sweep_figure`,
  :func:`claim2_findings`: the chapter's tables, figures and findings.
"""
from .lfw import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
from .report import *  # noqa: F401,F403
from .resample import *  # noqa: F401,F403
from .routes import *  # noqa: F401,F403
from .verdict import *  # noqa: F401,F403
from . import lfw, metrics, report, resample, routes, verdict

__all__ = (metrics.__all__ + resample.__all__ + verdict.__all__ + routes.__all__
           + report.__all__ + lfw.__all__)
