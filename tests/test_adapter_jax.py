"""cyroi.jax: numbers of tests/reference.py, jit, vmap, and gradients that
match the reference backward and finite differences."""
import numpy as np
import pytest

import reference

jax = pytest.importorskip("jax")
cj = pytest.importorskip("cyroi.jax")
jnp = jax.numpy
from jax.test_util import check_grads  # noqa: E402

RNG = np.random.default_rng(11)
# Distinct, well-separated values: finite differences never move a maximum.
FEATURES = RNG.permutation(2 * 2 * 6 * 7).reshape(2, 2, 6, 7) * 0.25
ROIS = np.array([[0, 1, 1, 5, 5.5], [1, 0.5, 2, 6.5, 5], [0, -3, 4, 20, 9], [1, 6, 5, 2, 1]])
POINT_ROI = np.array([[1, 3, 3, 3, 3]])  # kept out of finite differences: near ties in "max"
CASES = [  # op, output_size, parameters after spatial_scale
    ("roi_align", (2, 3), (0.5, 2, True, "avg")), ("roi_align", 2, (1.0, -1, False, "avg")),
    ("roi_align", (3, 2), (1.0, 2, False, "max")), ("roi_pool", (2, 3), (0.5,)),
    ("roi_pool", 3, (1.0,))]


def pair(size):
    return (size, size) if isinstance(size, int) else size


def reference_forward_backward(name, size, params, grad, rois):
    """Reference (out, grad_features) for a float64 problem."""
    out, argmax = getattr(reference, name)(FEATURES, rois, pair(size), *params)
    if name == "roi_pool":
        g = reference.roi_pool_backward(grad, rois, FEATURES.shape, pair(size), *params, argmax)
    else:
        g = reference.roi_align_backward(grad, rois, FEATURES.shape, pair(size), *params, argmax)
    return out, g


@pytest.fixture
def x64():
    with jax.enable_x64():
        yield


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name, size, params", CASES)
def test_matches_reference_forward_and_vjp(x64, name, size, params, jit):
    rois = np.concatenate([ROIS, POINT_ROI])
    op = getattr(cj, name)

    def f(x):
        return op(x, jnp.asarray(rois), size, *params)
    f = jax.jit(f) if jit else f
    out, vjp = jax.vjp(f, jnp.asarray(FEATURES))
    grad = np.random.default_rng(3).standard_normal(out.shape)
    expected, expected_grad = reference_forward_backward(name, size, params, grad, rois)
    assert out.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(out), expected)
    np.testing.assert_array_equal(np.asarray(vjp(jnp.asarray(grad))[0]), expected_grad)


@pytest.mark.parametrize("name, size, params", CASES)
def test_grads_match_finite_differences(x64, name, size, params):
    op = getattr(cj, name)
    check_grads(lambda x: op(x, jnp.asarray(ROIS), size, *params), (jnp.asarray(FEATURES),),
                order=1, modes=["rev"], eps=1e-6)


def test_float32_nhwc_and_list_of_boxes():
    x = FEATURES.astype(np.float32)
    rois = ROIS.astype(np.float32)
    expected, _ = reference.roi_align(x, rois, (2, 2), 0.5, 2, True, dtype=np.float32)
    per_image = [jnp.asarray(rois[rois[:, 0] == i, 1:]) for i in range(2)]
    order = np.argsort(rois[:, 0], kind="stable")
    nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
    out = jax.jit(lambda f: cj.roi_align(f, per_image, 2, 0.5, 2, True, layout="NHWC"))(nhwc)
    assert out.dtype == jnp.float32 and out.shape == (4, 2, 2, 2)
    np.testing.assert_array_equal(np.asarray(out).transpose(0, 3, 1, 2), expected[order])


def test_vmap_over_a_batch_of_feature_maps():
    batch = jnp.asarray(np.stack([FEATURES, -FEATURES]).astype(np.float32))
    rois = jnp.asarray(ROIS, jnp.float32)

    def loss(f):
        return cj.roi_align(f, rois, 2, mode="max").sum()
    grads = jax.vmap(jax.grad(loss))(batch)
    for i in range(2):
        np.testing.assert_array_equal(np.asarray(grads[i]), np.asarray(jax.grad(loss)(batch[i])))


def test_errors():
    x, rois = jnp.asarray(FEATURES, jnp.float32), jnp.asarray(ROIS, jnp.float32)
    with pytest.raises(ValueError, match="spatial_scale must be finite and > 0"):
        cj.roi_pool(x, rois, 2, 0.0)
    with pytest.raises(ValueError, match="mode must be one of"):
        jax.jit(lambda f: cj.roi_align(f, rois, 2, mode="min"))(x)
    with pytest.raises(ValueError, match="layout must be one of"):
        cj.roi_pool(x, rois, 2, layout="CHWN")
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        cj.roi_align(x, rois, 0)
    with pytest.raises(ValueError, match=r"rois\[0\] must have shape"):
        cj.roi_align(x, [rois], 2)
    # Data-dependent checks run in the host callback; JAX re-raises them.
    with pytest.raises(Exception, match="batch index must be in"):
        cj.roi_align(x, rois.at[0, 0].set(7), 2).block_until_ready()
