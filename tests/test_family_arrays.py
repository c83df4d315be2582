"""The RoI family exchanges arrays like roi_align: torch (DLPack) in, torch
out, the same numbers as NumPy; backward takes and gives torch too."""
import numpy as np
import pytest

import cyroi

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
F = RNG.standard_normal((2, 8, 9, 10)).astype(np.float32)
BOXES = np.array([[0, 1, 1, 6, 5], [1, 0.5, 2, 7.5, 7]], np.float32)
ROTATED = np.array([[0, 4, 3, 5, 4, 20], [1, 5, 5, 3, 6, -40]], np.float32)
G = RNG.standard_normal((2, 8, 2, 2)).astype(np.float32)
G_PS = G[:, :2].copy()


def as_torch(*arrays):
    return [torch.from_numpy(a) for a in arrays]


@pytest.mark.parametrize("forward, backward, rois, g", [
    (cyroi.ps_roi_align, cyroi.ps_roi_align_backward, BOXES, G_PS),
    (cyroi.ps_roi_pool, cyroi.ps_roi_pool_backward, BOXES, G_PS),
    (cyroi.roi_align_rotated, cyroi.roi_align_rotated_backward, ROTATED, G)])
def test_torch_in_torch_out(forward, backward, rois, g):
    out = forward(*as_torch(F, rois), 2)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), forward(F, rois, 2))
    grad = backward(*as_torch(g, rois), F.shape)
    assert isinstance(grad, torch.Tensor)
    np.testing.assert_array_equal(grad.numpy(), backward(g, rois, F.shape))


def test_precise_roi_pool_torch():
    out = cyroi.precise_roi_pool(*as_torch(F, BOXES), 2)
    np.testing.assert_array_equal(out.numpy(), cyroi.precise_roi_pool(F, BOXES, 2))
    grad, grad_rois = cyroi.precise_roi_pool_backward(*as_torch(G, BOXES, F))
    assert isinstance(grad, torch.Tensor) and isinstance(grad_rois, torch.Tensor)
    expected = cyroi.precise_roi_pool_backward(G, BOXES, F)
    np.testing.assert_array_equal(grad_rois.numpy(), expected[1])


def test_multiscale_torch():
    levels = [F, np.ascontiguousarray(F[:, :, ::2, ::2])]
    rois = BOXES * [1, 4, 4, 30, 30]
    out = cyroi.multiscale_roi_align(as_torch(*levels), torch.from_numpy(rois), 2, [1 / 4, 1 / 8])
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(),
                                  cyroi.multiscale_roi_align(levels, rois, 2, [1 / 4, 1 / 8]))
    grads = cyroi.multiscale_roi_align_backward(torch.from_numpy(G), torch.from_numpy(rois),
                                                [a.shape for a in levels], [1 / 4, 1 / 8])
    assert all(isinstance(g, torch.Tensor) for g in grads)
