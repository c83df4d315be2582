"""CUDA backend: drivers over the kernels of kernels/roi_ops.cu, compiled
lazily by cupy.RawModule (one module per device and dtype).

Inputs arrive validated, as CuPy arrays (torch and other CUDA DLPack
producers are imported without copies by _arrays.py). Feature maps are read
and gradients written through their strides (NCHW, NHWC or any view); pooled
arrays are made contiguous in their layout. float16 and bfloat16 compute in
float32. Kernels run on the caller's stream and nothing waits for them.

The drivers reach arrays through an array module and kernels through a
launcher, so tests can run them, and the kernels themselves, on the host
with NumPy (tests/test_cuda_host.py).
"""
import contextlib
import functools
import os
import re
import sys

import numpy as np

KERNEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")
KERNEL_FILE = "roi_ops.cu"
KERNELS = ("roi_align_forward", "roi_align_backward", "roi_pool_forward", "roi_pool_backward",
           "max_exponent_of", "fixed_point_to_values", "cast_values",
           "ps_roi_align_forward", "ps_roi_align_backward", "ps_roi_pool_forward",
           "ps_roi_pool_backward", "roi_align_rotated_forward", "roi_align_rotated_backward",
           "precise_roi_pool_forward", "precise_roi_pool_backward",
           "multiscale_roi_align_forward", "multiscale_roi_align_backward",
           "roi_align_box_grad", "roi_align_rotated_box_grad", "precise_roi_pool_box_grad")
BLOCK = 256
MAX_BLOCKS = 1 << 20  # grid-stride loops cover the rest
NO_EXPONENT = -100000  # roi_elements.h kNoExponent
NULL = np.uint64(0)  # an absent pointer argument

# dtype name -> (C++ type, C++ accumulation type, CUDA header it needs)
CXX_TYPES = {
    "float16": ("__half", "float", "cuda_fp16.h"),
    "bfloat16": ("__nv_bfloat16", "float", "cuda_bf16.h"),
    "float32": ("float", "float", None),
    "float64": ("double", "double", None),
}
_HEADER_DEFINES = {"cuda_fp16.h": "-DCYROI_FP16", "cuda_bf16.h": "-DCYROI_BF16"}
# NVRTC options cupy.RawModule adds itself; listed so that build() names
# everything the runtime compiles with.
_CUPY_OPTIONS = ("--std=c++17", "-ftz=true")


def compute_dtype(dtype):
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


# --------------------------------------------------------------- the sources

_LOCAL_INCLUDE = re.compile(r'#include "([^"]+)"\s*$')


def _inline_includes(name, seen):
    """The text of kernels/`name` with its local includes pasted in, once
    each, with #line marks so compiler messages name the original files."""
    with open(os.path.join(KERNEL_DIR, name), encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = [f'#line 1 "{name}"']
    for number, line in enumerate(lines, 1):
        included = _LOCAL_INCLUDE.match(line)
        if included:
            if included.group(1) not in seen:
                seen.add(included.group(1))
                out.append(_inline_includes(included.group(1), seen))
            out.append(f'#line {number + 1} "{name}"')
        else:
            out.append("" if line.strip() == "#pragma once" else line)
    return "\n".join(out)


@functools.lru_cache(maxsize=None)
def kernel_source():
    """roi_ops.cu as one self-contained text. CuPy's kernel cache is keyed by
    the source string, so the headers must be in it: an edited header then
    recompiles instead of reusing a stale binary."""
    return _inline_includes(KERNEL_FILE, {KERNEL_FILE}) + "\n"


def _cuda_include_dirs():
    """Where CUDA's own headers may be: CUDA_PATH / CUDA_HOME, the
    nvidia-cuda-runtime wheel (pip install "cuda-toolkit[cudart]"), the
    default toolkit location."""
    roots = [os.environ.get(name) for name in ("CUDA_PATH", "CUDA_HOME")]
    candidates = [os.path.join(root, "include") for root in roots if root]
    for entry in sys.path:
        for wheel in ("cu13", "cu12", "cuda_runtime"):
            candidates.append(os.path.join(entry, "nvidia", wheel, "include"))
    candidates.append("/usr/local/cuda/include")
    return candidates


def _header_dir(header):
    for directory in _cuda_include_dirs():
        if os.path.isfile(os.path.join(directory, header)):
            return directory
    raise RuntimeError(f"the CUDA header {header} was not found (looked in CUDA_PATH, "
                       "CUDA_HOME, the nvidia wheels and /usr/local/cuda); install it with "
                       "pip install \"cuda-toolkit[cudart]\" or set CUDA_PATH")


def name_expression(kernel, dtype_name):
    cxx_type, cxx_acc, _ = CXX_TYPES[dtype_name]
    return f"cyroi::{kernel}<{cxx_type}, {cxx_acc}>"


@functools.lru_cache(maxsize=None)
def build(dtype_name):
    """(source, options, name_expressions) of the module for one dtype. The
    runtime loader and the NVRTC test both compile exactly this."""
    header = CXX_TYPES[dtype_name][2]
    options = _CUPY_OPTIONS
    if header:
        options += (_HEADER_DEFINES[header], "-I" + _header_dir(header))
    names = tuple(name_expression(kernel, dtype_name) for kernel in KERNELS)
    return kernel_source(), options, names


# ------------------------------------------------------------ on the device

@functools.lru_cache(maxsize=None)
def _load(device_id, source, options, names):
    import cupy
    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=source, options=options, name_expressions=names)


