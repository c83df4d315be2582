"""Rows of the fuzz table for the rest of the RoI family: position-sensitive
ops, rotated boxes, PrRoI pooling and the FPN pyramid (fuzz/table.py adds
them to roi_align's and roi_pool's)."""
import math

import numpy as np
from hypothesis import strategies as st

import cyroi
import reference
from test_precise_roi_pool import TOLERANCE as PRECISE_TOLERANCE
from test_precise_roi_pool import box_grad_tolerance

from .family import (ALIGNED, BROKEN_SAMPLING_RATIOS, ORACLE_BUDGET, SAMPLING_RATIOS,
                     EntryPoint, Family, align_oracle_work, differenced_rois_grad, differences_agree,
                     finite_after_scaling, integer_bins_work, sample_work)


def _ratio_params(draw):
    return {"sampling_ratio": draw(st.sampled_from(SAMPLING_RATIOS))}


def _ps_channels(C, size):
    """Position-sensitive ops read C output channels from C*PH*PW inputs."""
    return C * size[0] * size[1]


def _scale_kwargs(scale, p):
    return {"spatial_scale": scale, **p}


# --------------------------------------------------------------- ps_roi_align

def _ps_align_work(features, row, size, scale, p, T):
    H, W = features.shape[2:]
    with np.errstate(all="ignore"):
        return sample_work(reference._align_bins(row, size, scale, p["sampling_ratio"], 0.5,
                                                 False, H, W, T))


PS_ROI_ALIGN = Family(
    name="ps_roi_align",
    default_params={"sampling_ratio": 2},
    valid_params=_ratio_params,
    broken_params={"sampling_ratio": BROKEN_SAMPLING_RATIOS},
    reference_forward=lambda f, table, size, scale, p, T: (
        reference.ps_roi_align(f, table, size, scale, p["sampling_ratio"], dtype=T), None),
    reference_backward=lambda g, table, f, size, scale, p, argmax, T:
        reference.ps_roi_align_backward(g, table, f.shape, size, scale, p["sampling_ratio"],
                                        dtype=T),
    backward_kwargs=_scale_kwargs,
    has_argmax=lambda p: False,
    oracle_work=_ps_align_work,
    argmax_limit=None,
    defined_for_nonfinite=lambda p: True,
    input_channels=_ps_channels,
)

# ---------------------------------------------------------------- ps_roi_pool

PS_ROI_POOL = Family(
    name="ps_roi_pool",
    default_params={},
    valid_params=lambda draw: {},
    broken_params={},
    reference_forward=lambda f, table, size, scale, p, T: (
        reference.ps_roi_pool(f, table, size, scale, dtype=T), None),
    reference_backward=lambda g, table, f, size, scale, p, argmax, T:
        reference.ps_roi_pool_backward(g, table, f.shape, size, scale, dtype=T),
    backward_kwargs=_scale_kwargs,
    has_argmax=lambda p: False,
    oracle_work=integer_bins_work,
    argmax_limit=None,
    defined_for_nonfinite=lambda p: True,
    input_channels=_ps_channels,
)

# ---------------------------------------------------------- roi_align_rotated


def _rotated_params(draw):
    return {"sampling_ratio": draw(st.sampled_from(SAMPLING_RATIOS)),
            "aligned": draw(st.sampled_from(ALIGNED)),
            "clockwise": draw(st.sampled_from([False, True, 1, np.bool_(False)]))}


def _rotated_args(p):
    return p["sampling_ratio"], bool(p["aligned"]), bool(p["clockwise"])


def _rotated_work(features, row, size, scale, p, T):
    """The oracle's samples, or past the budget where its candidate rows
    alone are: a float32 centre far off the map (|c| >> H, W) widens the
    candidate window by its rounding, up to the whole grid, and the oracle
    scans each candidate row."""
    H, W = features.shape[2:]
    with np.errstate(all="ignore"):
        bins = reference._rotated_bins(row, size, scale, *_rotated_args(p), H, W, T)
        candidate_rows = sum(len(b.rows()) for line in bins for b in line)
    return candidate_rows if candidate_rows > ORACLE_BUDGET else sample_work(bins)


def _rotated_finite(row, scale, p, T):
    """Scaled centre and size, and the angle in radians, exist in T."""
    with np.errstate(all="ignore"):
        values = [T(v) * T(scale) for v in row[1:5]] + [T(row[5]) * T(np.pi) / T(180)]
    return all(math.isfinite(float(v)) for v in values)


