"""roi_align_backward(..., need_rois_grad=True): the derivative of roi_align
(mode "avg") for the box coordinates, against central differences of the
reference forward. Random continuous boxes keep sample coordinates off the
integers, where the bilinear surface has kinks, and keep the adaptive grid
unchanged under the small step."""
import numpy as np
import pytest

import cyroi
import reference

# The box gradient against central differences of the reference forward
# (also fuzz/family.py's, against one-sided ones).
TOLERANCE = dict(rtol=1e-6, atol=1e-6)


def random_rois(rng, count, height, width, scale):
    x1 = rng.uniform(-2, width + 1, count) / scale
    y1 = rng.uniform(-2, height + 1, count) / scale
    w = rng.uniform(0.2, 8, count) / scale
    h = rng.uniform(0.2, 8, count) / scale
    return np.column_stack([rng.integers(0, 2, count), x1, y1, x1 + w, y1 + h])


def box_grad_case(aligned, ratio, scale):
    """Features, RoIs (one smaller than a pixel), output gradient g and the
    box gradient wanted: central differences of the reference forward times
    g. Also for tests/test_cuda_host_family.py."""
    rng = np.random.default_rng(int(aligned) * 10 + ratio + int(4 * scale))
    x = rng.standard_normal((2, 3, 7, 8))
    rois = random_rois(rng, 6, 7, 8, scale)
    rois[0, 3:] = rois[0, 1:3] + 0.4 / scale  # smaller than one pixel: size raised to 1
    size = (2, 3)
    g = rng.standard_normal((6, 3, *size))
    want = reference.numeric_box_grad(
        lambda r: reference.roi_align(x, r, size, scale, ratio, aligned)[0] * g, rois)
    return x, rois, g, want


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("ratio", [2, -1])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_box_gradient_is_the_derivative(aligned, ratio, scale):
    x, rois, g, want = box_grad_case(aligned, ratio, scale)
    grad_x, grad_rois = cyroi.roi_align_backward(g, rois, x.shape, scale, ratio, aligned,
                                                 need_rois_grad=True, features=x)
    np.testing.assert_array_equal(grad_x, cyroi.roi_align_backward(g, rois, x.shape, scale,
                                                                   ratio, aligned))
    assert grad_rois.shape == rois.shape and not grad_rois[:, 0].any()
    np.testing.assert_allclose(grad_rois[:, 1:], want, **TOLERANCE)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_box_gradient_forms_layouts_and_dtypes(layout):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 8))
    rois = random_rois(rng, 4, 7, 8, 1.0)
    rois[:, 0] = [0, 0, 1, 1]
    g = rng.standard_normal((4, 3, 2, 2))
    _, expected = cyroi.roi_align_backward(g, rois, x.shape, need_rois_grad=True, features=x)

    def to_layout(a):
        return a if layout == "NCHW" else np.ascontiguousarray(a.transpose(0, 2, 3, 1))

    x_l, g_l = to_layout(x), to_layout(g)
    _, table = cyroi.roi_align_backward(g_l, rois, x_l.shape, need_rois_grad=True, features=x_l,
                                        layout=layout)
    np.testing.assert_allclose(table, expected, rtol=1e-13, atol=1e-13)
    _, per_image = cyroi.roi_align_backward(g_l, [rois[:2, 1:], rois[2:, 1:]], x_l.shape,
                                            need_rois_grad=True, features=x_l, layout=layout)
    assert isinstance(per_image, list) and [p.shape for p in per_image] == [(2, 4), (2, 4)]
    np.testing.assert_array_equal(np.concatenate(per_image), table[:, 1:])
    _, f32 = cyroi.roi_align_backward(g_l.astype(np.float32), rois, x_l.shape, layout=layout,
                                      need_rois_grad=True, features=x_l.astype(np.float32))
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, expected, rtol=1e-4, atol=1e-4)


def test_max_mode_has_no_box_gradient():
    with pytest.raises(ValueError, match="need_rois_grad=True needs mode='avg'"):
        cyroi.roi_align_backward(np.zeros((1, 1, 2, 2)), np.zeros((1, 5)), (1, 1, 4, 4),
                                 mode="max", argmax=np.zeros((1, 1, 2, 2), np.int64),
                                 need_rois_grad=True, features=np.zeros((1, 1, 4, 4)))


def test_torch_tensors_in_and_out():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 6, 6))
    rois = random_rois(rng, 2, 6, 6, 1.0) * [0, 1, 1, 1, 1]
    g = rng.standard_normal((2, 2, 2, 2))
    grad, grad_rois = cyroi.roi_align_backward(torch.from_numpy(g), torch.from_numpy(rois),
                                               x.shape, need_rois_grad=True,
                                               features=torch.from_numpy(x))
    assert isinstance(grad, torch.Tensor) and isinstance(grad_rois, torch.Tensor)
    np.testing.assert_array_equal(
        grad_rois.numpy(),
        cyroi.roi_align_backward(g, rois, x.shape, need_rois_grad=True, features=x)[1])


def test_empty_list_of_images_gives_an_empty_list():
    """rois=[] (no images, no boxes): the gradient in the form of the rois is
    [] (it was [array of shape (0, 4)], one image too many; found by fuzzing)."""
    x = np.zeros((0, 2, 4, 4))
    _, grad_rois = cyroi.roi_align_backward(np.zeros((0, 2, 2, 2)), [], x.shape,
                                            need_rois_grad=True, features=x)
    assert grad_rois == []
