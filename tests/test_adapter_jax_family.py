"""cyroi.jax's position-sensitive and rotated ops: numbers of
tests/reference.py, and gradients that match the reference backward and
finite differences."""
import numpy as np
import pytest

import reference

jax = pytest.importorskip("jax")
cj = pytest.importorskip("cyroi.jax")
jnp = jax.numpy
from jax.test_util import check_grads  # noqa: E402

RNG = np.random.default_rng(13)
FEATURES = RNG.standard_normal((2, 8, 6, 7))  # 8 channels: 2 of 2x2 bins, 4 of 1x2
ROIS = np.array([[0, 1, 1, 5, 5.5], [1, 0.5, 2, 6.5, 5], [0, -3, 4, 20, 9], [1, 6, 5, 2, 1]])
ROTATED = np.array([[0, 4, 3.5, 5, 3, 30], [1, 2, 5, 6, 2.5, -75], [0, 3, 3, 12, 9, 200]])
CASES = [  # op, output_size, parameters after output_size, rois
    ("ps_roi_align", (2, 2), (0.5, 2), ROIS), ("ps_roi_align", (1, 2), (1.0, -1), ROIS),
    ("ps_roi_pool", 2, (0.5,), ROIS), ("ps_roi_pool", (2, 1), (1.0,), ROIS),
    ("roi_align_rotated", (2, 3), (1.0, 2, True, False), ROTATED),
    ("roi_align_rotated", 2, (0.5, -1, False, True), ROTATED)]


def pair(size):
    return (size, size) if isinstance(size, int) else size


@pytest.fixture
def x64():
    with jax.enable_x64():
        yield


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name, size, params, rois", CASES)
def test_matches_reference_forward_and_vjp(x64, name, size, params, rois, jit):
    def f(x):
        return getattr(cj, name)(x, jnp.asarray(rois), size, *params)
    f = jax.jit(f) if jit else f
    out, vjp = jax.vjp(f, jnp.asarray(FEATURES))
    grad = np.random.default_rng(3).standard_normal(out.shape)
    expected = getattr(reference, name)(FEATURES, rois, pair(size), *params)
    expected_grad = getattr(reference, name + "_backward")(grad, rois, FEATURES.shape,
                                                           pair(size), *params)
    assert out.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(out), expected)
    np.testing.assert_array_equal(np.asarray(vjp(jnp.asarray(grad))[0]), expected_grad)


@pytest.mark.parametrize("name, size, params, rois", CASES)
def test_grads_match_finite_differences(x64, name, size, params, rois):
    op = getattr(cj, name)
    check_grads(lambda x: op(x, jnp.asarray(rois), size, *params), (jnp.asarray(FEATURES),),
                order=1, modes=["rev"], eps=1e-6)


def test_float32_nhwc_and_list_of_rotated_boxes():
    x, rois = FEATURES.astype(np.float32), ROTATED.astype(np.float32)
    expected = reference.roi_align_rotated(x, rois, (2, 2), 0.5, 2, dtype=np.float32)
    per_image = [jnp.asarray(rois[rois[:, 0] == i, 1:]) for i in range(2)]
    order = np.argsort(rois[:, 0], kind="stable")
    nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
    out = jax.jit(lambda f: cj.roi_align_rotated(f, per_image, 2, 0.5, 2, layout="NHWC"))(nhwc)
    assert out.dtype == jnp.float32 and out.shape == (3, 2, 2, 8)
    np.testing.assert_array_equal(np.asarray(out).transpose(0, 3, 1, 2), expected[order])


def test_errors():
    x, rois = jnp.asarray(FEATURES, jnp.float32), jnp.asarray(ROIS, jnp.float32)
    with pytest.raises(ValueError, match=r"divisible by PH\*PW"):
        jax.jit(lambda f: cj.ps_roi_pool(f, rois, 3))(x)
    with pytest.raises(TypeError, match="sampling_ratio must be an int"):
        cj.ps_roi_align(x, rois, 2, 1.0, 1.5)
    with pytest.raises(ValueError, match=r"rois\[0\] must have shape \(K_0, 5\)"):
        cj.roi_align_rotated(x, [rois[:, 1:]], 2)
