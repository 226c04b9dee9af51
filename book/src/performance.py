# %% [markdown]
# # Performance
#
# Every finding in this book rests on two kinds of heavy work: running a face network
# over thousands of faces while recording thousands of its units, and fitting linear
# models to the responses. facelin does both in a compiled C++/CUDA core. This page runs
# the benchmark scripts of the repository's `benchmarks/` folder and shows what they
# measure, as ratios measured side by side in one run.
#
# The scripts run here in their **quick sizes** (small inputs: 128 faces instead of
# 2,000 for the recording benchmark, 32 chips for the descriptor benchmark), so that
# this page executes in a few minutes on two cores. The least-squares benchmark takes
# minutes (it times himalaya and a sweep over sizes), so its tables are those recorded
# in `benchmarks/results/bench_linalg.json`, with the machine and its load average at
# the time. Their default sizes are the ones quoted in the text; run, for example,
# `python benchmarks/bench_extract.py` for the full table. Absolute times depend on the
# machine and on whatever else it is doing, so the ratios matter more than the seconds.
# Every row gives the best (min), median and worst (max) time over its repeats, and
# "x floor": its best time over the best time of the **floor**, the work that the
# problem cannot avoid (named for each workload): the bare forward pass for recording,
# the matrix products A^T A and A^T B for least squares.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from facelin import performance

print(performance.machine())

# %%
tables = performance.run_benchmarks(Path("..") / "benchmarks", tempfile.mkdtemp())
for name, table in tables.items():
    if table.get("recorded"):
        print(f"{name}: recorded table, on {table['machine']}")
    else:
        print(f"{name}: run here, {table['wall_s']:.0f} s")

# %% [markdown]
# ## Recording unit responses
#
# `facelin.extract.record` puts a forward hook on every layer asked for; the hook hands
# the layer's output, where it lies, to the compiled op `gather_units`, which writes the
# chosen units straight into the batch's rows of one preallocated response matrix. The
# usual way (thingsvision, Net2Brain and brain-score's model tools work like this)
# clones every layer's whole output, copies it to the host, concatenates the batches and
# indexes
# the units at the end; torchvision's `create_feature_extractor` instead traces a
# sub-graph that returns the layers, which still materialises every whole layer each
# batch. The fair baseline does what `record` does in plain PyTorch: hooks that index
# the chosen units of each output where it lies, without a clone, and write them into
# one preallocated matrix. The benchmark records dlib's ResNet: all 29 ReLU layers with
# 10,000 units sampled across them, plus the pooled (256-d) and descriptor (128-d)
# layers. Each method's response matrix is checked equal, element for element, to
# `record`'s. `seconds` is the median; `x_floor` the best time over the best time of
# the bare forward pass.

# %%
display(Markdown(performance.markdown_table(
    tables["bench_extract"],
    ["method", "units", "seconds_min", "seconds", "seconds_max", "x_floor", "peak_mb",
     "equal_to_record"])))

# %%
extract_rows = {row["key"]: row for row in tables["bench_extract"]["rows"]}
print(f"time inside the gather op: {extract_rows['record']['gather_share']:.2%} of a "
      f"record pass")

# %% [markdown]
# The gather op against its plain-PyTorch composition, on one batch of the captured
# outputs of every requested layer: indexing the chosen units of each output into the
# matrix (floor: one copy of the batch's chosen units into it).

# %%
display(Markdown(performance.markdown_table(
    {"rows": tables["bench_extract"]["op_rows"]},
    ["method", "seconds_min", "seconds", "seconds_max", "x_floor", "speedup"])))

# %% tags=["nbval-check-output"]
print("units recorded:", extract_rows["record"]["units"])
print("baselines equal to record, element for element:",
      all(extract_rows[k]["equal_to_record"]
          for k in ("hooks_index", "hooks_clone", "fx_subgraph")))

# %% [markdown]
# `x_floor` is the time of a pass over the faces divided by the time of the bare forward
# pass (1 = recording is free); on a machine shared with other work it moves by several
# percent from run to run, for every method alike. The time spent inside the gather op
# itself, timed call by call within one pass, is the steadier measure of what recording
# costs (printed above). `peak_mb` is the growth of the process's peak resident memory
# during the pass. At these quick sizes both are dominated by the forward pass and by
# one batch of activations; the differences grow with the number of faces, because the
# clone and sub-graph baselines keep (or copy) whole layers while `record` keeps only
# the chosen units: with 2,000 faces the 29 ReLU layers hold about 5 GB of float32
# activations against 83 MB for the 10,384 recorded units.

# %%
fig = performance.plot_column(tables["bench_extract"], "peak_mb",
                              "peak memory growth during the pass, MB (log scale)",
                              log=True)
plt.show()

# %% [markdown]
# ## Least squares by condition number
#
# `facelin.linalg.lstsq` solves many independent problems in the compiled core, each by
# the cheapest method that its own condition estimate allows (read off the Cholesky
# factor of its Gram matrix, not an eigendecomposition): the normal equations up to
# cond 16, one step of corrected semi-normal equations (few right-hand sides) up to
# 1e5, else CholeskyQR2, with a third pass where the second Cholesky factor shows the
# basis short of orthonormal (from about cond 1e8; the first pass shifted where A^T A
# has no Cholesky factor), and the minimum-norm SVD solution for rank-deficient
# problems. The workload: 32 problems of
# 2000 x 50 with 50 right-hand sides, B = A X plus noise, designs with singular values
# spread log-uniformly over the condition number.
#
# **Decision rule**, per condition number, computed by
# `facelin.performance.condition_verdicts`: the solver is *near the floor* when its
# best time is at most 1.5 times that of the floor (the batched products A^T A and
# A^T B), judged up to cond 1e6; *not slower* when it is at least as fast as
# `torch.linalg.lstsq` (judged up to 1e8); *accurate* when its relative error against
# LAPACK's gelsd is at most 10 times that of `torch.linalg.lstsq` (Householder QR with
# column pivoting). The control: the normal equations in plain PyTorch, as fast as the
# floor but, from cond 1e2 on, orders of magnitude less accurate, which the rule must
# and does flag.

