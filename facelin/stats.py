"""Streaming statistics of recorded responses and the linear fits they give.

`ResponseStats` holds, in float64, the count, means and centred cross-products of
responses R (images x units) and targets T (images x P) that linear encoders
(R ~ T) and decoders (T ~ R) need, so data sets too large to hold can be fitted.
`StatsAccumulator` builds them batch by batch; `combine` merges the statistics of
disjoint sets of images and `allreduce` does it across the processes of a
``torch.distributed`` group. `facelin.extract.record_stats` records and accumulates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from . import _ops

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LinearFit", "ResponseStats", "StatsAccumulator", "as_targets", "combine",
           "distributed_group", "allreduce"]


@dataclass
class LinearFit:
    """A least-squares fit ``outputs ~ inputs @ coef.T + intercept``.

    ``coef`` is (outputs, inputs) (scikit-learn's ``coef_`` orientation), ``intercept``
    (outputs,), ``explained_variance`` (outputs,) that of each output on the data the fit
    was made on (1 - SSE / SST).
    """

    coef: torch.Tensor
    intercept: torch.Tensor
    explained_variance: torch.Tensor

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """Predicted outputs for (n, inputs) ``inputs``."""
        inputs = torch.as_tensor(inputs, dtype=self.coef.dtype, device=self.coef.device)
        return inputs @ self.coef.T + self.intercept


@dataclass
class ResponseStats:
    """Streaming statistics of responses R (n, U) and targets T (n, P), in float64.

    ``count`` images; ``mean_responses`` and ``mean_targets``; the centred
    cross-products ``rr`` = (R - mean)^T (R - mean) (U, U; None when not accumulated),
    ``rt`` (U, P) and ``tt`` (P, P); ``ss_responses`` the centred sum of squares of
    every unit. They are accumulated about a shift (the first batch's mean), which keeps
    them accurate when means are large against spreads. ``units`` (a pandas DataFrame,
    one row per unit: layer, channel, y, x, pooling) and ``layers`` describe the
    columns, as in :class:`Responses`.
    """

    count: int
    mean_responses: torch.Tensor
    mean_targets: torch.Tensor
    rr: torch.Tensor | None
    rt: torch.Tensor
    tt: torch.Tensor
    ss_responses: torch.Tensor
    units: pd.DataFrame = field(repr=False)
    layers: dict[str, slice] = field(repr=False)

    @property
    def sum_responses(self) -> torch.Tensor:
        return self.mean_responses * self.count

    @property
    def sum_targets(self) -> torch.Tensor:
        return self.mean_targets * self.count

    def merge(self, other: ResponseStats) -> ResponseStats:
        """Statistics of the union of two disjoint sets of images (Chan et al.'s
        update)."""
        if not self.units.equals(other.units):
            raise ValueError("merge: the two statistics describe different units")
        if (self.rr is None) != (other.rr is None):
            raise ValueError(
                "merge: only one of the two statistics has the response Gram "
                "matrix (rr)"
            )
        return combine([self, other])

    def fit_encoder(self, alpha: float = 0.0) -> LinearFit:
        """Fit every unit's response from the targets: R ~ T @ coef + intercept.

        ``alpha`` >= 0 adds a ridge penalty ``alpha * |coef|^2`` (no penalty on the
        intercept). Equal, to float64 rounding, to least squares on the stored, centred
        data. Raises ValueError when the targets' centred Gram matrix is singular.
        """
        coef = _solve_normal_equations(self.tt, self.rt.T, alpha, "targets' (encoder)")
        return _linear_fit(
            coef,
            self.tt,
            self.rt.T,
            self.mean_targets,
            self.mean_responses,
            self.ss_responses,
        )

    def fit_decoder(self, alpha: float = 0.0) -> LinearFit:
        """Fit every target from the responses: T ~ R @ coef + intercept.

        Needs ``rr`` (``record_stats(..., response_gram=True)``, the default). With more
        units than images the normal equations are singular: pass ``alpha`` > 0.
        """
        if self.rr is None:
            raise ValueError("fit_decoder needs the responses' Gram matrix; record the "
                             "statistics with response_gram=True")
        coef = _solve_normal_equations(self.rr, self.rt, alpha, "responses' (decoder)")
        return _linear_fit(
            coef,
            self.rr,
            self.rt,
            self.mean_responses,
            self.mean_targets,
            torch.diagonal(self.tt),
        )

    def fit_decoder_subsets(self, subsets, alpha: float = 0.0):
        """Decoders from many subsets of units at once: T ~ R[:, S_b] @ coef[b] +
        intercept[b].

        ``subsets`` is (batch, s) int64 column indices. Returns ``(coef, intercept)`` of
        shapes (batch, s, P) and (batch, P); the streaming counterpart of
        :func:`facelin.linalg.subset_lstsq` on the stored responses (each subset's
        normal equations are gathered from ``rr`` and solved in the compiled core).
        """
        if self.rr is None:
            raise ValueError(
                "fit_decoder_subsets needs the responses' Gram matrix; record "
                "the statistics with response_gram=True"
            )
        subsets = torch.as_tensor(subsets, dtype=torch.int64)
        coef = _solve_subsets(self.rr, self.rt, subsets, alpha, "responses' (decoder)")
        intercept = self.mean_targets - torch.einsum("bs,bsk->bk",
                                                     self.mean_responses[subsets], coef)
        return coef, intercept


def _linear_fit(coef, gram, cross, mean_inputs, mean_outputs, ss_outputs) -> LinearFit:
    """Intercept and training R^2 of centred coefficients, from the moments alone.

    The residual sum of squares of output j is SST_j - 2 b_j.c_j + b_j^T G b_j, for
    ordinary and ridge solutions alike.
    """
    explained = 2 * (coef * cross).sum(0) - (coef * (gram @ coef)).sum(0)
    return LinearFit(coef=coef.T, intercept=mean_outputs - mean_inputs @ coef,
                     explained_variance=explained / ss_outputs)


def _solve_normal_equations(gram, cross, alpha, what):
    """Solve (gram + alpha I) coef = cross with facelin's subset solver (one subset:
    all)."""
    coef = _solve_subsets(gram, cross, torch.arange(gram.shape[0])[None], alpha, what)
    return coef[0]


def _solve_subsets(gram, cross, subsets, alpha, what):
    if not isinstance(alpha, (int, float)) or alpha < 0:
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    subsets = torch.as_tensor(subsets, dtype=torch.int64)
    if subsets.dim() != 2 or subsets.shape[1] == 0:
        raise ValueError(f"subsets must be (batch, s) with s >= 1, got shape "
                         f"{tuple(subsets.shape)}")
    lo, hi = int(subsets.min()), int(subsets.max())
    if lo < 0 or hi >= gram.shape[0]:
        raise IndexError(f"subsets hold indices in [{lo}, {hi}] but there are "
                         f"{gram.shape[0]} inputs")
    ridge = torch.full((subsets.shape[0],), float(alpha), dtype=torch.float64)
    try:
        return _ops.subset_solve(
            gram.contiguous(), cross.contiguous(), subsets.contiguous(), ridge
        )
    except RuntimeError as err:
        raise ValueError(
            f"the {what} centred Gram matrix is singular to working precision: too few "
            f"images for the number of inputs, or constant / collinear inputs; pass "
            f"alpha > 0 ({err})") from None


def as_targets(targets):
    """``targets`` as an (images, targets) tensor (a 1-d vector becomes one column), or a
    clear error for other shapes and non-numeric dtypes."""
    t = torch.as_tensor(targets)
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise ValueError(
            f"targets must be (images, targets), got shape {tuple(t.shape)}"
        )
    if not (t.dtype.is_floating_point or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"targets must be numeric, got {t.dtype}")
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        row = int((~torch.isfinite(t)).any(1).nonzero()[0])
        raise ValueError(f"targets has NaN or Inf (first in row {row})")
    return t


class StatsAccumulator:
    """Shifted float64 sums: accurate centred moments in one pass over the batches."""

    def __init__(self, n_units, n_targets, device, response_gram):
        f64 = dict(dtype=torch.float64, device=device)
        self.count = 0
        self.shift_r = self.shift_t = None
        self.sum_r = torch.zeros(n_units, **f64)
        self.sum_t = torch.zeros(n_targets, **f64)
        self.rr = torch.zeros(n_units, n_units, **f64) if response_gram else None
        self.ss_r = None if response_gram else torch.zeros(n_units, **f64)
        self.rt = torch.zeros(n_units, n_targets, **f64)
        self.tt = torch.zeros(n_targets, n_targets, **f64)
        self.n_targets = n_targets

    def add(self, responses, targets):
        if self.shift_r is None:
            self.shift_r, self.shift_t = responses.mean(0), targets.mean(0)
        r = responses - self.shift_r
        t = targets - self.shift_t
        self.count += r.shape[0]
        self.sum_r += r.sum(0)
        self.sum_t += t.sum(0)
        if self.rr is not None:
            self.rr.addmm_(r.T, r)
        else:
            self.ss_r += (r * r).sum(0)
        self.rt.addmm_(r.T, t)
        self.tt.addmm_(t.T, t)

    def finish(self, units, layers):
        """Centred moments about the mean; an empty shard gives zeros (weight 0
        later)."""
        n = self.count
        if n == 0:
            self.shift_r, self.shift_t = torch.zeros_like(self.sum_r), torch.zeros_like(
                self.sum_t
            )
        d_r, d_t = self.sum_r / max(n, 1), self.sum_t / max(n, 1)
        rr = self.rr - n * torch.outer(d_r, d_r) if self.rr is not None else None
        ss_r = (
            torch.diagonal(rr).clone() if rr is not None else self.ss_r - n * d_r * d_r
        )
        return ResponseStats(
            count=n,
            mean_responses=(self.shift_r + d_r).cpu(),
            mean_targets=(self.shift_t + d_t).cpu(),
            rr=rr.cpu() if rr is not None else None,
            rt=(self.rt - n * torch.outer(d_r, d_t)).cpu(),
            tt=(self.tt - n * torch.outer(d_t, d_t)).cpu(),
            ss_responses=ss_r.cpu(),
            units=units,
            layers=layers,
        )


def _between_moments(counts, means_r, means_t, with_rr):
    """Overall means and the between-set part of the centred moments of disjoint
    sets."""
    n = counts.sum()
    mean_r = (counts[:, None] * means_r).sum(0) / n
    mean_t = (counts[:, None] * means_t).sum(0) / n
    weight = counts.sqrt()[:, None]
    dr, dt = weight * (means_r - mean_r), weight * (means_t - mean_t)
    return dict(count=int(n), mean_responses=mean_r, mean_targets=mean_t,
                rr=dr.T @ dr if with_rr else None, rt=dr.T @ dt, tt=dt.T @ dt,
                ss_responses=(dr * dr).sum(0))


def combine(parts):
    """Chan et al.'s combination: within-set moments plus the between-set part."""
    counts = torch.tensor([float(p.count) for p in parts], dtype=torch.float64)
    with_rr = parts[0].rr is not None
    total = _between_moments(counts, torch.stack([p.mean_responses for p in parts]),
                             torch.stack([p.mean_targets for p in parts]), with_rr)
    for key in ("rr", "rt", "tt", "ss_responses"):
        if total[key] is not None:
            total[key] = total[key] + sum(getattr(p, key) for p in parts)
    return ResponseStats(**total, units=parts[0].units, layers=parts[0].layers)


def distributed_group(distributed):
    """The process group to combine statistics over: the default group when
    torch.distributed is initialised and ``distributed`` is None or True, none when it is
    False; True without an initialised group is an error."""
    dist = torch.distributed
    ready = dist.is_available() and dist.is_initialized()
    if distributed is None:
        return dist.group.WORLD if ready else None
    if distributed and not ready:
        raise RuntimeError(
            "distributed=True but torch.distributed is not initialised; call "
            "torch.distributed.init_process_group first (torchrun sets up the "
            "environment)"
        )
    return dist.group.WORLD if distributed else None


def allreduce(local, group):
    """Combine every process's statistics; each process gets the statistics of all."""
    dist = torch.distributed
    device = (torch.device("cuda", torch.cuda.current_device())
              if dist.get_backend(group) == "nccl" else torch.device("cpu"))
    world = dist.get_world_size(group)
    # Counts and means of every process (small), then the sums of the within-process
    # moments.
    head = torch.cat([torch.tensor([float(local.count)], dtype=torch.float64),
                      local.mean_responses, local.mean_targets]).to(device)
    heads = [torch.empty_like(head) for _ in range(world)]
    dist.all_gather(heads, head, group=group)
    heads = torch.stack(heads).cpu()
    u = local.mean_responses.numel()
    total = _between_moments(heads[:, 0], heads[:, 1:1 + u], heads[:, 1 + u:],
                             local.rr is not None)
    for key in ("rr", "rt", "tt", "ss_responses"):
        within = getattr(local, key)
        if within is None:
            continue
        within = within.to(device).contiguous()
        dist.all_reduce(within, group=group)
        total[key] = total[key] + within.cpu()
    return ResponseStats(**total, units=local.units, layers=local.layers)
