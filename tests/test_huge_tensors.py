"""Tensors past 2^31 elements: 64-bit indexing end to end, and correct values
at the far end (torchvision crashed there on the CPU and returned empty
output on the GPU).

The arrays are 8 GiB of address space but cost little memory: np.zeros maps
untouched pages to the kernel's zero page, so only the far corner this test
writes, and what the op writes, becomes resident. Values there are checked
against tests/reference.py run on a small copy of that corner, with the RoIs
moved by whole pixels and the sample grid chosen so every coordinate is
exact in float32 (moving them then changes no rounding)."""
import numpy as np
import pytest

import cyroi
import reference

pytestmark = pytest.mark.slow

ELEMENTS = 2**31 + 2**20  # the far 8x8 corner of either shape lies past 2^31
GiB = 2**30


def rss():
    """Resident memory of this process in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.fixture(autouse=True)
def linux_only():
    try:
        rss()
    except OSError:
        pytest.skip("needs /proc/self/statm to watch resident memory")


# RoIs inside an 8x8 corner, in its own coordinates: 6 px wide for 3 bins,
# 4 or 6 px tall for 2, and 2 samples per bin side put every sample on a
# multiple of 1/4 px, exact at any offset below 2^21.
CORNER_ROIS = np.array([[0, 0.5, 0.5, 6.5, 4.5], [0, 1.0, 2.0, 7.0, 8.0],
                        [0, 1.5, 3.5, 7.5, 7.5]])
ALIGN = dict(output_size=(2, 3), spatial_scale=1.0, sampling_ratio=2, aligned=False)


def corner_reference(corner, mode):
    return reference.roi_align(corner[None, None], CORNER_ROIS, (2, 3), 1.0, 2, False, mode,
                               dtype=np.float32)


def test_last_image_of_a_batch_past_2_31_elements():
    """features (N, 1, 64, 64) with N * 4096 > 2^31: the last image starts
    past element 2^31; forward and backward of every op read and write it."""
    side = 64
    N = ELEMENTS // (side * side)
    before = rss()
    features = np.zeros((N, 1, side, side), np.float32)
    corner = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    features[N - 1, 0, -8:, -8:] = corner
    rois = CORNER_ROIS.copy()
    rois[:, 0] = N - 1
    rois[:, 1:] += side - 8  # into the far corner
    for mode in ("avg", "max"):
        out, argmax = cyroi.roi_align(features, rois, **ALIGN, mode=mode, return_argmax=True) \
            if mode == "max" else (cyroi.roi_align(features, rois, **ALIGN), None)
        want, want_argmax = corner_reference(corner, mode)
        np.testing.assert_array_equal(out, want.astype(np.float32))
        if mode == "max":
            np.testing.assert_array_equal(argmax, want_argmax)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    grad = cyroi.roi_align_backward(g, rois, features.shape, 1.0, 2, False)
    want_grad = reference.roi_align_backward(g, CORNER_ROIS, (1, 1, 8, 8), (2, 3), 1.0, 2,
                                             False, dtype=np.float32)
    np.testing.assert_allclose(grad[N - 1, 0, -8:, -8:], want_grad[0, 0], rtol=1e-6, atol=1e-6)
    assert np.count_nonzero(grad) == np.count_nonzero(want_grad)  # nothing written elsewhere
    out, argmax = cyroi.roi_pool(features, rois, 2, return_argmax=True)
    want, want_argmax = reference.roi_pool(corner[None, None], CORNER_ROIS, (2, 2), 1.0,
                                           dtype=np.float32)
    np.testing.assert_array_equal(out, want.astype(np.float32))
    rows, cols = np.divmod(want_argmax, 8)
    np.testing.assert_array_equal(argmax, (rows + side - 8) * side + cols + side - 8)
    assert rss() - before < GiB


def test_argmax_past_2_31_in_one_plane():
    """One (H, W) plane of more than 2^31 elements: roi_pool's argmax h*W + w
    passes 2^31 and must come back exact as int64 (not torchvision's int32),
    and the backward must add the gradient there."""
    W = 2**16
    H = ELEMENTS // W
    before = rss()
    features = np.zeros((1, 1, H, W), np.float32)
    corner = np.random.default_rng(2).standard_normal((8, 8)).astype(np.float32)
    features[0, 0, -8:, -8:] = corner
    rois = CORNER_ROIS.copy()
    rois[:, 1] += W - 8
    rois[:, 3] += W - 8
    rois[:, 2] += H - 8
    rois[:, 4] += H - 8
    out, argmax = cyroi.roi_pool(features, rois, 2, return_argmax=True)
    want, want_argmax = reference.roi_pool(corner[None, None], CORNER_ROIS, (2, 2), 1.0,
                                           dtype=np.float32)
    np.testing.assert_array_equal(out, want.astype(np.float32))
    rows, cols = np.divmod(want_argmax, 8)
    expected = (rows + H - 8) * W + cols + W - 8
    assert expected.min() > 2**31
    assert argmax.dtype == np.int64
    np.testing.assert_array_equal(argmax, expected)
    g = np.arange(1, out.size + 1, dtype=np.float32).reshape(out.shape)
    grad = cyroi.roi_pool_backward(g, rois, argmax, features.shape)
    want_grad = reference.roi_pool_backward(g, CORNER_ROIS, (1, 1, 8, 8), (2, 2), 1.0,
                                            want_argmax, dtype=np.float32)
    np.testing.assert_array_equal(grad[0, 0, -8:, -8:], want_grad[0, 0])
    out = cyroi.roi_align(features, rois, **ALIGN)
    np.testing.assert_array_equal(out, corner_reference(corner, "avg")[0].astype(np.float32))
    assert rss() - before < GiB


# ---------------------------------------------------------------------------
# The rest of the family, through one helper: each op runs on a huge array
# whose far 8x8 corner holds random values and is compared with the same op
# on that corner alone (tests/reference.py; cyroi itself for the box
# gradients of roi_align and roi_align_rotated, which reference.py has only
# as finite differences and tests/test_roi_align_box_grad.py /
# test_roi_align_rotated.py check on small maps).
# ---------------------------------------------------------------------------

SIDE = 64  # image side in the "batch" geometry
PLANE_W = 2**16  # plane width in the "plane" geometry


def far_corner_problem(geometry, channels, seed):
    """(features, corner, offset, batch): a float32 array past 2^31 elements
    whose far 8x8 corner (every channel) is `corner` (1, channels, 8, 8),
    with `offset` (dy, dx) of that corner and `batch` of its image.

    "batch": (N, C, 64, 64), the last image starts past element 2^31;
    "plane": (1, C, H, 2^16), each plane alone has more than 2^31 elements."""
    if geometry == "batch":
        shape = (-(-ELEMENTS // (channels * SIDE * SIDE)), channels, SIDE, SIDE)
    else:
        shape = (1, channels, ELEMENTS // PLANE_W, PLANE_W)
    features = np.zeros(shape, np.float32)
    corner = np.random.default_rng(seed).standard_normal((1, channels, 8, 8)).astype(np.float32)
    features[-1, :, -8:, -8:] = corner[0]
    return features, corner, (shape[2] - 8, shape[3] - 8), shape[0] - 1


def moved(rois, offset, batch, rotated):
    """Corner RoIs moved onto the huge array: batch index and whole pixels
    ((x1, y1, x2, y2), or the centre (cx, cy) of rotated boxes)."""
    rois = rois.copy()
    dy, dx = offset
    rois[:, 0] = batch
    for c in (1, 2) if rotated else (1, 2, 3, 4):
        rois[:, c] += dx if c % 2 else dy
    return rois


# Rotated RoIs (cx, cy, w, h, degrees) inside the corner, samples on
# multiples of 1/8 px. Quarter turns only: float32 cos 90 deg is 4e-8, lost
# at the far end; another angle would round its samples by up to 2^-8 px at
# 2^15 px out and change the values by more than any tight tolerance.
ROTATED_ROIS = np.array([[0, 4.0, 4.0, 6.0, 3.0, 0.0], [0, 3.5, 4.5, 6.0, 4.0, 90.0],
                         [0, 4.5, 3.5, 3.0, 5.0, 180.0]])
EXACT = dict(rtol=0, atol=0)
CLOSE = dict(rtol=2e-5, atol=2e-5)
RA = dict(spatial_scale=1.0, sampling_ratio=2, aligned=False)
ROT = dict(spatial_scale=1.0, sampling_ratio=2, aligned=True, clockwise=False)


def _ref(op, *args, **kwargs):
    return getattr(reference, op)(*args, **kwargs, dtype=np.float32)


def _first(result):
    return result[0] if isinstance(result, tuple) else result


def _coarse(features):
    """A second pyramid level (scale 1/2) for the same images: never chosen
    by the corner's small RoIs (FPN level 0), so its gradient stays zero."""
    n, c, h, w = features.shape
    return np.zeros((n, c, h // 2, w // 2), np.float32)


def _ms_backward(g, rois, f):
    grads = cyroi.multiscale_roi_align_backward(g, rois, [f.shape, _coarse(f).shape], [1.0, 0.5])
    return grads[0], np.count_nonzero(grads[1])


def _ms_reference_backward(g, rois, f):
    grads = reference.multiscale_roi_align_backward(g, rois, [f.shape, _coarse(f).shape], (2, 3),
                                                    [1.0, 0.5], dtype=np.float32)
    return grads[0], np.count_nonzero(grads[1])


# name: (channels, corner rois, forward tolerance, forward(features, rois),
#        reference forward(corner, rois), backward(g, rois, features) ->
#        (grad_features, extra), the same on the corner (extra: the box
#        gradient, or what must stay untouched; None if nothing)).
FAMILY = {
    "ps_roi_align": (
        6, CORNER_ROIS, EXACT,
        lambda f, r: cyroi.ps_roi_align(f, r, (2, 3), 1.0, 2),
        lambda f, r: _ref("ps_roi_align", f, r, (2, 3), 1.0, 2),
        lambda g, r, f: (cyroi.ps_roi_align_backward(g, r, f.shape, 1.0, 2), None),
        lambda g, r, f: (_ref("ps_roi_align_backward", g, r, f.shape, (2, 3), 1.0, 2), None)),
    "ps_roi_pool": (
        6, CORNER_ROIS, EXACT,
        lambda f, r: cyroi.ps_roi_pool(f, r, (2, 3), 1.0),
        lambda f, r: _ref("ps_roi_pool", f, r, (2, 3), 1.0),
        lambda g, r, f: (cyroi.ps_roi_pool_backward(g, r, f.shape, 1.0), None),
        lambda g, r, f: (_ref("ps_roi_pool_backward", g, r, f.shape, (2, 3), 1.0), None)),
    "roi_align_rotated": (
        2, ROTATED_ROIS, CLOSE,  # turned boxes: 1 ulp from the 4e-8 of cos 90 deg
        lambda f, r: cyroi.roi_align_rotated(f, r, (2, 3), **ROT),
        lambda f, r: _ref("roi_align_rotated", f, r, (2, 3), 1.0, 2, True, False),
        lambda g, r, f: cyroi.roi_align_rotated_backward(g, r, f.shape, **ROT,
                                                         need_rois_grad=True, features=f),
        lambda g, r, f: (_ref("roi_align_rotated_backward", g, r, f.shape, (2, 3), 1.0, 2, True,
                              False),
                         cyroi.roi_align_rotated_backward(g, r, f.shape, **ROT,
                                                          need_rois_grad=True, features=f)[1])),
    "roi_align box gradient": (
        2, CORNER_ROIS, EXACT,
        lambda f, r: cyroi.roi_align(f, r, (2, 3), **RA),
        lambda f, r: _ref("roi_align", f, r, (2, 3), 1.0, 2, False),
        lambda g, r, f: cyroi.roi_align_backward(g, r, f.shape, **RA, need_rois_grad=True,
                                                 features=f),
        lambda g, r, f: (_ref("roi_align_backward", g, r, f.shape, (2, 3), 1.0, 2, False),
                         cyroi.roi_align_backward(g, r, f.shape, **RA, need_rois_grad=True,
                                                  features=f)[1])),
    "precise_roi_pool": (
        2, CORNER_ROIS, CLOSE,
        lambda f, r: cyroi.precise_roi_pool(f, r, (2, 3), 1.0),
        lambda f, r: _ref("precise_roi_pool", f, r, (2, 3), 1.0),
        lambda g, r, f: cyroi.precise_roi_pool_backward(g, r, f, 1.0),
        lambda g, r, f: _ref("precise_roi_pool_backward", g, f, r, (2, 3), 1.0)),
    "multiscale_roi_align": (
        2, CORNER_ROIS, EXACT,
        lambda f, r: cyroi.multiscale_roi_align([f, _coarse(f)], r, (2, 3), [1.0, 0.5]),
        lambda f, r: _ref("multiscale_roi_align", [f, _coarse(f)], r, (2, 3), [1.0, 0.5]),
        _ms_backward, _ms_reference_backward),
}
# Both geometries for every op; the position-sensitive ones (6 channels of
# 8 GiB each in one plane would not fit) only in the batch one.
CASES = [(name, geometry) for name in FAMILY for geometry in ("batch", "plane")
         if geometry == "batch" or FAMILY[name][0] <= 2]


@pytest.mark.parametrize("name, geometry", CASES)
def test_family_at_the_far_end(name, geometry):
    """Forward, backward (and the box gradient where the op has one) of each
    family op read and write the corner past 2^31 elements; the gradient
    matches the reference there and is zero around it (the whole last image,
    or the plane's last 16 rows), and the box gradient matches the
    corner's own."""
    channels, corner_rois, tol, forward, ref_forward, backward, ref_backward = FAMILY[name]
    before = rss()
    features, corner, offset, batch = far_corner_problem(geometry, channels,
                                                         seed=3 + CASES.index((name, geometry)))
    rois = moved(corner_rois, offset, batch, rotated=corner_rois.shape[1] == 6)
    out = forward(features, rois)
    want = _first(ref_forward(corner, corner_rois))
    assert np.count_nonzero(want) == want.size  # every bin read the corner
    np.testing.assert_allclose(out, want.astype(np.float32), **tol)
    g = np.random.default_rng(7).standard_normal(out.shape).astype(np.float32)
    grad, extra = backward(g, rois, features)
    want_grad, want_extra = ref_backward(g, corner_rois, corner)
    assert grad.shape == features.shape
    rows = features.shape[2] if geometry == "batch" else 16  # 16 rows: 1 MiB each
    around = np.zeros((channels, rows, features.shape[3]))
    around[:, -8:, -8:] = want_grad[0]
    np.testing.assert_allclose(grad[batch, :, -rows:], around, **CLOSE)
    if extra is not None:
        np.testing.assert_allclose(extra, want_extra, **CLOSE)
    assert rss() - before < GiB
