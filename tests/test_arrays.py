"""Array exchange: NumPy in -> NumPy out; DLPack producers (torch) in -> the
same type out, without copies."""
import numpy as np
import pytest

import cyroi

torch = pytest.importorskip("torch")


def inputs():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((2, 3, 8, 9)).astype(np.float32)
    rois = np.array([[0, 1, 1, 6, 5], [1, 0.5, 2, 7.5, 7], [1, 3, 3, 3, 3]], np.float32)
    return f, rois


@pytest.mark.parametrize("op", [cyroi.roi_align, cyroi.roi_pool])
def test_torch_in_torch_out(op):
    f, rois = inputs()
    expected = op(f, rois, 2)
    out = op(torch.from_numpy(f), torch.from_numpy(rois), 2)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), expected)


def test_torch_list_of_boxes():
    f, rois = inputs()
    per_image = [torch.from_numpy(rois[:1, 1:]), torch.from_numpy(rois[1:, 1:])]
    out = cyroi.roi_align(torch.from_numpy(f), per_image, 3, 0.5)
    np.testing.assert_array_equal(out.numpy(), cyroi.roi_align(f, rois, 3, 0.5))


def test_torch_input_is_not_copied():
    f, rois = inputs()
    t = torch.from_numpy(f)
    imported = np.from_dlpack(t)
    assert imported.__array_interface__["data"][0] == t.data_ptr()


def test_torch_output_shares_memory_with_the_result():
    f, rois = inputs()
    out = cyroi.roi_pool(torch.from_numpy(f), torch.from_numpy(rois), 2)
    view = np.from_dlpack(out)
    view[0, 0, 0, 0] = 123.0  # a write through NumPy shows in the tensor: no copy
    assert out[0, 0, 0, 0].item() == 123.0


def test_tensor_that_requires_grad_is_accepted():
    f, rois = inputs()
    t = torch.from_numpy(f).requires_grad_(True)
    out = cyroi.roi_align(t, torch.from_numpy(rois), 2)
    np.testing.assert_array_equal(out.numpy(), cyroi.roi_align(f, rois, 2))


def test_torch_backward_round_trip():
    f, rois = inputs()
    out, argmax = cyroi.roi_pool(torch.from_numpy(f), torch.from_numpy(rois), 2,
                                 return_argmax=True)
    grad = cyroi.roi_pool_backward(torch.ones_like(out), torch.from_numpy(rois), argmax,
                                   tuple(f.shape))
    assert isinstance(grad, torch.Tensor)
    assert grad.sum().item() == pytest.approx(float((argmax >= 0).sum()))


def test_float16_computes_in_float32_and_returns_float16():
    f, rois = inputs()
    out = cyroi.roi_align(f.astype(np.float16), rois, 2)
    assert out.dtype == np.float16
    expected = cyroi.roi_align(f.astype(np.float16).astype(np.float32), rois, 2)
    np.testing.assert_array_equal(out, expected.astype(np.float16))


def test_non_contiguous_and_nhwc_views_match_contiguous():
    f, rois = inputs()
    wide = np.zeros((2, 6, 8, 18), np.float32)
    wide[:, ::2, :, ::2] = f
    strided = wide[:, ::2, :, ::2]
    np.testing.assert_array_equal(cyroi.roi_align(strided, rois, 2), cyroi.roi_align(f, rois, 2))
    nhwc = f.transpose(0, 2, 3, 1)  # a view, not a copy
    out = cyroi.roi_align(nhwc, rois, 2, layout="NHWC")
    np.testing.assert_array_equal(out.transpose(0, 3, 1, 2), cyroi.roi_align(f, rois, 2))


def test_read_only_input():
    f, rois = inputs()
    f.setflags(write=False)
    rois.setflags(write=False)
    assert cyroi.roi_pool(f, rois, 2).shape == (3, 3, 2, 2)


def test_python_lists_are_arrays():
    f, rois = inputs()
    out = cyroi.roi_pool(f, rois.tolist(), 2)
    np.testing.assert_array_equal(out, cyroi.roi_pool(f, rois, 2))


def test_batch_indices_form():
    f, rois = inputs()
    out = cyroi.roi_align(f, rois[:, 1:], 2, batch_indices=rois[:, 0].astype(np.int32))
    np.testing.assert_array_equal(out, cyroi.roi_align(f, rois, 2))