# %%
linalg_table = tables["bench_linalg"]
env = linalg_table["environment"]
print(f"recorded on {env['machine']}; load average {env['load_average_before']} "
      f"before, {env['load_average']} after; {linalg_table['repeats']} repeats")
display(Markdown(performance.markdown_table(
    {"rows": performance.condition_rows(linalg_table)})))

# %%
for verdict in performance.condition_verdicts(linalg_table):
    print(verdict)
control = performance.condition_verdicts(linalg_table, "composition")
print("control, the normal equations in plain PyTorch: accurate at each cond:",
      [v["accurate"] for v in control])

# %% [markdown]
# What the verdicts rest on: a well-conditioned problem needs only the Gram matrices and
# one Cholesky factor, so it runs at the floor. From cond 16 on, an error within a small
# multiple of Householder QR's needs a second pass over the data: CholeskyQR2 forms
# Q1 = A R^-1 and the products Q1^T [Q1 B] (the second Q is never formed), about twice
# the floor's arithmetic when there are as many right-hand sides as columns (the
# correction step of the semi-normal equations, taken with few right-hand sides, costs
# B - A x and A^T r, the same order). The compiled core still lands well under twice
# the floor's time because it copies each problem once into a column-major buffer, where
# every one of these products runs faster than the floor's own products on the
# row-major input. Where a third pass is needed (from about cond 1e8) it costs one more
# product with A, still less than the pivoted QR of `torch.linalg.lstsq`. The normal
# equations alone stay at the floor but lose accuracy as cond^2, which the control
# shows.
#
# ## Time against size
#
# The same comparison around that workload, one size at a time (n rows, p columns, the
# number of problems, the number of right-hand sides), with well-conditioned Gaussian
# designs: best seconds of facelin, `torch.linalg.lstsq` and the floor.

# %%
fig = performance.plot_scaling(linalg_table)
plt.show()

# %% [markdown]
# ## Each compiled op against its plain-PyTorch composition
#
# A compiled op earns its place only where it beats the same computation written with
# PyTorch's own operators; the rest are plain PyTorch. `gather_gram` (the normal
# equations of many column subsets, cut out of one Gram matrix) is compared with
# advanced indexing, `ridge_path_sse` (held-out residuals at every ridge penalty) with
# the dense residuals in blocks of targets; the batched solver with the normal equations
# above. The `speedup` column is the composition's (or the alternative's) best time over
# facelin's. The linalg API rows compare with `torch.linalg.lstsq` and himalaya's
# `RidgeCV`.

# %%
display(Markdown(performance.markdown_table(
    {"rows": [row for row in linalg_table["rows"]
              if row.get("section") in ("ops", "api")]},
    ["item", "method", "seconds_min", "seconds_median", "seconds_max", "x_floor",
     "speedup", "accuracy"])))

# %% [markdown]
# ## The other benchmarks
#
# The tables of every other benchmark script found in the repository, as printed.

# %%
for name, table in tables.items():
    if name in ("bench_extract", "bench_linalg"):
        continue
    if "stdout" in table:
        print(table["stdout"])
    else:
        display(Markdown(f"**{name}** (recorded on {table['machine']})\n\n"
                         + performance.markdown_table(table)))

# %% [markdown]
# ## What it means for a user
#
# Recording costs about as much as the forward pass itself, so the time to record a face
# set is the time to run the network over it: the rate measured here gives the estimate
# below for the face sets this book uses. Memory follows the units chosen, not the
# layers, so a response matrix of N faces and U units takes 4 N U bytes in float32.

# %%
faces_per_second = extract_rows["record"]["faces"] / extract_rows["record"]["seconds"]
for faces in (2_000, 10_000, 100_000):
    minutes = faces / faces_per_second / 60
    print(f"{faces:>7,} faces: about {minutes:5.1f} min to record, "
          f"{4 * faces * 10_384 / 2**30:5.2f} GiB for 10,384 float32 responses")

# %% [markdown]
# When the faces do not fit in memory, `facelin.extract.record_stats` keeps only float64
# sums and cross-products, which equal the stored-response fits to float64 rounding. Its
# memory no longer depends on the number of faces at all, only on the number of units:
# decoders need the U x U Gram matrix of the responses, encoders only U x 50 cross-
# products. Under `torchrun` every process takes a shard of the faces and the
# statistics are summed across processes, so the number of faces scales with the number
# of processes (see the README for the command).

# %% tags=["nbval-check-output"]
for units in (1_000, 10_000, 50_000):
    gram = performance.gram_memory_gib(units)
    print(f"{units:>6,} units: Gram matrix {gram:7.2f} GiB, encoder statistics "
          f"{8 * units * 50 / 2**20:7.2f} MiB, for any number of faces")