ROI_ALIGN_ROTATED = Family(
    name="roi_align_rotated",
    default_params={"sampling_ratio": 2, "aligned": True, "clockwise": False},
    valid_params=_rotated_params,
    broken_params={"sampling_ratio": BROKEN_SAMPLING_RATIOS},
    reference_forward=lambda f, table, size, scale, p, T: (
        reference.roi_align_rotated(f, table, size, scale, *_rotated_args(p), dtype=T), None),
    reference_backward=lambda g, table, f, size, scale, p, argmax, T:
        reference.roi_align_rotated_backward(g, table, f.shape, size, scale, *_rotated_args(p),
                                             dtype=T),
    # tests/reference.py has no formula for the box gradient: differences of its forward.
    reference_rois_grad=lambda g, table, f, size, scale, p, T: differenced_rois_grad(
        lambda rois: reference.roi_align_rotated(f, rois, size, scale, *_rotated_args(p),
                                                 dtype=T), g, table, scale, T),
    rois_grad_agrees=differences_agree,
    backward_kwargs=_scale_kwargs,
    has_argmax=lambda p: False,
    oracle_work=_rotated_work,
    argmax_limit=None,
    defined_for_nonfinite=lambda p: True,
    box_columns=5,
    finite_geometry=_rotated_finite,
)

# ----------------------------------------------------------- precise_roi_pool

PRECISE_ROI_POOL = Family(
    name="precise_roi_pool",
    default_params={},
    valid_params=lambda draw: {},
    broken_params={},
    reference_forward=lambda f, table, size, scale, p, T: (
        reference.precise_roi_pool(f, table, size, scale, dtype=T), None),
    reference_backward=lambda g, table, f, size, scale, p, argmax, T:
        reference.precise_roi_pool_backward(g, f, table, size, scale, dtype=T)[0],
    reference_rois_grad=lambda g, table, f, size, scale, p, T:
        reference.precise_roi_pool_backward(g, f, table, size, scale, dtype=T)[1][:, 1:],
    backward_kwargs=_scale_kwargs,
    has_argmax=lambda p: False,
    # Every bin weighs every cell of the plane.
    oracle_work=lambda f, row, size, scale, p, T: size[0] * size[1] * f.shape[2] * f.shape[3],
    argmax_limit=None,
    # The oracle's integral weighs NaN cells by 0 (0 * NaN = NaN everywhere);
    # the op skips cells outside the bin.
    defined_for_nonfinite=lambda p: False,
    input_shape_keyword=None,
    tolerance=lambda T: PRECISE_TOLERANCE[T]["rtol"],
    rois_grad_agrees=lambda result, want, rounding, f, table, size, scale: bool(np.all(
        np.abs(result - want) - rounding <= box_grad_tolerance(f, table, size, scale)[:, 1:])),
)

# ------------------------------------------------------- multiscale_roi_align


def _pyramid_params(draw):
    return {"sampling_ratio": draw(st.sampled_from(SAMPLING_RATIOS)),
            "aligned": draw(st.sampled_from(ALIGNED)),
            # Small canonical scales spread the fuzz's few-pixel boxes over the levels.
            "canonical_scale": draw(st.sampled_from([224, 4, 2, 1, 0.5])),
            "canonical_level": draw(st.sampled_from([4, 0, 1, 2, -3, 2.5]))}


def _pyramid(values, depth):
    """depth levels, each half the previous one's size (every other row and
    column: the same N, C and dtype, and broadcastable where values are)."""
    return [values[:, :, ::2**level, ::2**level] for level in range(depth)]


def _pyramid_scales(scale, depth):
    return [scale * 0.5**level for level in range(depth)]


def _pyramid_args(p):
    return (p["sampling_ratio"], bool(p["aligned"]), p["canonical_scale"],
            p["canonical_level"])


def _level(row, scales, p, T):
    return int(reference.fpn_levels(np.asarray(row)[None], scales, p["canonical_scale"],
                                    p["canonical_level"], dtype=T)[0])


def _pyramid_work(features, row, size, scales, p, T):
    level = _level(row, scales, p, T)
    return align_oracle_work(features[level], row, size, scales[level], p, T)


