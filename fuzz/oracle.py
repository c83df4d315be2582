"""What tests/reference.py says a case must give, row by row, and where it
has nothing to say.

Each RoI row is one of
- "compare": the oracle's answer is the contract; cyroi must match it.
- "zero": the batch index is NaN/inf or an integer outside [0, N) (only
  reachable with validate=False): the row reads as zeros, argmax -1, and adds
  nothing to the gradient.
- "safe": no oracle answer (a fractional batch index or non-finite box under
  validate=False; a box whose scaled corners overflow the compute dtype; an
  oracle too slow for the box; a max over NaN features): only the safety
  bounds of fuzz.check hold.
"""
import math

import numpy as np

from .family import ORACLE_BUDGET


def _integral(value):
    return math.isfinite(value) and value == math.floor(value)


def index_status(case):
    """Per RoI: "ok" (an image's index), "zero" (NaN, inf, or an integer
    outside [0, N)) or "fractional"."""
    N = case.values.shape[0]
    return np.array(["zero" if not math.isfinite(i) or (_integral(i) and not 0 <= i < N)
                     else "ok" if _integral(i) else "fractional"
                     for i in case.table[:, 0]], dtype=object)


def row_status(case):
    family, scale = case.entry.family, case.scale
    nonfinite_values = not np.isfinite(case.values).all()
    status = []
    for row, index in zip(case.table, index_status(case)):
        if index != "ok":
            status.append("zero" if index == "zero" else "safe")
        elif not family.finite_geometry(row, scale, case.params, case.T):
            status.append("safe")
        elif nonfinite_values and not family.defined_for_nonfinite(case.params):
            status.append("safe")
        elif family.oracle_work(case.features, row, case.size, scale, case.params,
                                case.T) * max(case.values.shape[1], 1) > ORACLE_BUDGET:
            status.append("safe")
        else:
            status.append("compare")
    return np.array(status, dtype=object)


def forward(case, rows):
    """The oracle's (out, argmax or None) for the selected rows, float64."""
    family = case.entry.family
    return family.reference_forward(case.features, case.table[rows], case.size, case.scale,
                                    case.params, case.T)


def backward(case, rows):
    """The oracle's gradient for features (NCHW, float64; a list for a
    pyramid) from the selected rows."""
    family = case.entry.family
    argmax = None if case.argmax_values is None else case.argmax_values[rows]
    return family.reference_backward(case.grad_values[rows], case.table[rows], case.features,
                                     case.size, case.scale, case.params, argmax, case.T)


def rois_grad(case, rows):
    """The oracle's gradient for the boxes of the selected rows (NaN where
    it has no answer), or None."""
    family = case.entry.family
    return family.reference_rois_grad(case.grad_values[rows], case.table[rows], case.features,
                                      case.size, case.scale, case.params, case.T)


def backward_argmax(case, source):
    """The argmax a backward gets: with source "oracle" the oracle forward's
    on the rows it can answer, garbage elsewhere (with "garbage" everywhere),
    including values far outside any sample grid or plane."""
    rng = np.random.default_rng(case.recipe.seed + 2)
    N, C, H, W = case.values.shape
    shape = (len(case.table), C, *case.size)
    limit = case.entry.family.argmax_limit(case.values.shape, case.params)
    garbage = rng.choice([-2**62, -7, -1, 0, 1, H * W - 1, H * W, limit - 1, limit, 2**62],
                         size=shape)
    garbage = np.where(rng.random(shape) < 0.5, rng.integers(-2, H * W + 2, shape), garbage)
    if source != "oracle":
        return garbage.astype(np.int64)
    rows = row_status(case) == "compare"
    if rows.any():
        garbage[rows] = forward(case, rows)[1]
    return garbage.astype(np.int64)