def _module(device_id, dtype_name):
    return _load(device_id, *build(dtype_name))


def _launch(device_id, dtype_name, kernel, total, *args):
    """Runs a kernel of the dtype's module over `total` elements on the
    current stream."""
    if total == 0:
        return
    function = _module(device_id, dtype_name).get_function(name_expression(kernel, dtype_name))
    blocks = min(-(-total // BLOCK), MAX_BLOCKS)
    function((blocks,), (BLOCK,), args)


def _caller_stream(cupy, device_id):
    """The stream the caller works on. A torch tensor arrives as a CuPy view,
    indistinguishable from a CuPy array, so: a CuPy stream the caller made
    current wins; else torch's current stream when torch has CUDA running
    (torch.cuda.stream(...) users); else CuPy's default stream. DLPack's
    stream handshake keeps the exchange itself correct either way."""
    current = cupy.cuda.get_current_stream()
    if current.ptr != 0:
        return current
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        pointer = torch.cuda.current_stream(device_id).cuda_stream
        if pointer != 0:
            return cupy.cuda.ExternalStream(pointer, device_id)
    return current


@contextlib.contextmanager
def _on_device(array):
    """Makes `array`'s GPU and the caller's stream current for allocations
    and launches; yields launch(kernel, total, *args) for `array`'s dtype."""
    import cupy
    device_id = array.device.id
    with cupy.cuda.Device(device_id):
        with _caller_stream(cupy, device_id):
            yield functools.partial(_launch, device_id, array.dtype.name)


def _array_module(array):
    if isinstance(array, np.ndarray):
        return np
    import cupy
    return cupy


# ------------------------------------------------------------------ drivers

def _pooled_shape(rois, channels, size, layout):
    return (rois, channels, *size) if layout == "NCHW" else (rois, *size, channels)


def _layout_shape(shape_nchw, layout):
    n, c, h, w = shape_nchw
    return (n, c, h, w) if layout == "NCHW" else (n, h, w, c)


def _view(array, layout):
    """The View4 arguments of an array in `layout`: (N, C, H, W) extents,
    then element strides."""
    axes = (0, 1, 2, 3) if layout == "NCHW" else (0, 3, 1, 2)
    item = array.dtype.itemsize
    return (tuple(np.int64(array.shape[a]) for a in axes)
            + tuple(np.int64(array.strides[a] // item) for a in axes))


def _pointer(array):
    return NULL if array is None else array


def _address(array):
    """Where an array's data starts, for kernels that take tables of
    addresses: on the GPU for CuPy, in host memory for NumPy (the tests'
    host path)."""
    return np.uint64(array.ctypes.data if isinstance(array, np.ndarray) else array.data.ptr)


def _addresses(xp, arrays):
    """A device table of the arrays' addresses."""
    return xp.asarray(np.array([_address(array) for array in arrays], np.uint64))


def _flags(*values):
    return tuple(np.int32(bool(v)) for v in values)


def _pooled_size(array, layout):
    return array.shape[2:] if layout == "NCHW" else array.shape[1:3]


class _Gradient:
    """The buffers a backward scatters into, and how they become the result.

    Atomic mode adds into an Acc array (the result itself for float32 and
    float64). Deterministic mode counts fixed-point units in uint64 (scaled
    by the largest |grad_output|, found first) beside the Acc array, which
    then only receives non-finite values. Make them with _gradients."""

    def __init__(self, xp, launch, shape, layout, dtype, bins, max_exponent):
        self.launch, self.bins, self.max_exponent = launch, np.int64(bins), max_exponent
        acc = compute_dtype(dtype)
        layout_shape = _layout_shape(shape, layout)
        self.out = xp.zeros(layout_shape, dtype) if acc == dtype else xp.empty(layout_shape, dtype)
        self.acc = self.out if acc == dtype else xp.zeros(layout_shape, acc)
        self.counts = None if max_exponent is None else xp.zeros(layout_shape, np.uint64)
        self.view = _view(self.acc, layout)

    def kernel_args(self):
        return (*self.view, self.acc, _pointer(self.counts), _pointer(self.max_exponent))

    def result(self):
        size = np.int64(self.out.size)
        if self.counts is not None:
            self.launch("fixed_point_to_values", self.out.size, self.counts, self.acc,
                        self.max_exponent, self.bins, size, self.out)
        elif self.acc is not self.out:
            self.launch("cast_values", self.out.size, self.acc, size, self.out)
        return self.out


def _gradients(xp, launch, shapes, layout, grad_output, bins, deterministic):
    """One _Gradient per shape, for the backward of grad_output (`bins`
    pooled bins). In deterministic mode they share one fixed-point scale, so
    that one launch can fill them all."""
    max_exponent = None
    if deterministic:
        max_exponent = xp.full(1, NO_EXPONENT, np.int32)
        launch("max_exponent_of", grad_output.size, grad_output, np.int64(grad_output.size),
               max_exponent)
    return [_Gradient(xp, launch, shape, layout, grad_output.dtype, bins, max_exponent)
            for shape in shapes]


def roi_align_forward(features, boxes, batch, size, scale, sampling_ratio, aligned, mode,
                      layout, want_argmax, index):
    # index: the argmax's dtype, int32 or int64 (_checks.align_argmax_dtype).
    xp = _array_module(features)
    view = _view(features, layout)
    acc = compute_dtype(features.dtype).type
    with _on_device(features) as launch:
        out = xp.empty(_pooled_shape(len(boxes), int(view[1]), size, layout), features.dtype)
        argmax = xp.empty(out.shape, index) if want_argmax and mode == "max" else None
        launch("roi_align_forward", out.size, features, *view, boxes, batch,
               np.int64(len(boxes)), *map(np.int64, size), acc(scale), np.int64(sampling_ratio),
               *_flags(aligned, mode == "max", layout == "NHWC"), out, _pointer(argmax),
               *_flags(np.dtype(index).itemsize == 8))
    return out, argmax


def roi_align_backward(grad_output, boxes, batch, shape, scale, sampling_ratio, aligned, mode,
                       argmax, layout, deterministic=False):
    xp = _array_module(grad_output)
    size = _pooled_size(grad_output, layout)
    acc = compute_dtype(grad_output.dtype).type
    with _on_device(grad_output) as launch:
        g = xp.ascontiguousarray(grad_output)
        sample = xp.ascontiguousarray(argmax) if mode == "max" else None
        grad, = _gradients(xp, launch, [shape], layout, g, len(boxes) * size[0] * size[1],
                           deterministic)
        launch("roi_align_backward", g.size, g, _pointer(sample),
               *_flags(sample is not None and sample.dtype.itemsize == 8), boxes, batch,
               np.int64(len(boxes)), *map(np.int64, size), acc(scale), np.int64(sampling_ratio),
               *_flags(aligned, mode == "max", layout == "NHWC"), *grad.kernel_args())
        return grad.result()


def roi_pool_forward(features, boxes, batch, size, scale, layout, want_argmax, index):
    # The kernel writes the argmax either way; want_argmax matters to the CPU.
    # index: the argmax's dtype, int32 or int64 (_checks.pool_argmax_dtype).
    xp = _array_module(features)
    view = _view(features, layout)
    acc = compute_dtype(features.dtype).type
    with _on_device(features) as launch:
        out = xp.empty(_pooled_shape(len(boxes), int(view[1]), size, layout), features.dtype)
        argmax = xp.empty(out.shape, index)
        launch("roi_pool_forward", out.size, features, *view, boxes, batch, np.int64(len(boxes)),
               *map(np.int64, size), acc(scale), *_flags(layout == "NHWC"), out, argmax,
               *_flags(argmax.dtype.itemsize == 8))
    return out, argmax if want_argmax else None


def roi_pool_backward(grad_output, batch, argmax, shape, layout, deterministic=False):
    xp = _array_module(grad_output)
    size = _pooled_size(grad_output, layout)
    with _on_device(grad_output) as launch:
        g = xp.ascontiguousarray(grad_output)
        grad, = _gradients(xp, launch, [shape], layout, g, len(batch) * size[0] * size[1],
                           deterministic)
        launch("roi_pool_backward", g.size, g, xp.ascontiguousarray(argmax),
               *_flags(argmax.dtype.itemsize == 8), batch,
               np.int64(len(batch)), *map(np.int64, size), *_flags(layout == "NHWC"),
               *grad.kernel_args())
        return grad.result()


# ------------------------------------------------- the rest of the RoI family
#
# Kernels of kernels/family_ops.cuh: forward takes (features view, boxes,
# batch, K, pooled channels, PH, PW, channels_last, op arguments, out),
# backward (grad_output, the same pooled arguments, op arguments, gradient
# buffers). multiscale_roi_align's take tables of the pyramid's levels
# instead of one view, and pool every level in one launch.

def _family_forward(kernel, features, boxes, batch, channels, size, layout, *op_args):
    xp = _array_module(features)
    view = _view(features, layout)
    with _on_device(features) as launch:
        out = xp.empty(_pooled_shape(len(boxes), channels, size, layout), features.dtype)
        launch(kernel, out.size, features, *view, boxes, batch, np.int64(len(boxes)),
               np.int64(channels), *map(np.int64, size), *_flags(layout == "NHWC"), *op_args,
               out)
    return out


def _family_backward(kernel, grad_output, boxes, batch, shape, layout, deterministic,
                     *op_args):
    xp = _array_module(grad_output)
    size = _pooled_size(grad_output, layout)
    channels = grad_output.shape[1] if layout == "NCHW" else grad_output.shape[3]
    with _on_device(grad_output) as launch:
        g = xp.ascontiguousarray(grad_output)
        grad, = _gradients(xp, launch, [shape], layout, g, len(boxes) * size[0] * size[1],
                           deterministic)
        launch(kernel, g.size, g, boxes, batch, np.int64(len(boxes)), np.int64(channels),
               *map(np.int64, size), *_flags(layout == "NHWC"), *op_args, *grad.kernel_args())
        return grad.result()


def _scale(array, scale):
    return compute_dtype(array.dtype).type(scale)


def _ps_channels(features, size, layout):
    return int(_view(features, layout)[1]) // (size[0] * size[1])


def ps_roi_align_forward(features, boxes, batch, size, scale, sampling_ratio, layout):
    return _family_forward("ps_roi_align_forward", features, boxes, batch,
                           _ps_channels(features, size, layout), size, layout,
                           _scale(features, scale), np.int64(sampling_ratio))


def ps_roi_align_backward(grad_output, boxes, batch, shape, scale, sampling_ratio, layout,
                          deterministic=False):
    return _family_backward("ps_roi_align_backward", grad_output, boxes, batch, shape, layout,
                            deterministic, _scale(grad_output, scale), np.int64(sampling_ratio))


def ps_roi_pool_forward(features, boxes, batch, size, scale, layout):
    return _family_forward("ps_roi_pool_forward", features, boxes, batch,
                           _ps_channels(features, size, layout), size, layout,
                           _scale(features, scale))


def ps_roi_pool_backward(grad_output, boxes, batch, shape, scale, layout, deterministic=False):
    return _family_backward("ps_roi_pool_backward", grad_output, boxes, batch, shape, layout,
                            deterministic, _scale(grad_output, scale))


def roi_align_rotated_forward(features, boxes, batch, size, scale, sampling_ratio, aligned,
                              clockwise, layout):
    return _family_forward("roi_align_rotated_forward", features, boxes, batch,
                           int(_view(features, layout)[1]), size, layout, _scale(features, scale),
                           np.int64(sampling_ratio), *_flags(aligned, clockwise))


def roi_align_rotated_backward(grad_output, boxes, batch, shape, scale, sampling_ratio, aligned,
                               clockwise, layout, deterministic=False):
    return _family_backward("roi_align_rotated_backward", grad_output, boxes, batch, shape,
                            layout, deterministic, _scale(grad_output, scale),
                            np.int64(sampling_ratio), *_flags(aligned, clockwise))


def precise_roi_pool_forward(features, boxes, batch, size, scale, layout):
    return _family_forward("precise_roi_pool_forward", features, boxes, batch,
                           int(_view(features, layout)[1]), size, layout, _scale(features, scale))


def precise_roi_pool_backward(grad_output, boxes, batch, shape, scale, layout,
                              deterministic=False):
    return _family_backward("precise_roi_pool_backward", grad_output, boxes, batch, shape, layout,
                            deterministic, _scale(grad_output, scale))


def _pyramid(xp, views, scales, acc, canonical_scale, canonical_level, levels):
    """The kernels' level table (CYROI_PYRAMID in kernels/family_ops.cuh):
    the levels' View4s and scales on the device, then the FPN parameters."""
    return (xp.asarray(np.array(views, np.int64)), xp.asarray(np.array(scales, acc)),
            acc(canonical_scale), acc(canonical_level), *map(np.int64, levels))


def multiscale_roi_align_forward(features_list, boxes, batch, size, scales, levels,
                                 sampling_ratio, aligned, canonical_scale, canonical_level,
                                 layout):
    xp = _array_module(features_list[0])
    views = [_view(features, layout) for features in features_list]
    acc = compute_dtype(features_list[0].dtype).type
    channels = int(views[0][1])
    with _on_device(features_list[0]) as launch:
        out = xp.empty(_pooled_shape(len(boxes), channels, size, layout), features_list[0].dtype)
        launch("multiscale_roi_align_forward", out.size, _addresses(xp, features_list), boxes,
               batch, np.int64(len(boxes)), np.int64(channels), *map(np.int64, size),
               *_flags(layout == "NHWC"), np.int64(sampling_ratio), *_flags(aligned),
               *_pyramid(xp, views, scales, acc, canonical_scale, canonical_level, levels), out)
    return out


def multiscale_roi_align_backward(grad_output, boxes, batch, shapes, scales, levels,
                                  sampling_ratio, aligned, canonical_scale, canonical_level,
                                  layout, deterministic=False):
    xp = _array_module(grad_output)
    size = _pooled_size(grad_output, layout)
    acc = compute_dtype(grad_output.dtype).type
    channels = shapes[0][1]
    with _on_device(grad_output) as launch:
        g = xp.ascontiguousarray(grad_output)
        grads = _gradients(xp, launch, shapes, layout, g, len(boxes) * size[0] * size[1],
                           deterministic)
        launch("multiscale_roi_align_backward", g.size, g, boxes, batch, np.int64(len(boxes)),
               np.int64(channels), *map(np.int64, size), *_flags(layout == "NHWC"),
               np.int64(sampling_ratio), *_flags(aligned),
               *_pyramid(xp, [grad.view for grad in grads], scales, acc, canonical_scale,
                         canonical_level, levels),
               _addresses(xp, [grad.acc for grad in grads]),
               _addresses(xp, [grad.counts for grad in grads]) if deterministic else NULL,
               _pointer(grads[0].max_exponent))
        return [grad.result() for grad in grads]


def _box_grad(kernel, grad_output, features, boxes, batch, layout, *op_args):
    """The (K, B) gradient for box coordinates: per-bin partials from the
    kernel, summed per RoI in the compute dtype."""
    xp = _array_module(grad_output)
    size = _pooled_size(grad_output, layout)
    features = features.astype(grad_output.dtype, copy=False)  # the kernel reads both as T
    view = _view(features, layout)
    with _on_device(grad_output) as launch:
        g = xp.ascontiguousarray(grad_output)
        parts = xp.zeros((len(boxes), size[0] * size[1], boxes.shape[1]), boxes.dtype)
        launch(kernel, parts.shape[0] * parts.shape[1], features, *view, g, boxes, batch,
               np.int64(len(boxes)), view[1], *map(np.int64, size), *_flags(layout == "NHWC"),
               *op_args, parts)
        return parts.sum(axis=1).astype(grad_output.dtype, copy=False)


def roi_align_rois_grad(grad_output, features, boxes, batch, scale, sampling_ratio, aligned,
                        layout):
    return _box_grad("roi_align_box_grad", grad_output, features, boxes, batch, layout,
                     _scale(grad_output, scale), np.int64(sampling_ratio), *_flags(aligned))


def roi_align_rotated_rois_grad(grad_output, features, boxes, batch, scale, sampling_ratio,
                                aligned, clockwise, layout):
    return _box_grad("roi_align_rotated_box_grad", grad_output, features, boxes, batch, layout,
                     _scale(grad_output, scale), np.int64(sampling_ratio),
                     *_flags(aligned, clockwise))


def precise_roi_pool_rois_grad(grad_output, features, boxes, batch, scale, layout):
    return _box_grad("precise_roi_pool_box_grad", grad_output, features, boxes, batch, layout,
                     _scale(grad_output, scale))
