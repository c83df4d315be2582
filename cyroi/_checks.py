"""Argument checks shared by every op. Messages name the argument, what was
expected and what came (TypeError for wrong kinds, ValueError for wrong
shapes or values)."""
import math
import numbers

import numpy as np

LAYOUTS = ("NCHW", "NHWC")
MODES = ("avg", "max")


def is_floating(dtype):
    """float16/32/64, and bfloat16 (not a NumPy float kind; CuPy and
    ml_dtypes name it)."""
    return dtype.kind == "f" or dtype.name == "bfloat16"


def _is_int(value):
    # type() first: the Integral ABC check costs about a microsecond, and
    # small calls pay for every one (issue 3: <= 20 us a call).
    return type(value) is int or (isinstance(value, numbers.Integral)
                                  and not isinstance(value, bool))


def output_size(value):
    """int or (PH, PW), each >= 1 -> (PH, PW)."""
    if type(value) is int and value >= 1:
        return value, value
    pair = (value, value) if _is_int(value) else value
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(map(_is_int, pair))):
        raise TypeError(f"output_size must be an int or a pair of ints; got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"output_size must be >= 1; got {value!r}")
    return int(pair[0]), int(pair[1])


def spatial_scale(value):
    if type(value) is float and 0 < value < math.inf:  # NaN fails both
        return value
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"spatial_scale must be a real number; got {type(value).__name__}")
    try:
        scale = float(value)
    except OverflowError:  # an int past the float range
        scale = math.inf
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"spatial_scale must be finite and > 0; got {value!r}")
    return scale


# Samples per bin side saturate here, like the adaptive grid (roi_math.h
# kMaxGrid): sample indices iy * gw + ix then fit in int64.
MAX_GRID = 2**31 - 1


def sampling_ratio(value):
    if type(value) is int and (value > 0 or value == -1):
        return min(value, MAX_GRID)
    if not _is_int(value):
        raise TypeError(f"sampling_ratio must be an int; got {value!r}")
    if value == 0 or value < -1:
        raise ValueError(f"sampling_ratio must be > 0, or -1 for adaptive; got {value}")
    return int(min(value, MAX_GRID))


def pool_argmax_dtype(height, width):
    """roi_pool's argmax dtype: int32 as torchvision's (half the bytes of
    int64 for forward to write and backward to read), int64 where h * W + w
    can pass 2^31 - 1."""
    return np.dtype(np.int32) if height * width <= 2**31 - 1 else np.dtype(np.int64)


def align_argmax_dtype(sampling_ratio):
    """roi_align's (mode "max") argmax dtype: int32 where every index
    iy * gw + ix of a bin's gh x gw sample grid fits, as a fixed
    sampling_ratio bounds them (half the bytes for forward to write and
    backward to read); int64 for adaptive grids, which grow with the box."""
    fits = 0 < sampling_ratio and sampling_ratio * sampling_ratio <= 2**31 - 1
    return np.dtype(np.int32) if fits else np.dtype(np.int64)


def choice(value, name, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def features(array, layout, name="features"):
    """Checks a 4-D floating feature array; returns its (N, C, H, W)."""
    choice(layout, "layout", LAYOUTS)
    if array.ndim != 4:
        raise ValueError(f"{name} must be 4-D ({layout}); got shape {tuple(array.shape)}")
    if not is_floating(array.dtype):
        raise TypeError(f"{name} must be floating (float16, bfloat16, float32 or float64); "
                        f"got {array.dtype}")
    n, c, h, w = array.shape if layout == "NCHW" else (array.shape[0], array.shape[3],
                                                       *array.shape[1:3])
    if h < 1 or w < 1:
        raise ValueError(f"{name} must have H >= 1 and W >= 1; got shape {tuple(array.shape)}")
    return n, c, h, w


def input_shape(value, layout):
    """A backward's input_shape in `layout` -> (N, C, H, W)."""
    choice(layout, "layout", LAYOUTS)
    if not (isinstance(value, (tuple, list)) and len(value) == 4 and all(map(_is_int, value))):
        raise TypeError(f"input_shape must be 4 ints ({layout}); got {value!r}")
    n, c, h, w = value if layout == "NCHW" else (value[0], value[3], value[1], value[2])
    if min(n, c) < 0 or min(h, w) < 1:
        raise ValueError(f"input_shape must have N, C >= 0 and H, W >= 1; got {tuple(value)}")
    return int(n), int(c), int(h), int(w)


def pooled_array(array, name, expected, layout):
    """grad_output or argmax: shape (K, C, PH, PW) in `layout`."""
    k, c, ph, pw = expected
    shape = (k, c, ph, pw) if layout == "NCHW" else (k, ph, pw, c)
    if tuple(array.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}; got {tuple(array.shape)}")
    return array


def real_number(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return float(value)


def pyramid_scales(values, count):
    """spatial_scales of a feature pyramid, one per level, each level half
    the previous one (k = round(-log2(scale)) consecutive, as FPN's level
    assignment needs) -> (scales, (k_min, k_max))."""
    try:
        scales = [spatial_scale(value) for value in values]
    except TypeError:
        raise TypeError(f"spatial_scales must be a sequence of real numbers; "
                        f"got {values!r}") from None
    if len(scales) != count:
        raise ValueError(f"spatial_scales must have one scale per level ({count}); "
                         f"got {len(scales)}")
    levels = [round(-math.log2(scale)) for scale in scales]
    if levels != list(range(levels[0], levels[0] + count)):
        raise ValueError(f"spatial_scales must halve from one level to the next (e.g. 1/4, 1/8, "
                         f"1/16, 1/32); got {scales}")
    return scales, (levels[0], levels[-1])
