"""Object form of the ops for explicit forward/backward pipelines (the
Chainer / MXNet style): forward keeps exactly what backward needs."""
from ._api import (multiscale_roi_align, multiscale_roi_align_backward, precise_roi_pool,
                   precise_roi_pool_backward, ps_roi_align, ps_roi_align_backward, ps_roi_pool,
                   ps_roi_pool_backward, roi_align, roi_align_backward, roi_align_rotated,
                   roi_align_rotated_backward, roi_pool, roi_pool_backward)


class _Saved:
    def __init__(self, rois, features, layout, batch_indices, argmax=None):
        self.rois = rois
        self.input_shape = tuple(int(d) for d in features.shape)
        self.layout = layout
        self.batch_indices = batch_indices
        self.argmax = argmax


class _Op:
    _saved = None

    def _saved_or_raise(self):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._saved


class RoIAlign(_Op):
    """roi_align with fixed parameters; .forward then .backward."""

    def __init__(self, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
                 mode="avg"):
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.mode = mode

    def _params(self):
        return dict(spatial_scale=self.spatial_scale, sampling_ratio=self.sampling_ratio,
                    aligned=self.aligned, mode=self.mode)

    def forward(self, features, rois, *, layout="NCHW", batch_indices=None):
        argmax = None
        result = roi_align(features, rois, self.output_size, **self._params(), layout=layout,
                           batch_indices=batch_indices, return_argmax=self.mode == "max")
        if self.mode == "max":
            result, argmax = result
        self._saved = _Saved(rois, features, layout, batch_indices, argmax)
        return result

    def backward(self, grad_output):
        s = self._saved_or_raise()
        return roi_align_backward(grad_output, s.rois, s.input_shape, **self._params(),
                                  argmax=s.argmax, layout=s.layout,
                                  batch_indices=s.batch_indices)

    def __repr__(self):
        return (f"RoIAlign(output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}, "
                f"mode={self.mode!r})")


class RoIPool(_Op):
    """roi_pool with fixed parameters; .forward then .backward."""

    def __init__(self, output_size, spatial_scale=1.0):
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, features, rois, *, layout="NCHW", batch_indices=None):
        out, argmax = roi_pool(features, rois, self.output_size, self.spatial_scale,
                               layout=layout, batch_indices=batch_indices, return_argmax=True)
        self._saved = _Saved(rois, features, layout, batch_indices, argmax)
        return out

    def backward(self, grad_output):
        s = self._saved_or_raise()
        return roi_pool_backward(grad_output, s.rois, s.argmax, s.input_shape, layout=s.layout,
                                 batch_indices=s.batch_indices)

    def __repr__(self):
        return f"RoIPool(output_size={self.output_size}, spatial_scale={self.spatial_scale})"


class _Replayed(_Op):
    """An op whose backward needs only the rois, the input shape and the
    parameters: subclasses name the two functions and set the parameters."""
    _function = _backward_function = None

    def _params(self):
        return {}

    def forward(self, features, rois, *, layout="NCHW", batch_indices=None):
        result = type(self)._function(features, rois, self.output_size, **self._params(),
                                      layout=layout, batch_indices=batch_indices)
        self._saved = _Saved(rois, features, layout, batch_indices)
        return result

    def backward(self, grad_output):
        s = self._saved_or_raise()
        return type(self)._backward_function(grad_output, s.rois, s.input_shape,
                                             **self._params(), layout=s.layout,
                                             batch_indices=s.batch_indices)

    def __repr__(self):
        params = "".join(f", {name}={value!r}" for name, value in self._params().items())
        return f"{type(self).__name__}(output_size={self.output_size}{params})"


class PSRoIAlign(_Replayed):
    """ps_roi_align with fixed parameters; .forward then .backward."""
    _function = staticmethod(ps_roi_align)
    _backward_function = staticmethod(ps_roi_align_backward)

    def __init__(self, output_size, spatial_scale=1.0, sampling_ratio=-1):
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio

    def _params(self):
        return dict(spatial_scale=self.spatial_scale, sampling_ratio=self.sampling_ratio)


class PSRoIPool(_Replayed):
    """ps_roi_pool with fixed parameters; .forward then .backward."""
    _function = staticmethod(ps_roi_pool)
    _backward_function = staticmethod(ps_roi_pool_backward)

    def __init__(self, output_size, spatial_scale=1.0):
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def _params(self):
        return dict(spatial_scale=self.spatial_scale)


class RoIAlignRotated(_Replayed):
    """roi_align_rotated with fixed parameters; .forward then .backward (for
    features; the stateless roi_align_rotated_backward also gives the box
    gradient)."""
    _function = staticmethod(roi_align_rotated)
    _backward_function = staticmethod(roi_align_rotated_backward)

    def __init__(self, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=True,
                 clockwise=False):
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.clockwise = clockwise

    def _params(self):
        return dict(spatial_scale=self.spatial_scale, sampling_ratio=self.sampling_ratio,
                    aligned=self.aligned, clockwise=self.clockwise)


class PreciseRoIPool(_Op):
    """precise_roi_pool with fixed parameters; .forward keeps the features,
    .backward returns (grad_features, grad_rois)."""

    def __init__(self, output_size, spatial_scale=1.0):
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, features, rois, *, layout="NCHW", batch_indices=None):
        out = precise_roi_pool(features, rois, self.output_size, self.spatial_scale,
                               layout=layout, batch_indices=batch_indices)
        self._saved = _Saved(rois, features, layout, batch_indices)
        self._saved.features = features
        return out

    def backward(self, grad_output):
        s = self._saved_or_raise()
        return precise_roi_pool_backward(grad_output, s.rois, s.features, self.spatial_scale,
                                         layout=s.layout, batch_indices=s.batch_indices)

    def __repr__(self):
        return (f"PreciseRoIPool(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale})")


class MultiScaleRoIAlign(_Op):
    """multiscale_roi_align with fixed parameters; .forward takes the list of
    pyramid levels, .backward returns one gradient per level."""

    def __init__(self, output_size, spatial_scales, sampling_ratio=2, aligned=False,
                 canonical_scale=224, canonical_level=4):
        self.output_size = output_size
        self.spatial_scales = spatial_scales
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def _params(self):
        return dict(sampling_ratio=self.sampling_ratio, aligned=self.aligned,
                    canonical_scale=self.canonical_scale, canonical_level=self.canonical_level)

    def forward(self, features_list, rois, *, layout="NCHW", batch_indices=None):
        out = multiscale_roi_align(features_list, rois, self.output_size, self.spatial_scales,
                                   **self._params(), layout=layout, batch_indices=batch_indices)
        self._saved = _Saved(rois, features_list[0], layout, batch_indices)
        self._saved.input_shapes = [tuple(int(d) for d in f.shape) for f in features_list]
        return out

    def backward(self, grad_output):
        s = self._saved_or_raise()
        return multiscale_roi_align_backward(grad_output, s.rois, s.input_shapes,
                                             self.spatial_scales, **self._params(),
                                             layout=s.layout, batch_indices=s.batch_indices)

    def __repr__(self):
        params = "".join(f", {name}={value!r}" for name, value in self._params().items())
        return (f"MultiScaleRoIAlign(output_size={self.output_size}, "
                f"spatial_scales={self.spatial_scales}{params})")
