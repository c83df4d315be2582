"""cyroi's public entry points, one row each. A new op slots into the
fuzzing (tests/test_fuzz.py, fuzz.run, atheris) by adding its Family (the
math: parameters and reference oracle, fuzz/family.py) and its rows here or
in fuzz/family_rows.py; every row also runs through the memory-layout,
thread and leak tests, CORE_ENTRY_POINTS through the extremes tests.

Every entry point is called the same way (fuzz/check.py): features /
grad_output, rois, output_size, spatial_scale and the family's own
parameters, with keywords; the Family says where an op differs (box
columns, channels, a feature pyramid, the backward's shape argument).
"""
import numpy as np
from hypothesis import strategies as st

import cyroi
import reference

from .family import (ALIGNED, BROKEN_SAMPLING_RATIOS, SAMPLING_RATIOS, EntryPoint, Family,
                     align_oracle_work, differenced_rois_grad, differences_agree,
                     integer_bins_work)
from .family_rows import FAMILY_ENTRY_POINTS

# ------------------------------------------------------------------ roi_align

def _align_params(draw):
    return {"sampling_ratio": draw(st.sampled_from(SAMPLING_RATIOS)),
            "aligned": draw(st.sampled_from(ALIGNED)),
            "mode": draw(st.sampled_from(["avg", "max"]))}


def _align_reference_forward(features, table, size, scale, p, T):
    return reference.roi_align(features, table, size, scale, p["sampling_ratio"],
                               bool(p["aligned"]), p["mode"], dtype=T)


def _align_reference_backward(grad, table, features, size, scale, p, argmax, T):
    return reference.roi_align_backward(grad, table, features.shape, size, scale,
                                        p["sampling_ratio"], bool(p["aligned"]), p["mode"],
                                        argmax, dtype=T)


def _align_rois_grad(grad, table, features, size, scale, p, T):
    """tests/reference.py has no formula for the box gradient: differences
    of its forward."""
    return differenced_rois_grad(
        lambda rois: _align_reference_forward(features, rois, size, scale, p, T)[0], grad,
        table, scale, T)


ROI_ALIGN = Family(
    name="roi_align",
    default_params={"sampling_ratio": 2, "aligned": False, "mode": "avg"},
    valid_params=_align_params,
    broken_params={"sampling_ratio": BROKEN_SAMPLING_RATIOS,
                   "mode": ["Max", "mean", "", None, 1]},
    reference_forward=_align_reference_forward,
    reference_backward=_align_reference_backward,
    backward_kwargs=lambda scale, p: {"spatial_scale": scale, **p},
    has_argmax=lambda p: p.get("mode") == "max",
    oracle_work=align_oracle_work,
    # Sample indices iy * gw + ix of a grid of at most (2^31 - 1)^2 samples.
    argmax_limit=lambda shape, p: (2**31 - 1) ** 2,
    # int32 where a fixed sampling_ratio keeps a bin's ratio^2 indices below
    # 2^31; int64 for adaptive grids.
    argmax_dtype=lambda shape, p: np.dtype(
        np.int32 if 0 < p["sampling_ratio"] and p["sampling_ratio"] ** 2 < 2**31 else np.int64),
    defined_for_nonfinite=lambda p: p.get("mode") != "max",
    reference_rois_grad=_align_rois_grad,
    rois_grad_agrees=differences_agree,
    # avg and max pool differently (max keeps an argmax); both alignments
    # and both kinds of sampling grid.
    robustness_params=((("aligned", False), ("mode", "avg"), ("sampling_ratio", 2)),
                       (("aligned", True), ("mode", "max"), ("sampling_ratio", -1))),
)

# ------------------------------------------------------------------- roi_pool


def _pool_reference_forward(features, table, size, scale, p, T):
    return reference.roi_pool(features, table, size, scale, dtype=T)


def _pool_reference_backward(grad, table, features, size, scale, p, argmax, T):
    return reference.roi_pool_backward(grad, table, features.shape, size, scale, argmax,
                                       dtype=T)


ROI_POOL = Family(
    name="roi_pool",
    default_params={},
    valid_params=lambda draw: {},
    broken_params={},
    reference_forward=_pool_reference_forward,
    reference_backward=_pool_reference_backward,
    backward_kwargs=lambda scale, p: {},
    has_argmax=lambda p: True,
    oracle_work=integer_bins_work,
    argmax_limit=lambda shape, p: shape[2] * shape[3],  # h * W + w
    # int32 as torchvision's, unless h * W + w can pass 2^31 - 1.
    argmax_dtype=lambda shape, p: np.dtype(np.int32 if shape[2] * shape[3] < 2**31 else np.int64),
    # A strict > scan from the first element: NaN handling is the same scan.
    defined_for_nonfinite=lambda p: True,
)

# The rows the extremes tests (tests/test_fuzz_extremes.py) were sized for.
CORE_ENTRY_POINTS = (
    EntryPoint("roi_align", ROI_ALIGN, "forward", cyroi.roi_align),
    EntryPoint("roi_align_backward", ROI_ALIGN, "backward", cyroi.roi_align_backward),
    EntryPoint("RoIAlign", ROI_ALIGN, "object", cyroi.RoIAlign, takes_validate=False),
    EntryPoint("roi_pool", ROI_POOL, "forward", cyroi.roi_pool),
    EntryPoint("roi_pool_backward", ROI_POOL, "backward", cyroi.roi_pool_backward),
    EntryPoint("RoIPool", ROI_POOL, "object", cyroi.RoIPool, takes_validate=False),
)
# The box gradient of roi_align is an option of its backward; it needs mode "avg".
ROI_ALIGN_BOX_GRADIENT = EntryPoint(
    "roi_align_backward+rois_grad", ROI_ALIGN, "backward", cyroi.roi_align_backward,
    fixed_kwargs={"need_rois_grad": True}, fixed_params={"mode": "avg"}, reads_features=True)

ENTRY_POINTS = CORE_ENTRY_POINTS + (ROI_ALIGN_BOX_GRADIENT,) + FAMILY_ENTRY_POINTS

BY_NAME = {entry.name: entry for entry in ENTRY_POINTS}
