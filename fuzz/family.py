"""What a row of the fuzz table is (fuzz/table.py lists them): the math one
op computes (Family) and one public entry point of it (EntryPoint), plus the
helpers the rows share."""
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import reference
from test_roi_align_box_grad import TOLERANCE as BOX_GRADIENT_TOLERANCE

# Oracle work (bilinear samples times channels) above which a case is only
# checked for safety: the oracle is plain Python, and a large sampling_ratio
# puts millions of samples on the map.
ORACLE_BUDGET = 20_000


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


def sample_work(bins):
    """Samples the oracle visits in a grid of reference bins (their visit(),
    counted up to just past the budget)."""
    with np.errstate(all="ignore"):
        return sum(sum(1 for _ in itertools.islice(b.visit(), ORACLE_BUDGET + 1))
                   for line in bins for b in line)


def align_oracle_work(features, row, size, scale, p, T):
    """Samples the oracle visits for one RoI of roi_align."""
    H, W = features.shape[2:]
    aligned = bool(p["aligned"])
    with np.errstate(all="ignore"):
        return sample_work(reference._align_bins(row, size, scale, p["sampling_ratio"],
                                                 0.5 if aligned else 0.0, not aligned, H, W, T))


def integer_bins_work(features, row, size, scale, p, T):
    """Integer bins never reach past the map."""
    return features.shape[2] * features.shape[3]


# Boxes whose scaled coordinates (and angle in degrees) stay within this
# have sample positions exact to ~1e-11 px in float64, far below the step.
DIFFERENCED_EXTENT = 1e4


def differenced_rois_grad(forward, grad, table, scale, T):
    """d sum(forward(rois) * grad) / d(box coordinates) of the oracle by
    differences one step ahead and one behind, per RoI and coordinate; NaN
    where the two disagree: a kink of the bilinear surface, a change of the
    adaptive grid or the map's edge within a step, where the op's derivative
    (one-sided there) has nothing to be compared with. Only in float64 (T)
    and for boxes within DIFFERENCED_EXTENT: in float32, or far out, the
    op's own rounding is beyond the differences' accuracy."""
    if T is not np.float64:
        return None
    result = np.full((len(table), table.shape[1] - 1), np.nan)
    for k, row in enumerate(np.asarray(table, np.float64)):
        if not np.all(np.abs(row[1:]) * max(scale, 1.0) <= DIFFERENCED_EXTENT):
            continue

        def loss(shift):
            return float(np.sum(forward(row[None] + shift) * grad[k:k + 1]))
        base = loss(0)
        for j in range(1, table.shape[1]):
            step = np.zeros(table.shape[1])
            step[j] = (row[j] + 1e-6) - row[j]
            ahead, behind = (loss(step) - base) / step[j], (base - loss(-step)) / step[j]
            if abs(ahead - behind) <= BOX_GRADIENT_TOLERANCE["atol"] + \
                    BOX_GRADIENT_TOLERANCE["rtol"] * abs(ahead):
                result[k, j - 1] = (ahead + behind) / 2
    return result


def differences_agree(result, want, rounding, features, table, size, scale):
    """The op's box gradient against differenced_rois_grad where it answers,
    with the tolerance of the op's own box-gradient test."""
    known = ~np.isnan(want)
    error = np.abs(result - want) - rounding
    return bool(np.all(error[known] <= BOX_GRADIENT_TOLERANCE["atol"] +
                       BOX_GRADIENT_TOLERANCE["rtol"] * np.abs(want[known])))


SAMPLING_RATIOS = [-1, -1, 1, 2, 3]
ALIGNED = [False, True, 0, 1, np.bool_(True)]  # any truthy value is accepted
BROKEN_SAMPLING_RATIOS = [0, -2, -7, 1.5, "2", None, True]


@dataclass(frozen=True)
class Family:
    """The math one op computes, shared by its forward, backward and object
    entry points. `features` below is what the op reads in NCHW (one map, or
    a pyramid's list of maps), `scale` its spatial-scale argument."""
    name: str
    default_params: dict  # the op parameters of hand-written cases
    valid_params: Callable  # draw -> {name: value} of valid op parameters
    broken_params: dict  # argument -> invalid values (TypeError / ValueError)
    reference_forward: Callable  # (features, table, size, scale, params, T) -> (out, argmax|None)
    reference_backward: Callable  # (grad, table, features, size, scale, params, argmax, T) -> grad
    backward_kwargs: Callable  # (scale, params) -> keywords of the backward beside grad/rois
    has_argmax: Callable  # params -> whether forward returns / backward needs an argmax
    oracle_work: Callable  # (features, row, size, scale, params, T) -> samples the oracle visits
    argmax_limit: Callable  # (shape, params) -> exclusive bound of a valid argmax
    # Whether the oracle's answer is defined on NaN / inf features: a max
    # over NaN has no "first maximum", so only safety is checked there.
    defined_for_nonfinite: Callable  # params -> bool
    box_columns: int = 4  # coordinates per RoI after the batch index
    argmax_dtype: Callable = None  # (shape, params) -> the dtype of a forward's argmax
    # Features channels for C output channels and output size (PH, PW).
    input_channels: Callable = field(default=lambda C, size: C)
    # (values NCHW, depth) -> features; (spatial_scale, depth) -> scale.
    features: Callable = field(default=lambda values, depth: values)
    scale_argument: Callable = field(default=lambda scale, depth: scale)
    # (row, scale, params, T) -> whether the oracle has a float answer for the
    # box (finite_after_scaling for corner boxes).
    finite_geometry: Callable = field(
        default=lambda row, scale, p, T: finite_after_scaling(row, scale, T))
    input_shape_keyword: str = "input_shape"  # the backward's; None: it reads features=
    # T -> relative tolerance where the op does not follow the oracle's order
    # of operations (None: a few ulps).
    tolerance: Callable = None
    # The gradient for box coordinates, where the op gives it:
    # (grad, table, features, size, scale, params, T) -> (K, box columns),
    # NaN where the oracle has no answer; None: no answer at all.
    reference_rois_grad: Callable = None
    # (grad_rois, oracle's, its rounding to the result's dtype, features in T,
    # table, size, scale) -> whether they agree
    rois_grad_agrees: Callable = None
    # The parameter sets the memory-layout, thread and leak tests call each
    # row with, as Recipe.params ((): default_params): one per code path.
    robustness_params: tuple = ((),)


@dataclass(frozen=True)
class EntryPoint:
    name: str
    family: Family
    kind: str  # "forward", "backward" or "object" (forward then backward)
    function: Callable
    takes_validate: bool = True
    # Keywords every call passes (the box-gradient rows' need_rois_grad=True)
    # and op parameters they pin (that option needs mode="avg").
    fixed_kwargs: dict = field(default_factory=dict)
    fixed_params: dict = field(default_factory=dict)
    reads_features: bool = False  # a backward that takes the forward's features=
