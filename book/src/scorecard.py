# %% [markdown]
# # Scorecard
#
# One row per claim of Sun, Dong & Hu (2019) and per anchor number of Chang & Tsao (2017)
# and dlib: the anchor's value and source, the value this book measured and the chapter
# that measured it, and a verdict: *holds*, *partly* or *does not hold*. Every measured
# value is read from the findings file that its chapter wrote when it was executed
# (`book/findings/<chapter>.json`, see `facelin.findings`); nothing here is typed in. A
# chapter that has not saved findings shows "not measured". A claim's verdict is the one
# its chapter saved, where it saved one; for claim 3 the rule is
# `facelin.scorecard.claim3_verdict`: in the pooled layer and the descriptor, does a majority of the trained
# network's units fail the axis model beyond their matched axis nulls, by the model
# comparison and by Chang & Tsao's orthogonal-flatness test? Both: holds; one: partly;
# neither: does not hold. Rows without a rule show "-" (the chapter discusses them).

# %%
import pandas as pd

from facelin import scorecard

pd.set_option("display.max_colwidth", None)
card = scorecard.table()
card.style.hide(axis="index").set_properties(**{"text-align": "left"})

# %%
print("chapters with findings:",
      sorted(set(card.chapter[~card.measured.str.startswith(scorecard.NOT_MEASURED)])))

# %% tags=["nbval-check-output"]
claim3 = card[card.chapter == "claim3_axis_model"].iloc[0]
print("claim 3:", claim3.verdict)

# %% [markdown]
# ## Where our protocol necessarily departs from the paper's
#
# The paper's protocol is not public (only its abstract is), so every protocol here is
# Chang & Tsao's, written out in the chapters. The departures that follow from that, and
# from what can be computed here:
#
# - **The face space.** Built from 68 dlib landmarks on the 100 real LFW faces that ship
#   with scikit-image (25x25 px, upsampled), with a piecewise-affine warp; Chang & Tsao used
#   58 hand-placed landmarks on 200 frontal FEI faces and a thin-plate spline. Our
#   appearance model is blurrier, and the faces less varied, than theirs (the face-space
#   chapter lets a reader build it from FEI or LFW when the data are at hand).
# - **The network.** dlib's ResNet (the one state-of-the-art face CNN whose weights ship in
#   a package), rebuilt in PyTorch and checked against dlib; the paper's networks are not
#   named in its abstract.
# - **Units.** A seeded sample of units per layer (the chapters state how many), not every
#   unit; a CNN unit's response is deterministic, so what a model leaves unexplained is
#   structure the 50 parameters or the model miss, not trial-to-trial noise as in a cell.
# - **Recognition.** Identities drawn in the parameter space with explicit nuisances
#   replace LFW's pairs protocol when LFW is absent; dlib's 99.38% on LFW is quoted, not
#   re-measured.
# - **Statistics.** Verdicts on single units are calibrated against matched simulated
#   axis units and simulated populations, which Chang & Tsao did not need for cells they
#   tested with engineered faces; fixed thresholds (p < 0.01 across bins, the 95th
#   percentile of the nulls) are our choices, stated where they are used.
