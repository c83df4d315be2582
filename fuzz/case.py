"""One call of one entry point: a compact, printable Recipe (what hypothesis
draws and prints, what a test writes by hand) and the Case built from it (the
arguments the op gets, and what the oracle reads)."""
from dataclasses import dataclass

import numpy as np

from . import memory
from .family import compute_dtype
from .table import BY_NAME

CORNER_BOXES = ((0, 0.5, 1.0, 6.0, 5.5), (1, 2.0, 0.0, 7.5, 6.5), (0, 5.0, 4.0, 1.0, 2.0))


def as_rotated(box, angle):
    """[batch index, x1, y1, x2, y2] as [batch index, cx, cy, w, h, angle]:
    an inverted box gets a negative size, an empty one size 0."""
    index, x1, y1, x2, y2 = box
    return (index, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, angle)


def boxes_for(entry, corner_boxes):
    """Corner boxes as the named entry point takes them: for a rotated op,
    turned by 30, -90 and 0 degrees in turn."""
    if BY_NAME[entry].family.box_columns == 5:
        return tuple(as_rotated(box, (30, -90, 0)[i % 3]) for i, box in enumerate(corner_boxes))
    return corner_boxes


def boxes_of(recipe):
    """The recipe's boxes, or its family's default ones."""
    return recipe.boxes if recipe.boxes is not None else boxes_for(recipe.entry, CORNER_BOXES)


@dataclass(frozen=True)
class Recipe:
    entry: str
    shape: tuple = (2, 3, 7, 8)  # (N, C, H, W)
    dtype: str = "float32"
    values: str = "normal"  # "normal", "ties" (small integers) or "nonfinite"
    seed: int = 0
    layout: str = "NCHW"
    arrangement: str = "contiguous"
    # [batch index, x1, y1, x2, y2] per RoI, in image pixels ([batch index,
    # cx, cy, w, h, angle] for rotated boxes); None: CORNER_BOXES.
    boxes: tuple = None
    rois_form: str = "table"  # "table" (K, 5), "list" per image, "indices" (K, 4) + batch_indices
    rois_dtype: str = "float64"
    rois_arrangement: str = "contiguous"
    output_size: object = (3, 2)
    spatial_scale: object = 1.0
    params: tuple = ()  # the family's parameters as (name, value) pairs; its defaults if empty
    validate: bool = True
    grad_arrangement: str = "contiguous"
    argmax: str = "oracle"  # backward's argmax: the oracle forward's, or "garbage"
    broken: tuple = ()  # (argument, how): one argument given an invalid value
    depth: int = 1  # levels of a feature pyramid (multiscale_roi_align)


def robustness_recipes(entry, corner_boxes=CORNER_BOXES, **fields):
    """The Recipes the memory-layout, thread and leak tests call an entry
    point with: one per parameter set of its family (robustness_params),
    the boxes in its columns, `fields` as given."""
    return [Recipe(entry.name, boxes=boxes_for(entry.name, corner_boxes), params=params,
                   **fields) for params in entry.family.robustness_params]


@dataclass
class Case:
    recipe: Recipe
    entry: object
    values: np.ndarray  # the features (a pyramid's finest level): NCHW, features dtype
    features: object  # what the op reads, as the oracle reads it (Family.features)
    scale: object  # the op's spatial-scale argument (Family.scale_argument)
    table: np.ndarray  # (K, 1 + box columns) float64 as the op sees it, in the op's RoI order
    T: type  # the compute precision
    params: dict
    args: dict  # what the call passes (see fuzz.check.call)
    size: tuple = None  # (PH, PW) when output_size is valid
    grad_values: np.ndarray = None  # NCHW (K, C, PH, PW)
    argmax_values: np.ndarray = None  # NCHW, the argmax the backward gets
    broken: tuple = ()  # names one of which the error message must contain


