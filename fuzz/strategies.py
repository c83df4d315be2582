"""Hypothesis strategies for Recipes: random shapes (1x1 maps, K=0, C=1, a
channel count past the CPU channel block), dtypes, layouts, memory
arrangements, parameters (valid and invalid) and hostile boxes."""
import math
from dataclasses import replace

from hypothesis import strategies as st

from .broken import breakable
from .case import Recipe, as_rotated
from .memory import arrangements_for
from .table import BY_NAME

DTYPES = ["float32", "float32", "float64", "float64", "float16", ">f8", ">f4", "longdouble"]
# Coordinates users' networks emit when training goes wrong.
HOSTILE = [math.nan, math.inf, -math.inf, 1e30, -1e30, 2.0**31, -2.0**31, 2.0**31 - 1,
           2.0**63, 3e38, -3e38, 1e308, 5e-324, -0.0, 2.0**24 + 1]
HOSTILE_BATCH = [-1, 2**31, -2**31, 2**53, 1e30, math.nan, math.inf, -math.inf, 0.5, -0.5]
SCALES = [1.0, 1.0, 0.5, 0.25, 1 / 16, 1 / 3, 2.0, 0.7, 1e-30, 1e30]
# Degrees of a rotated box: right angles, whole turns, far past a turn, any.
ANGLES = st.one_of(st.sampled_from([0.0, 90.0, -90.0, 180.0, 45.0, -30.0, 360.0, 1e4]),
                   st.floats(-720, 720))


def _coordinate(extent):
    return st.floats(-0.5 * extent - 2, 1.5 * extent + 2, allow_nan=False)


@st.composite
def box(draw, num_images, height, width, scale):
    """[batch index, x1, y1, x2, y2]: mostly around the map, sometimes
    inverted, empty or hostile."""
    xs, ys = _coordinate(width / scale), _coordinate(height / scale)
    x1, x2 = sorted([draw(xs), draw(xs)])
    y1, y2 = sorted([draw(ys), draw(ys)])
    kind = draw(st.sampled_from(["plain"] * 5 + ["inverted", "empty", "hostile", "huge"]))
    if kind == "inverted":
        x1, x2, y1, y2 = x2, x1, y2, y1
    elif kind == "empty":
        x2, y2 = x1, y1
    elif kind == "hostile":
        coords = [draw(st.sampled_from(HOSTILE)) if draw(st.booleans()) else v
                  for v in (x1, y1, x2, y2)]
        x1, y1, x2, y2 = coords
    elif kind == "huge":
        big = draw(st.sampled_from([1e30, 2.0**31, 2.0**25, 1e9]))
        x1, x2 = draw(st.sampled_from([(-big, x2), (x1, big), (-big, big)]))
    if num_images and draw(st.integers(0, 9)):
        index = draw(st.integers(0, num_images - 1))
    else:
        index = draw(st.sampled_from(HOSTILE_BATCH + [num_images, num_images + 3]))
    return (index, x1, y1, x2, y2)


@st.composite
def rotated_box(draw, num_images, height, width, scale):
    """[batch index, cx, cy, w, h, angle]: box()'s boxes turned by any angle,
    some hostile."""
    hostile = draw(st.integers(0, 7)) == 0
    angle = draw(st.sampled_from(HOSTILE) if hostile else ANGLES)
    return as_rotated(draw(box(num_images, height, width, scale)), angle)


@st.composite
def recipes(draw, entries):
    """A Recipe for one of the named entry points."""
    entry = BY_NAME[draw(st.sampled_from(entries))]
    N = draw(st.sampled_from([1, 1, 2, 3, 0]))
    C = draw(st.sampled_from([1, 1, 2, 3, 0, 33]))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    dtype = draw(st.sampled_from(DTYPES))
    scale = draw(st.sampled_from(SCALES))
    extent_scale = scale if 1e-3 < scale < 1e3 else 1.0
    K = draw(st.integers(0, 5))
    boxes_of = rotated_box if entry.family.box_columns == 5 else box
    boxes = tuple(draw(boxes_of(N, H, W, extent_scale)) for _ in range(K))
    output_size = draw(st.one_of(st.integers(1, 4),
                                 st.tuples(st.integers(1, 4), st.integers(1, 4)),
                                 st.lists(st.integers(1, 4), min_size=2, max_size=2)))
    params = {**entry.family.valid_params(draw), **entry.fixed_params}
    recipe = Recipe(
        entry=entry.name, shape=(N, C, H, W), dtype=dtype,
        values=draw(st.sampled_from(["normal", "normal", "ties", "nonfinite"])),
        seed=draw(st.integers(0, 2**32 - 1)),
        layout=draw(st.sampled_from(["NCHW", "NHWC"])),
        arrangement=draw(st.sampled_from(arrangements_for(dtype))),
        boxes=boxes,
        rois_form=draw(st.sampled_from(["table", "table", "list", "indices"])),
        rois_dtype=draw(st.sampled_from(["float64", "float32", "float16", "int32"])),
        rois_arrangement=draw(st.sampled_from(arrangements_for("float64", per_roi=True))),
        output_size=output_size, spatial_scale=scale,
        params=tuple(sorted(params.items())) if params else (),
        validate=draw(st.booleans()),
        grad_arrangement=draw(st.sampled_from(arrangements_for(dtype))),
        argmax=draw(st.sampled_from(["oracle", "oracle", "garbage"])),
        depth=draw(st.integers(1, 3)),  # read by multiscale_roi_align only
    )
    if draw(st.integers(0, 3)) == 0:
        options = breakable(entry, params)
        name = draw(st.sampled_from(sorted(options)))
        recipe = replace(recipe, broken=((name, draw(st.sampled_from(options[name]))),))
    return recipe
