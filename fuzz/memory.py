"""Ways to hand the same logical array to an op: every arrangement must give
the result the contiguous array gives (copied or read through strides),
never another one. mmcv, for one, returned wrong results for non-contiguous
input."""
import numpy as np

ARRANGEMENTS = ("contiguous", "fortran", "strided", "reversed", "readonly", "misaligned",
                "broadcast", "byteswapped", "torch")


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


TORCH_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64),
                np.dtype(np.int32), np.dtype(np.int64))


def arrangements_for(dtype, per_roi=False):
    """The arrangements an array of `dtype` can take here (torch is optional
    and knows only native dtypes). Arrays with one distinct row per RoI
    (rois, argmax) cannot be broadcasts."""
    usable_torch = _torch() is not None and np.dtype(dtype) in TORCH_DTYPES
    return tuple(a for a in ARRANGEMENTS
                 if (a != "torch" or usable_torch) and not (per_roi and a == "broadcast"))


def _misaligned(array):
    """A copy that starts one byte past an aligned address."""
    buffer = np.zeros(array.nbytes + 1, np.uint8)
    out = np.frombuffer(buffer.data, array.dtype, array.size, offset=1).reshape(array.shape)
    out[...] = array
    return out


def _strided(array):
    """A view that skips every other element along each axis."""
    big = np.zeros(tuple(2 * d for d in array.shape), array.dtype)
    view = big[tuple(slice(None, None, 2) for _ in array.shape)]
    view[...] = array
    return view


def _reversed(array):
    """A view with negative strides on every axis."""
    flipped = np.ascontiguousarray(array[tuple(slice(None, None, -1) for _ in array.shape)])
    return flipped[tuple(slice(None, None, -1) for _ in array.shape)]


def broadcastable(array):
    """The values a stride-0 broadcast along axis 0 can hold: every entry
    along that axis equal to the first one."""
    return np.broadcast_to(array[:1], array.shape).copy() if array.shape[0] else array


def arrange(array, how):
    """`array` (a NumPy array) handed over as `how`. For "broadcast" the
    values must already be broadcastable(array)."""
    if how == "contiguous":
        return np.ascontiguousarray(array)
    if how == "fortran":
        return np.asfortranarray(array)
    if how == "strided":
        return _strided(array)
    if how == "reversed":
        return _reversed(array)
    if how == "readonly":
        out = array.copy()
        out.setflags(write=False)
        return out
    if how == "misaligned":
        return _misaligned(array)
    if how == "broadcast":
        return np.broadcast_to(array[:1], array.shape) if array.shape[0] else array
    if how == "byteswapped":
        return array.astype(array.dtype.newbyteorder(">" if array.dtype.byteorder in "=<"
                                                     else "<"))
    if how == "torch":
        # A non-contiguous torch view (last axis stored first), as DLPack hands it.
        stored = np.ascontiguousarray(np.moveaxis(array, -1, 0))
        return _torch().from_numpy(stored).movedim(0, -1)
    raise ValueError(f"unknown arrangement {how!r}")


def as_numpy(result):
    """An op's result (NumPy or torch) as a NumPy array."""
    if isinstance(result, np.ndarray):
        return result
    return result.numpy()
