"""Array-type detection and DLPack exchange.

Every op computes on either NumPy (CPU) or CuPy (CUDA) arrays. Anything else
that speaks DLPack (torch, JAX, ...) is imported without a copy and the result
is handed back as the caller's type.
"""
import importlib
import sys

import numpy as np

_DLPACK_CPU = 1
_DLPACK_CUDA = (2, 3, 13)  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged


class Backend:
    """Where an op's arrays live: the library that computes and how to give
    the result back in the caller's array type."""

    def __init__(self, name, restore, device=None):
        self.name = name  # "numpy" or "cupy"
        self.restore = restore
        self.device = device

    def __repr__(self):
        return f"Backend({self.name!r}, device={self.device!r})"


def _identity(x):
    return x


# Backends are never changed once made: NumPy's, the most common, is shared.
_NUMPY = Backend("numpy", _identity)


def _library_of(obj):
    return type(obj).__module__.split(".")[0]


def _from_dlpack_of(library):
    """The caller library's own from_dlpack, to hand results back."""
    module = importlib.import_module(library)
    for path in ("from_dlpack", "dlpack.from_dlpack", "numpy.from_dlpack"):
        target = module
        try:
            for part in path.split("."):
                target = getattr(target, part)
        except AttributeError:
            continue
        return target
    raise TypeError(f"cannot hand a result back to {library}: it has no from_dlpack")


def _is_cupy(obj):
    return _library_of(obj) == "cupy" and "cupy" in sys.modules


def import_array(obj, name):
    """Returns (array, Backend) for an op input: a NumPy or CuPy array that
    shares memory with `obj` where `obj` is an array of another library."""
    if isinstance(obj, np.ndarray):
        return obj, _NUMPY
    if _is_cupy(obj) and hasattr(obj, "device"):
        return obj, Backend("cupy", _identity, obj.device.id)
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        if getattr(obj, "requires_grad", False):
            obj = obj.detach()  # DLPack refuses tensors that track gradients
        device_type, device_id = obj.__dlpack_device__()
        restore = _from_dlpack_of(_library_of(obj))
        if device_type == _DLPACK_CPU:
            return np.from_dlpack(obj), Backend("numpy", restore)
        if device_type in _DLPACK_CUDA:
            cupy = _import_cupy()
            return cupy.from_dlpack(obj), Backend("cupy", restore, device_id)
        raise TypeError(f"{name} lives on DLPack device type {device_type}; "
                        "expected the CPU or an NVIDIA GPU")
    if isinstance(obj, (list, tuple)) or np.isscalar(obj):
        return np.asarray(obj), _NUMPY
    raise TypeError(f"{name} must be an array (NumPy, CuPy or any DLPack producer); "
                    f"got {type(obj).__name__}")


def _import_cupy():
    try:
        import cupy
    except ImportError as error:
        raise TypeError("a GPU array was given but CuPy is not installed: "
                        "pip install 'cyroi[cuda]'") from error
    return cupy


def _location(obj):
    """("numpy" | "cupy", device id) of an input, without importing it."""
    if isinstance(obj, np.ndarray):
        return "numpy", None
    if _is_cupy(obj) and hasattr(obj, "device"):
        return "cupy", obj.device.id
    if hasattr(obj, "__dlpack_device__"):
        device_type, device_id = obj.__dlpack_device__()
        if device_type in _DLPACK_CUDA:
            return "cupy", device_id
    return "numpy", None


def import_like(obj, name, backend):
    """Imports a second input (rois, grad_output, argmax) after checking that
    it lives where the first one does."""
    name_there, device_there = _location(obj)
    if name_there != backend.name or device_there != backend.device:
        where = "the CPU" if backend.name == "numpy" else f"GPU {backend.device}"
        there = "the CPU" if name_there == "numpy" else f"GPU {device_there}"
        raise ValueError(f"{name} must be on the same device as features ({where}); "
                         f"got an array on {there}")
    return import_array(obj, name)[0]


def aligned_array(array):
    """A NumPy array, copied if misaligned (a view at an odd byte offset, as
    np.frombuffer makes): the compiled loops load whole elements, and a
    misaligned load is undefined behaviour in C."""
    return array if array.flags.aligned else array.copy(order="K")
