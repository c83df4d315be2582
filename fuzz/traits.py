"""What kind of hostile input a Recipe holds, for the robustness table: each
case counts once under every trait it has."""
import math

import numpy as np

from .case import boxes_of
from .table import BY_NAME


def _extents(box):
    """(x1, y1, x2, y2) of a corner box; of a rotated one, with the size
    (w, h) as the extent from (0, 0)."""
    return box[1:5] if len(box) == 5 else (0.0, 0.0, *box[3:5])


def _box_traits(recipe):
    boxes = boxes_of(recipe)
    coords = [v for box in boxes for v in box[1:]]
    found = set()
    if any(math.isnan(v) for v in coords):
        found.add("NaN box coordinate")
    if any(math.isinf(v) for v in coords):
        found.add("+-inf box coordinate")
    if any(math.isfinite(v) and abs(v) >= 1e30 for v in coords):
        found.add("box coordinate +-1e30 or beyond")
    if any(math.isfinite(v) and 2**24 <= abs(v) < 1e30 for v in coords):
        found.add("box coordinate +-2^24 .. 2^63")
    for box in boxes:
        x1, y1, x2, y2 = _extents(box)
        if x2 < x1 or y2 < y1:
            found.add("inverted box")
        if x2 == x1 and y2 == y1:
            found.add("zero-size box")
    N = recipe.shape[0]
    indices = [box[0] for box in boxes]
    if any(not math.isfinite(i) or i != math.floor(i) for i in indices):
        found.add("batch index NaN, inf or fractional")
    elif any(not 0 <= i < N for i in indices):
        found.add("batch index out of range")
    return found


def traits(recipe):
    N, C, H, W = recipe.shape
    pyramid = BY_NAME[recipe.entry].family.name == "multiscale_roi_align"
    found = _box_traits(recipe)
    found |= {label for label, present in [
        ("K = 0", not boxes_of(recipe)), ("N = 0", N == 0), ("C = 0", C == 0), ("C = 1", C == 1),
        ("C = 33 (past a channel block)", C == 33), ("1x1 map", H == W == 1),
        ("validate=False", not recipe.validate), ("NHWC", recipe.layout == "NHWC"),
        ("3-level pyramid", recipe.depth == 3 and pyramid),
        ("NaN / inf features", recipe.values == "nonfinite"),
        ("tied feature values", recipe.values == "ties"),
        ("spatial_scale 1e-30 or 1e30", recipe.spatial_scale in (1e-30, 1e30)),
        (f"features dtype {np.dtype(recipe.dtype).str}",
         recipe.dtype not in ("float32", "float64")),
        (f"features {recipe.arrangement}", recipe.arrangement != "contiguous"),
        (f"rois as {recipe.rois_form}", recipe.rois_form != "table"),
        (f"rois {recipe.rois_arrangement}", recipe.rois_arrangement != "contiguous"),
    ] if present}
    for name, how in recipe.broken:
        found.add(f"invalid {name}")
    if not found:
        found.add("plain valid input")
    return found