def feature_values(recipe, shape):
    """The recipe's features (NCHW, `shape`) in its dtype, native byte order."""
    rng = np.random.default_rng(recipe.seed)
    if recipe.values == "ties":
        values = rng.integers(-3, 4, shape).astype(np.float64)
    else:
        values = rng.standard_normal(shape)
    if recipe.values == "nonfinite" and values.size:
        flat = values.reshape(-1)
        picks = rng.integers(0, flat.size, max(1, flat.size // 10))
        flat[picks] = rng.choice([np.nan, np.inf, -np.inf], picks.size)
    if recipe.arrangement == "broadcast":
        values = memory.broadcastable(values)
    return values.astype(np.dtype(recipe.dtype).newbyteorder("="))


def in_layout(nchw, layout):
    """An NCHW array as the op gets it (anything but "NHWC" stays NCHW)."""
    return nchw.transpose(0, 2, 3, 1) if layout == "NHWC" else nchw


def from_layout(array, layout):
    return array.transpose(0, 3, 1, 2) if layout == "NHWC" else array


def _rois_dtype(table, wanted):
    """`wanted`, unless an integer dtype cannot hold the table exactly."""
    if np.dtype(wanted).kind == "f":
        return wanted
    exact = np.isfinite(table).all() and (table == np.round(table)).all() \
        and (np.abs(table) < 2**31).all()
    return wanted if exact else "float64"


def _rois_arguments(recipe, table, num_images):
    """(rois, batch_indices, the (K, 5) float64 table the op sees) in the
    recipe's form; a form that cannot hold the batch indices becomes a table."""
    dtype = _rois_dtype(table, recipe.rois_dtype)
    with np.errstate(all="ignore"):  # 1e30 in float16 is inf: as the op sees it
        table = table.astype(dtype)
    seen = table.astype(np.float64)
    batch = seen[:, 0]
    integral = bool(np.all(np.isfinite(batch) & (batch == np.floor(batch))))

    def arrange(array):
        return memory.arrange(array, recipe.rois_arrangement)

    if recipe.rois_form == "list" and integral and np.all((batch >= 0) & (batch < 8)):
        images = max([num_images] + [int(b) + 1 for b in batch])
        per_image = [arrange(table[batch == i, 1:]) for i in range(images)]
        return per_image, None, seen[np.argsort(batch, kind="stable")]
    if recipe.rois_form == "indices" and integral and np.all(np.abs(batch) < 2**62):
        index_dtype = np.int32 if np.all(np.abs(batch) < 2**31) else np.int64
        return arrange(table[:, 1:]), arrange(batch.astype(index_dtype)), seen
    return arrange(table), None, seen


def normalized_size(output_size):
    if isinstance(output_size, (int, np.integer)):
        return int(output_size), int(output_size)
    return int(output_size[0]), int(output_size[1])


def input_shape(shape, layout):
    N, C, H, W = shape
    return (N, H, W, C) if layout == "NHWC" else (N, C, H, W)


def _each_level(function, features):
    """function over a pyramid's levels, or over its one map."""
    return [function(f) for f in features] if isinstance(features, list) else function(features)


def build(recipe):
    """The Case of a recipe, its broken argument applied last."""
    from .broken import apply_broken
    from .oracle import backward_argmax
    entry = BY_NAME[recipe.entry]
    family = entry.family
    table = np.array(boxes_of(recipe), np.float64).reshape(-1, 1 + family.box_columns)
    params = {**(dict(recipe.params) or family.default_params), **entry.fixed_params}
    rois, batch_indices, seen = _rois_arguments(recipe, table, recipe.shape[0])
    broken_names = [name for name, _ in recipe.broken]
    size = None if "output_size" in broken_names else normalized_size(recipe.output_size)
    N, C, H, W = recipe.shape
    values = feature_values(recipe, (N, family.input_channels(C, size) if size else C, H, W))
    features = family.features(values, recipe.depth)
    scale = family.scale_argument(recipe.spatial_scale, recipe.depth)
    args = {"rois": rois, "batch_indices": batch_indices, "layout": recipe.layout,
            "output_size": recipe.output_size, "spatial_scale": scale}
    if entry.takes_validate:
        args["validate"] = recipe.validate
    case = Case(recipe, entry, values, features, scale, seen, compute_dtype(values.dtype),
                params, args, size)
    if entry.kind != "backward" or entry.reads_features:
        args["features"] = _each_level(
            lambda f: memory.arrange(in_layout(f, recipe.layout), recipe.arrangement), features)
    if entry.kind != "forward" and case.size is not None:
        rng = np.random.default_rng(recipe.seed + 1)
        grad = rng.standard_normal((len(seen), C, *case.size))
        if recipe.grad_arrangement == "broadcast":
            grad = memory.broadcastable(grad)
        case.grad_values = grad.astype(values.dtype)
        args["grad_output"] = memory.arrange(in_layout(case.grad_values, recipe.layout),
                                             recipe.grad_arrangement)
    if entry.kind != "forward" and family.has_argmax(params) and case.size is not None:
        # The object form keeps its forward's argmax, which must be the oracle's.
        case.argmax_values = backward_argmax(case, recipe.argmax if entry.kind == "backward"
                                             else "oracle")
    if entry.kind == "backward":
        args["input_shape"] = _each_level(lambda f: input_shape(f.shape, recipe.layout),
                                          features)
        if case.argmax_values is not None:
            # argmax differs per RoI: it cannot follow a broadcast grad_output.
            how = "readonly" if recipe.grad_arrangement == "broadcast" else \
                recipe.grad_arrangement
            args["argmax"] = memory.arrange(in_layout(case.argmax_values, recipe.layout), how)
    return apply_broken(case, recipe.broken)
