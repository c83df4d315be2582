"""cyroi's public entry points, one row each. A new op slots into every
robustness test (fuzzing, memory layouts, threads, leaks, atheris) by adding
its Family (the math: parameters and reference oracle) and its rows here.

Every entry point is called the same way: features / grad_output, rois,
output_size, spatial_scale and the family's own parameters, with keywords.
"""
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st

import cyroi
import reference

# Oracle work (bilinear samples times channels) above which a case is only
# checked for safety: the oracle is plain Python, and a large sampling_ratio
# puts millions of samples on the map.
ORACLE_BUDGET = 20_000


@dataclass(frozen=True)
class Family:
    """The math one op computes, shared by its forward, backward and object
    entry points."""
    name: str
    default_params: dict  # the op parameters of hand-written cases
    valid_params: Callable  # draw -> {name: value} of valid op parameters
    broken_params: dict  # parameter -> invalid values (TypeError / ValueError)
    reference_forward: Callable  # (values, table, size, scale, params, T) -> (out, argmax|None)
    reference_backward: Callable  # (grad, table, shape, size, scale, params, argmax, T) -> grad
    backward_kwargs: Callable  # (scale, params) -> keywords of the backward beside grad/rois
    has_argmax: Callable  # params -> whether forward returns / backward needs an argmax
    oracle_work: Callable  # (shape, row, size, scale, params, T) -> samples the oracle visits
    argmax_limit: Callable  # (shape, params) -> exclusive bound of a valid argmax
    # Whether the oracle's answer is defined on NaN / inf features: a max
    # over NaN has no "first maximum", so only safety is checked there.
    defined_for_nonfinite: Callable  # params -> bool


@dataclass(frozen=True)
class EntryPoint:
    name: str
    family: Family
    kind: str  # "forward", "backward" or "object" (forward then backward)
    function: Callable
    takes_validate: bool = field(default=True)


# ------------------------------------------------------------------ roi_align

def _align_params(draw):
    return {"sampling_ratio": draw(st.sampled_from([-1, -1, 1, 2, 3])),
            "aligned": draw(st.sampled_from([False, True, 0, 1, np.bool_(True)])),
            "mode": draw(st.sampled_from(["avg", "max"]))}


def _align_reference_forward(values, table, size, scale, p, T):
    return reference.roi_align(values, table, size, scale, p["sampling_ratio"],
                               bool(p["aligned"]), p["mode"], dtype=T)


def _align_reference_backward(grad, table, shape, size, scale, p, argmax, T):
    return reference.roi_align_backward(grad, table, shape, size, scale, p["sampling_ratio"],
                                        bool(p["aligned"]), p["mode"], argmax, dtype=T)


def _align_oracle_work(shape, row, size, scale, p, T):
    """Samples the oracle visits for one RoI (its bins' visit(), counted up
    to just past the budget)."""
    H, W = shape[2:]
    aligned = bool(p["aligned"])
    with np.errstate(all="ignore"):
        bins = reference._align_bins(row, size, scale, p["sampling_ratio"],
                                     0.5 if aligned else 0.0, not aligned, H, W, T)
        return sum(sum(1 for _ in itertools.islice(b.visit(), ORACLE_BUDGET + 1))
                   for line in bins for b in line)


ROI_ALIGN = Family(
    name="roi_align",
    default_params={"sampling_ratio": 2, "aligned": False, "mode": "avg"},
    valid_params=_align_params,
    broken_params={"sampling_ratio": [0, -2, -7, 1.5, "2", None, True],
                   "mode": ["Max", "mean", "", None, 1]},
    reference_forward=_align_reference_forward,
    reference_backward=_align_reference_backward,
    backward_kwargs=lambda scale, p: {"spatial_scale": scale, **p},
    has_argmax=lambda p: p.get("mode") == "max",
    oracle_work=_align_oracle_work,
    # Sample indices iy * gw + ix of a grid of at most (2^31 - 1)^2 samples.
    argmax_limit=lambda shape, p: (2**31 - 1) ** 2,
    defined_for_nonfinite=lambda p: p.get("mode") != "max",
)

# ------------------------------------------------------------------- roi_pool


def _pool_reference_forward(values, table, size, scale, p, T):
    return reference.roi_pool(values, table, size, scale, dtype=T)


def _pool_reference_backward(grad, table, shape, size, scale, p, argmax, T):
    return reference.roi_pool_backward(grad, table, shape, size, scale, argmax, dtype=T)


def _pool_oracle_work(shape, row, size, scale, p, T):
    """Integer bins never reach past the map."""
    return shape[2] * shape[3]


ROI_POOL = Family(
    name="roi_pool",
    default_params={},
    valid_params=lambda draw: {},
    broken_params={},
    reference_forward=_pool_reference_forward,
    reference_backward=_pool_reference_backward,
    backward_kwargs=lambda scale, p: {},
    has_argmax=lambda p: True,
    oracle_work=_pool_oracle_work,
    argmax_limit=lambda shape, p: shape[2] * shape[3],  # h * W + w
    # A strict > scan from the first element: NaN handling is the same scan.
    defined_for_nonfinite=lambda p: True,
)

ENTRY_POINTS = (
    EntryPoint("roi_align", ROI_ALIGN, "forward", cyroi.roi_align),
    EntryPoint("roi_align_backward", ROI_ALIGN, "backward", cyroi.roi_align_backward),
    EntryPoint("RoIAlign", ROI_ALIGN, "object", cyroi.RoIAlign, takes_validate=False),
    EntryPoint("roi_pool", ROI_POOL, "forward", cyroi.roi_pool),
    EntryPoint("roi_pool_backward", ROI_POOL, "backward", cyroi.roi_pool_backward),
    EntryPoint("RoIPool", ROI_POOL, "object", cyroi.RoIPool, takes_validate=False),
)

BY_NAME = {entry.name: entry for entry in ENTRY_POINTS}


def compute_dtype(dtype):
    """The precision the SPEC computes a features dtype in: float64 for
    float64 (any byte order) and wider, float32 otherwise (float16 too)."""
    return np.float64 if np.dtype(dtype).itemsize >= 8 else np.float32


def finite_after_scaling(row, scale, T):
    """The box's scaled corners and extent exist in T. Past T's range the
    SPEC's real-number formulas have no float answer, and implementations
    legitimately differ (max vs fmax on inf - inf); those boxes are checked
    for safety only."""
    with np.errstate(all="ignore"):
        corners = [T(v) * T(scale) for v in row[1:5]]
        extents = [corners[2] - corners[0], corners[3] - corners[1]]
    return all(math.isfinite(float(v)) for v in corners + extents)