MULTISCALE_ROI_ALIGN = Family(
    name="multiscale_roi_align",
    default_params={"sampling_ratio": 2, "aligned": False, "canonical_scale": 224,
                    "canonical_level": 4},
    valid_params=_pyramid_params,
    broken_params={"sampling_ratio": BROKEN_SAMPLING_RATIOS,
                   "canonical_scale": [0, -1.0, math.nan, math.inf, "224", None],
                   "canonical_level": [math.nan, -math.inf, "4", None],
                   # Invalid whatever the pyramid's depth (1 to 3 levels).
                   "spatial_scale": [[], [1.0] * 5, [0.25, 0.25, 0.25, 0.25],
                                     [0.25, math.nan, 0.0625, 1 / 32]]},
    reference_forward=lambda f, table, size, scales, p, T: (
        reference.multiscale_roi_align(f, table, size, scales, *_pyramid_args(p), dtype=T),
        None),
    reference_backward=lambda g, table, f, size, scales, p, argmax, T:
        reference.multiscale_roi_align_backward(g, table, [level.shape for level in f], size,
                                                scales, *_pyramid_args(p), dtype=T),
    backward_kwargs=lambda scales, p: {"spatial_scales": scales, **p},
    has_argmax=lambda p: False,
    oracle_work=_pyramid_work,
    argmax_limit=None,
    defined_for_nonfinite=lambda p: True,
    features=_pyramid,
    scale_argument=_pyramid_scales,
    finite_geometry=lambda row, scales, p, T: finite_after_scaling(
        row, scales[_level(row, scales, p, T)], T),
    input_shape_keyword="input_shapes",
    # Boxes of a few to a few tens of pixels spread over the pyramid's levels.
    robustness_params=((("aligned", False), ("canonical_level", 1), ("canonical_scale", 8),
                        ("sampling_ratio", 2)),),
)

FAMILY_ENTRY_POINTS = (
    EntryPoint("ps_roi_align", PS_ROI_ALIGN, "forward", cyroi.ps_roi_align),
    EntryPoint("ps_roi_align_backward", PS_ROI_ALIGN, "backward", cyroi.ps_roi_align_backward),
    EntryPoint("PSRoIAlign", PS_ROI_ALIGN, "object", cyroi.PSRoIAlign, takes_validate=False),
    EntryPoint("ps_roi_pool", PS_ROI_POOL, "forward", cyroi.ps_roi_pool),
    EntryPoint("ps_roi_pool_backward", PS_ROI_POOL, "backward", cyroi.ps_roi_pool_backward),
    EntryPoint("PSRoIPool", PS_ROI_POOL, "object", cyroi.PSRoIPool, takes_validate=False),
    EntryPoint("roi_align_rotated", ROI_ALIGN_ROTATED, "forward", cyroi.roi_align_rotated),
    EntryPoint("roi_align_rotated_backward", ROI_ALIGN_ROTATED, "backward",
               cyroi.roi_align_rotated_backward),
    EntryPoint("roi_align_rotated_backward+rois_grad", ROI_ALIGN_ROTATED, "backward",
               cyroi.roi_align_rotated_backward, fixed_kwargs={"need_rois_grad": True},
               reads_features=True),
    EntryPoint("RoIAlignRotated", ROI_ALIGN_ROTATED, "object", cyroi.RoIAlignRotated,
               takes_validate=False),
    EntryPoint("precise_roi_pool", PRECISE_ROI_POOL, "forward", cyroi.precise_roi_pool),
    EntryPoint("precise_roi_pool_backward", PRECISE_ROI_POOL, "backward",
               cyroi.precise_roi_pool_backward, reads_features=True),
    EntryPoint("PreciseRoIPool", PRECISE_ROI_POOL, "object", cyroi.PreciseRoIPool,
               takes_validate=False),
    EntryPoint("multiscale_roi_align", MULTISCALE_ROI_ALIGN, "forward",
               cyroi.multiscale_roi_align),
    EntryPoint("multiscale_roi_align_backward", MULTISCALE_ROI_ALIGN, "backward",
               cyroi.multiscale_roi_align_backward),
    EntryPoint("MultiScaleRoIAlign", MULTISCALE_ROI_ALIGN, "object", cyroi.MultiScaleRoIAlign,
               takes_validate=False),
)
