"""Every "Bad input" case of SPEC.md: the right exception, naming the argument."""
import numpy as np
import pytest

import cyroi

F = np.zeros((2, 4, 6, 6), np.float32)
R = np.array([[0, 1, 1, 4, 4], [1, 0, 0, 5, 5]], np.float32)
OPS = [cyroi.roi_align, cyroi.roi_pool]


@pytest.mark.parametrize("op", OPS)
def test_features_not_4d(op):
    with pytest.raises(ValueError, match="features must be 4-D"):
        op(F[0], R, 2)


@pytest.mark.parametrize("op", OPS)
def test_features_not_floating(op):
    with pytest.raises(TypeError, match="features must be floating.*int32"):
        op(F.astype(np.int32), R, 2)


@pytest.mark.parametrize("op", OPS)
def test_features_not_an_array(op):
    with pytest.raises(TypeError, match="features must be an array"):
        op(object(), R, 2)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("rois", [np.zeros((3, 6)), np.zeros(5), np.zeros((2, 3))])
def test_rois_wrong_shape(op, rois):
    with pytest.raises(ValueError, match=r"rois must have shape \(K, 5\)"):
        op(F, rois, 2)


@pytest.mark.parametrize("op", OPS)
def test_rois_per_image_wrong_shape(op):
    with pytest.raises(ValueError, match=r"rois\[1\] must have shape \(K_1, 4\)"):
        op(F, [np.zeros((1, 4)), np.zeros((2, 5))], 2)


@pytest.mark.parametrize("op", OPS)
def test_rois_not_numeric(op):
    with pytest.raises(TypeError, match="rois must hold numbers"):
        op(F, np.array([["a"] * 5]), 2)


@pytest.mark.parametrize("op", OPS)
def test_batch_index_not_integral(op):
    with pytest.raises(ValueError, match="batch index.*integers"):
        op(F, np.array([[0.5, 1, 1, 4, 4]]), 2)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("index", [-1, 2, 7])
def test_batch_index_out_of_range(op, index):
    with pytest.raises(ValueError, match=r"batch index must be in \[0, 2\)"):
        op(F, np.array([[index, 1, 1, 4, 4]], np.float32), 2)


@pytest.mark.parametrize("op", OPS)
def test_batch_indices_out_of_range(op):
    with pytest.raises(ValueError, match=r"batch index must be in \[0, 2\)"):
        op(F, R[:, 1:], 2, batch_indices=np.array([0, 5]))


@pytest.mark.parametrize("op", OPS)
def test_batch_indices_not_integers(op):
    with pytest.raises(TypeError, match="batch_indices must be integers"):
        op(F, R[:, 1:], 2, batch_indices=np.array([0.0, 1.0]))


@pytest.mark.parametrize("op", OPS)
def test_too_many_images_in_list(op):
    with pytest.raises(ValueError, match="list of 3 per-image arrays but features hold 2"):
        op(F, [np.zeros((1, 4))] * 3, 2)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_box(op, bad):
    rois = R.copy()
    rois[1, 3] = bad
    with pytest.raises(ValueError, match="rois box coordinates must be finite"):
        op(F, rois, 2)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("size", [0, -1, (2, 0), (0, 3)])
def test_output_size_below_one(op, size):
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        op(F, R, size)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("size", [2.0, "2", (2, 2, 2), (2.5, 2), True])
def test_output_size_wrong_kind(op, size):
    with pytest.raises(TypeError, match="output_size must be an int or a pair"):
        op(F, R, size)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("scale", [0, -0.5, np.inf, np.nan])
def test_spatial_scale_bad_value(op, scale):
    with pytest.raises(ValueError, match="spatial_scale must be finite and > 0"):
        op(F, R, 2, scale)


@pytest.mark.parametrize("op", OPS)
def test_spatial_scale_wrong_kind(op):
    with pytest.raises(TypeError, match="spatial_scale must be a real number"):
        op(F, R, 2, "0.5")


@pytest.mark.parametrize("ratio", [0, -2, -7])
def test_sampling_ratio_bad_value(ratio):
    with pytest.raises(ValueError, match="sampling_ratio must be > 0, or -1"):
        cyroi.roi_align(F, R, 2, 1.0, ratio)


def test_sampling_ratio_wrong_kind():
    with pytest.raises(TypeError, match="sampling_ratio must be an int"):
        cyroi.roi_align(F, R, 2, 1.0, 2.0)


def test_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of 'avg', 'max'; got 'mean'"):
        cyroi.roi_align(F, R, 2, mode="mean")


@pytest.mark.parametrize("op", OPS)
def test_unknown_layout(op):
    with pytest.raises(ValueError, match="layout must be one of 'NCHW', 'NHWC'; got 'CHWN'"):
        op(F, R, 2, layout="CHWN")


@pytest.mark.parametrize("op", OPS)
def test_empty_spatial_map(op):
    with pytest.raises(ValueError, match="H >= 1 and W >= 1"):
        op(np.zeros((1, 1, 0, 4), np.float32), R[:1], 2)


class _FakeCudaArray:
    """Claims to live on GPU 0 through DLPack, as a torch CUDA tensor would."""

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, **kwargs):
        raise AssertionError("must not be imported before the device check")


@pytest.mark.parametrize("op", OPS)
def test_features_and_rois_on_different_devices(op):
    with pytest.raises(ValueError, match=r"rois must be on the same device as features "
                                         r"\(the CPU\); got an array on GPU 0"):
        op(F, _FakeCudaArray(), 2)


def test_return_argmax_needs_max_mode():
    with pytest.raises(ValueError, match="return_argmax=True needs mode='max'"):
        cyroi.roi_align(F, R, 2, return_argmax=True)


def test_max_backward_needs_argmax():
    g = np.zeros((2, 4, 2, 2), np.float32)
    with pytest.raises(ValueError, match="needs argmax="):
        cyroi.roi_align_backward(g, R, F.shape, mode="max")


@pytest.mark.parametrize("shape", [(3, 4, 2, 2), (2, 5, 2, 2)])
def test_grad_output_wrong_shape(shape):
    with pytest.raises(ValueError, match="grad_output must have shape"):
        cyroi.roi_align_backward(np.zeros(shape, np.float32), R, F.shape)


def test_input_shape_wrong_kind():
    with pytest.raises(TypeError, match="input_shape must be 4 ints"):
        cyroi.roi_align_backward(np.zeros((2, 4, 2, 2)), R, (2, 4, 6))


def test_argmax_wrong_shape():
    g = np.zeros((2, 4, 2, 2), np.float32)
    with pytest.raises(ValueError, match="argmax must have shape"):
        cyroi.roi_pool_backward(g, R, np.zeros((2, 4, 3, 2), np.int64), F.shape)


def test_set_num_threads_rejects_nonsense():
    with pytest.raises(ValueError, match="set_num_threads expects an int >= 1"):
        cyroi.set_num_threads(0)


@pytest.mark.parametrize("op", OPS)
def test_unchecked_bad_boxes_read_nothing_out_of_bounds(op):
    # validate=False skips the host checks; the loops still stay in bounds:
    # bad batch indices give zeros, non-finite boxes finite values.
    rois = np.array([[7, 1, 1, 4, 4], [-3, 0, 0, 5, 5], [np.nan, 1, 1, 2, 2],
                     [0, np.nan, 1, 4, np.inf], [1, -np.inf, np.inf, 1e30, -1e30]], np.float32)
    out = op(F + 1, rois, 3, validate=False)
    assert np.all(out[:3] == 0)
    assert np.all(np.isfinite(out))
