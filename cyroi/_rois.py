"""RoIs in the SPEC's three forms -> (boxes (K, B) float, batch (K,) int64)."""
import numpy as np

from . import _cpu_ext
from ._arrays import aligned_array, import_like
from ._checks import is_floating

_FRACTIONAL = ("rois[:, 0] (batch index) must hold integers; got fractional or non-finite "
               "values")
_NONFINITE = "rois box coordinates must be finite; got NaN or inf"


def _array_module(backend):
    if backend.name == "numpy":
        return np
    import cupy
    return cupy


def _numeric(array, name):
    if array.dtype.kind not in "iu" and not is_floating(array.dtype):
        raise TypeError(f"{name} must hold numbers; got dtype {array.dtype}")
    return array


def _per_image_list(rois, box_columns, backend, xp):
    parts, batch = [], []
    for image, item in enumerate(rois):
        part = _numeric(import_like(item, f"rois[{image}]", backend), f"rois[{image}]")
        if part.ndim != 2 or part.shape[1] != box_columns:
            raise ValueError(f"rois[{image}] must have shape (K_{image}, {box_columns}); "
                             f"got {tuple(part.shape)}")
        parts.append(part.astype(xp.float64, copy=False))
        batch.append(xp.full(part.shape[0], image, dtype=xp.int64))
    if not parts:
        return xp.zeros((0, box_columns)), xp.zeros(0, dtype=xp.int64)
    return xp.concatenate(parts), xp.concatenate(batch)


def _batch_column(column, xp, validate):
    if validate and not bool(xp.all(column == xp.floor(column))):
        raise ValueError(_FRACTIONAL)
    with np.errstate(invalid="ignore"):
        # Unchecked NaN/inf become out-of-range indices, which read as zeros.
        return xp.where(xp.isfinite(column), column, -1).astype(xp.int64)


def _scan_numpy(table, first, columns, batch, compute_dtype):
    """The compiled one-pass form of _finish's conversions and checks for a
    NumPy float32/float64 table (what small calls are made of)."""
    boxes = np.empty((table.shape[0], columns), compute_dtype)
    with_index = batch is None
    if with_index:
        batch = np.empty(table.shape[0], np.int64)
    fractional, low, high, nonfinite = _cpu_ext.scan_rois(aligned_array(table), first, boxes, batch,
                                                              with_index)
    return boxes, batch, fractional, low, high, nonfinite


def _finish(table, first, columns, batch, num_images, compute_dtype, validate, xp):
    """Boxes = table[:, first : first + columns] as C-contiguous compute_dtype
    and the int64 batch index (from column 0 of table when batch is None),
    checked in the SPEC's order when validate."""
    if xp is np and table.dtype in (np.float32, np.float64):
        boxes, batch, fractional, low, high, nonfinite = _scan_numpy(table, first, columns, batch,
                                                                     compute_dtype)
    else:
        fractional = low = high = nonfinite = None  # checked lazily: CuPy syncs per check
        if batch is None:
            batch = _batch_column(table[:, 0].astype(xp.float64), xp, validate)
        boxes = xp.ascontiguousarray(table[:, first:first + columns], dtype=compute_dtype)
    if validate and fractional:
        raise ValueError(_FRACTIONAL)
    if validate and batch.size:
        if low is None:
            low, high = int(batch.min()), int(batch.max())
        if low < 0 or high >= num_images:
            raise ValueError(f"batch index must be in [0, {num_images}); got values in "
                             f"[{low}, {high}]")
    if validate and (nonfinite or (nonfinite is None and not bool(xp.all(xp.isfinite(boxes))))):
        raise ValueError(_NONFINITE)
    return _aligned(boxes, xp), _aligned(xp.ascontiguousarray(batch), xp)


def _is_per_image_list(rois):
    return isinstance(rois, (list, tuple)) and all(hasattr(item, "shape") for item in rois)


def _aligned(array, xp):
    return aligned_array(array) if xp is np else array  # CuPy arrays are always aligned


def normalize(rois, batch_indices, num_images, backend, compute_dtype, validate,
              box_columns=4):
    """Returns C-contiguous boxes (K, box_columns) in compute_dtype and an
    int64 batch index per RoI."""
    xp = _array_module(backend)
    if _is_per_image_list(rois):
        if batch_indices is not None:
            raise ValueError("batch_indices must be None when rois is a list per image")
        if validate and len(rois) > num_images:
            raise ValueError(f"rois is a list of {len(rois)} per-image arrays but features "
                             f"hold {num_images} images")
        table, batch = _per_image_list(rois, box_columns, backend, xp)
        return _finish(table, 0, box_columns, batch, num_images, compute_dtype, validate, xp)
    table = _numeric(import_like(rois, "rois", backend), "rois")
    with_index = box_columns + 1
    if batch_indices is None:
        if table.ndim != 2 or table.shape[1] != with_index:
            raise ValueError(
                f"rois must have shape (K, {with_index}) [batch_index, ...], or be "
                f"(K, {box_columns}) with batch_indices=, or a list of (K_i, "
                f"{box_columns}) arrays; got shape {tuple(table.shape)}")
        return _finish(table, 1, box_columns, None, num_images, compute_dtype, validate, xp)
    if table.ndim != 2 or table.shape[1] != box_columns:
        raise ValueError(f"rois must have shape (K, {box_columns}) when batch_indices "
                         f"is given; got {tuple(table.shape)}")
    index = import_like(batch_indices, "batch_indices", backend)
    if index.dtype.kind not in "iu":
        raise TypeError(f"batch_indices must be integers; got dtype {index.dtype}")
    if index.shape != (table.shape[0],):
        raise ValueError(f"batch_indices must have shape ({table.shape[0]},); "
                         f"got {tuple(index.shape)}")
    return _finish(table, 0, box_columns, index.astype(xp.int64), num_images, compute_dtype,
                   validate, xp)


def gradient_like(grad_boxes, rois, batch_indices, backend):
    """The gradient for box coordinates (K, B) in the form the rois came in:
    (K, B+1) with a zero batch-index column, a list of per-image (K_i, B),
    or (K, B) beside batch_indices; each in the caller's array type."""
    xp = _array_module(backend)
    if _is_per_image_list(rois):
        if not rois:  # split would make one empty part of no images
            return []
        ends = np.cumsum([len(item) for item in rois])[:-1].tolist()
        return [backend.restore(part) for part in xp.split(grad_boxes, ends)]
    if batch_indices is not None:
        return backend.restore(grad_boxes)
    zeros = xp.zeros((len(grad_boxes), 1), grad_boxes.dtype)
    return backend.restore(xp.concatenate([zeros, grad_boxes], axis=1))
