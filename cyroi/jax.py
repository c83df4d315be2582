"""JAX adapter: roi_align, roi_pool, ps_roi_align, ps_roi_pool and
roi_align_rotated as jax.custom_vjp functions, so they work under jax.jit,
jax.grad and jax.vmap.

    from cyroi.jax import roi_align, roi_pool

Arguments as cyroi's own ops (rois (K, 5) or a list of per-image (K_i, 4);
rotated (K, 6) or a list of (K_i, 5); layout "NCHW" or "NHWC"). The
computation runs on the host in cyroi's CPU loops through jax.pure_callback;
arrays on an accelerator are copied to the host and back. Gradients flow to
features only. argmax stays internal (int32, as JAX's default integer).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import _adapter_ops, _checks

__all__ = ["roi_align", "roi_pool", "ps_roi_align", "ps_roi_pool", "roi_align_rotated"]


def _callback(host, result, *args):
    # "sequential": under vmap the host function runs once per example.
    return jax.pure_callback(host, result, *args, vmap_method="sequential")


def _define(op):
    """A function (features, rois, output_size, *params, layout) with op's
    forward and a VJP that calls op's backward."""

    def forward(features, rois, output_size, params, layout):
        values = dict(params)
        shape = op.pooled_shape(features.shape, rois.shape[0], output_size, layout)
        argmax_shape = shape if op.keeps_argmax(values) else (0,)
        result = (jax.ShapeDtypeStruct(shape, features.dtype),
                  jax.ShapeDtypeStruct(argmax_shape, jnp.int32))

        def host(features, rois):
            out, argmax = op.forward(np.asarray(features), np.asarray(rois), output_size,
                                     values, layout=layout)
            argmax = np.zeros(0) if argmax is None else argmax
            return out, argmax.astype(np.int32)
        return _callback(host, result, features, rois)

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
    def pooled(features, rois, output_size, params, layout):
        return forward(features, rois, output_size, params, layout)[0]

    def pooled_forward(features, rois, output_size, params, layout):
        out, argmax = forward(features, rois, output_size, params, layout)
        return out, (features, rois, argmax)

    def pooled_backward(output_size, params, layout, saved, grad_output):
        features, rois, argmax = saved
        values = dict(params)
        input_shape, dtype = tuple(features.shape), features.dtype

        def host(grad_output, rois, argmax):
            kept = np.asarray(argmax) if op.keeps_argmax(values) else None
            # The forward validated these RoIs.
            grad = op.backward(np.asarray(grad_output), np.asarray(rois), input_shape, kept,
                               values, layout=layout, validate=False)
            return grad.astype(dtype)
        grad = _callback(host, jax.ShapeDtypeStruct(input_shape, dtype), grad_output,
                         rois, argmax)
        return grad, None

    pooled.defvjp(pooled_forward, pooled_backward)

    def apply(features, rois, output_size, *values, layout="NCHW"):
        features = jnp.asarray(features)
        params = tuple(zip((name for name, _ in op.params), values))
        op.check(dict(params))
        _checks.choice(layout, "layout", _checks.LAYOUTS)
        return pooled(features, _roi_table(rois, features.dtype, op.box_columns),
                      _checks.output_size(output_size), params, layout)
    return apply


def _roi_table(rois, dtype, columns):
    """A list of per-image (K_i, columns) boxes -> (K, 1 + columns) [batch_index, box...]."""
    if not isinstance(rois, (list, tuple)):
        return jnp.asarray(rois)
    boxes = [jnp.asarray(b) for b in rois]
    for image, b in enumerate(boxes):
        if b.ndim != 2 or b.shape[1] != columns:
            raise ValueError(f"rois[{image}] must have shape (K_{image}, {columns}); "
                             f"got {b.shape}")
    if not boxes:
        return jnp.zeros((0, 1 + columns), dtype)
    index = [jnp.full((b.shape[0], 1), image, b.dtype) for image, b in enumerate(boxes)]
    return jnp.concatenate([jnp.concatenate(index), jnp.concatenate(boxes)], axis=1)


_roi_align = _define(_adapter_ops.ROI_ALIGN)
_roi_pool = _define(_adapter_ops.ROI_POOL)
_ps_roi_align = _define(_adapter_ops.PS_ROI_ALIGN)
_ps_roi_pool = _define(_adapter_ops.PS_ROI_POOL)
_roi_align_rotated = _define(_adapter_ops.ROI_ALIGN_ROTATED)


def roi_align(features, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
              mode="avg", *, layout="NCHW"):
    """cyroi.roi_align for JAX arrays (differentiable in features)."""
    return _roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned, mode,
                      layout=layout)


def roi_pool(features, rois, output_size, spatial_scale=1.0, *, layout="NCHW"):
    """cyroi.roi_pool for JAX arrays (differentiable in features)."""
    return _roi_pool(features, rois, output_size, spatial_scale, layout=layout)


def ps_roi_align(features, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, *,
                 layout="NCHW"):
    """cyroi.ps_roi_align for JAX arrays (differentiable in features)."""
    return _ps_roi_align(features, rois, output_size, spatial_scale, sampling_ratio,
                         layout=layout)


def ps_roi_pool(features, rois, output_size, spatial_scale=1.0, *, layout="NCHW"):
    """cyroi.ps_roi_pool for JAX arrays (differentiable in features)."""
    return _ps_roi_pool(features, rois, output_size, spatial_scale, layout=layout)


def roi_align_rotated(features, rois, output_size, spatial_scale=1.0, sampling_ratio=-1,
                      aligned=True, clockwise=False, *, layout="NCHW"):
    """cyroi.roi_align_rotated for JAX arrays (differentiable in features)."""
    return _roi_align_rotated(features, rois, output_size, spatial_scale, sampling_ratio,
                              aligned, clockwise, layout=layout)
