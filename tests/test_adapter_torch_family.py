"""cyroi.torch's position-sensitive and rotated ops: signatures of
torchvision / detectron2, numbers of tests/reference.py, float64 gradcheck,
torch.library checks and torch.compile(fullgraph=True)."""
import inspect

import numpy as np
import pytest

import reference

torch = pytest.importorskip("torch")
ct = pytest.importorskip("cyroi.torch")

RNG = np.random.default_rng(5)
# 8 channels: 2 output channels of 2x2 bins; 2 of 1x2 bins gives 4.
FEATURES = RNG.standard_normal((2, 8, 7, 8))
ROIS = np.array([[0, 1, 1, 5, 6], [1, 0.5, 2, 7.5, 7], [1, 3, 3, 3, 3], [0, -3, 4, 20, 9],
                 [1, 6, 5, 2, 1]])
ROTATED = np.array([[0, 4, 3.5, 5, 3, 30], [1, 2, 5, 6, 2.5, -75], [1, 6, 2, 1, 1, 0],
                    [0, 3, 3, 12, 9, 200]])
# op, reference name, extra parameters after output_size and spatial_scale, rois
CASES = [
    ("ps_roi_align", (2, 2), (0.5, 2), ROIS), ("ps_roi_align", (1, 2), (1.0, -1), ROIS),
    ("ps_roi_pool", 2, (0.5,), ROIS), ("ps_roi_pool", (2, 1), (1.0,), ROIS),
    ("roi_align_rotated", (2, 3), (1.0, 2, True, False), ROTATED),
    ("roi_align_rotated", 2, (0.5, -1, False, True), ROTATED)]


def pair(size):
    return (size, size) if isinstance(size, int) else size


def described(f):
    return [(p.name, p.default) for p in inspect.signature(f).parameters.values()]


def test_signatures_match_torchvision_and_detectron2():
    empty = inspect.Parameter.empty
    head = [("input", empty), ("boxes", empty), ("output_size", empty), ("spatial_scale", 1.0)]
    assert described(ct.ps_roi_align) == head + [("sampling_ratio", -1)]
    assert described(ct.ps_roi_pool) == head
    assert described(ct.PSRoIAlign) == [("output_size", empty), ("spatial_scale", empty),
                                         ("sampling_ratio", empty)]
    assert described(ct.PSRoIPool) == [("output_size", empty), ("spatial_scale", empty)]
    assert described(ct.RoIAlignRotated) == [
        ("output_size", empty), ("spatial_scale", empty), ("sampling_ratio", empty),
        ("aligned", True), ("clockwise", False)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name, size, params, rois", CASES)
def test_matches_reference_forward_and_backward(name, size, params, rois, dtype):
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    features, rois = FEATURES.astype(np_dtype), rois.astype(np_dtype)
    x = torch.tensor(features, requires_grad=True)
    out = getattr(ct, name)(x, torch.tensor(rois), size, *params)
    expected = getattr(reference, name)(features, rois, pair(size), *params, dtype=np_dtype)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.detach().double().numpy(), expected)

    g = np.random.default_rng(1).standard_normal(expected.shape).astype(np_dtype)
    out.backward(torch.tensor(g))
    expected_grad = getattr(reference, name + "_backward")(
        g, rois, features.shape, pair(size), *params, dtype=np_dtype)
    np.testing.assert_array_equal(x.grad.double().numpy(), expected_grad)


@pytest.mark.parametrize("name, size, params, rois", CASES)
def test_gradcheck(name, size, params, rois):
    # ps_roi_pool's bins are integer cells: its output is linear in features.
    x = torch.tensor(FEATURES[:1, :, :6, :6], requires_grad=True)
    rois = torch.tensor(rois[rois[:, 0] == 0])
    op = getattr(ct, name)
    assert torch.autograd.gradcheck(lambda f: op(f, rois, size, *params), (x,))


def test_lists_of_boxes_equal_roi_tables():
    x = torch.tensor(FEATURES)
    for op, table in ((ct.ps_roi_align, ROIS), (ct.ps_roi_pool, ROIS),
                      (ct.roi_align_rotated, ROTATED)):
        rois = torch.tensor(table)
        per_image = [rois[rois[:, 0] == i, 1:] for i in range(2)]
        in_image_order = torch.cat([rois[rois[:, 0] == i] for i in range(2)])
        torch.testing.assert_close(op(x, per_image, 2, 0.5), op(x, in_image_order, 2, 0.5),
                                   rtol=0, atol=0)


@pytest.mark.parametrize("op, rois, args", [
    (torch.ops.cyroi.ps_roi_align.default, ROIS, ([2, 2], 0.5, 2)),
    (torch.ops.cyroi.ps_roi_pool.default, ROIS, ([1, 2], 1.0)),
    (torch.ops.cyroi.roi_align_rotated.default, ROTATED, ([2, 3], 0.5, 2, True, False))])
def test_custom_op_registration(op, rois, args):
    x = torch.tensor(FEATURES, requires_grad=True)
    torch.library.opcheck(op, (x, torch.tensor(rois), *args))


def test_modules_equal_functions():
    x, rois, rotated = torch.tensor(FEATURES), torch.tensor(ROIS), torch.tensor(ROTATED)
    modules = [(ct.PSRoIAlign(2, 0.5, 2), ct.ps_roi_align(x, rois, 2, 0.5, 2), rois),
               (ct.PSRoIPool((1, 2), 0.5), ct.ps_roi_pool(x, rois, (1, 2), 0.5), rois),
               (ct.RoIAlignRotated(2, 0.5, 2), ct.roi_align_rotated(x, rotated, 2, 0.5, 2),
                rotated)]
    for module, expected, boxes in modules:
        assert isinstance(module, torch.nn.Module)
        torch.testing.assert_close(module(x, boxes), expected, rtol=0, atol=0)
    assert repr(modules[0][0]) == "PSRoIAlign(output_size=2, spatial_scale=0.5, sampling_ratio=2)"
    assert repr(modules[2][0]) == ("RoIAlignRotated(output_size=2, spatial_scale=0.5, "
                                   "sampling_ratio=2, aligned=True, clockwise=False)")


def test_compile_fullgraph_forward_and_backward():
    def heads(x, rois, rotated):
        return (ct.ps_roi_align(x, rois, 2, 0.5, 2).sum()
                + ct.ps_roi_pool(x, rois, (1, 2)).square().sum()
                + ct.roi_align_rotated(x, rotated, 2, 0.5).sum()
                + ct.multiscale_roi_align([x, x[:, :, ::2, ::2]], rois, 2, [1, 0.5]).sum())

    compiled = torch.compile(heads, fullgraph=True)
    for k in (4, 2):  # a second RoI count exercises the fakes with another shape
        grads = []
        for fn in (heads, compiled):
            x = torch.tensor(FEATURES, requires_grad=True)
            fn(x, torch.tensor(ROIS[:k]), torch.tensor(ROTATED[:k])).backward()
            grads.append(x.grad)
        torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0)


def test_invalid_inputs():
    x = torch.tensor(FEATURES)
    with pytest.raises(ValueError, match="divisible by PH\\*PW"):
        ct.ps_roi_align(x, torch.tensor(ROIS), 3)
    with pytest.raises(ValueError, match=r"boxes\[0\] must have shape \(K_0, 5\)"):
        ct.roi_align_rotated(x, [torch.tensor(ROIS)[:, 1:]], 2)


PYRAMID = [RNG.standard_normal((2, 3, 16, 16)), RNG.standard_normal((2, 3, 8, 8))]
IMAGE_BOXES = np.array([[0, 1, 1, 5, 5], [1, 2, 3, 10, 12], [0, 0, 0, 63, 50], [1, 20, 8, 4, 9]],
                       float)
SCALES = [1 / 4, 1 / 8]  # 64 x 64 images


def test_fpn_cases_use_both_levels():
    assert set(reference.fpn_levels(IMAGE_BOXES, SCALES, 16)) == {0, 1}


@pytest.mark.parametrize("aligned", [False, True])
def test_multiscale_matches_reference_forward_and_backward(aligned):
    x = [torch.tensor(f, requires_grad=True) for f in PYRAMID]
    out = ct.multiscale_roi_align(x, torch.tensor(IMAGE_BOXES), (2, 3), SCALES, 2, aligned, 16)
    expected = reference.multiscale_roi_align(PYRAMID, IMAGE_BOXES, (2, 3), SCALES, 2, aligned,
                                              16)
    np.testing.assert_array_equal(out.detach().numpy(), expected)
    g = np.random.default_rng(4).standard_normal(expected.shape)
    out.backward(torch.tensor(g))
    expected_grads = reference.multiscale_roi_align_backward(
        g, IMAGE_BOXES, [f.shape for f in PYRAMID], (2, 3), SCALES, 2, aligned, 16)
    for level, expected_grad in zip(x, expected_grads):
        np.testing.assert_array_equal(level.grad.numpy(), expected_grad)


def test_multiscale_gradcheck_and_registration():
    x = [torch.tensor(f[:, :1], requires_grad=True) for f in PYRAMID]
    rois = torch.tensor(IMAGE_BOXES)
    assert torch.autograd.gradcheck(
        lambda *f: ct.multiscale_roi_align(f, rois, 2, SCALES, 2, True, 16), tuple(x))
    torch.library.opcheck(torch.ops.cyroi.multiscale_roi_align.default,
                          (x, rois, [2, 2], SCALES, 2, False, 16.0, 4.0))


def test_multiscale_module_as_torchvision():
    """Scales inferred from the largest image (64 x 64), boxes per image,
    aligned=False, the output in the order of the boxes."""
    empty = inspect.Parameter.empty
    assert described(ct.MultiScaleRoIAlign) == [
        ("featmap_names", empty), ("output_size", empty), ("sampling_ratio", empty),
        ("canonical_scale", 224), ("canonical_level", 4)]
    pooler = ct.MultiScaleRoIAlign(["p2", "p3"], 2, 2, canonical_scale=16)
    features = {"p3": torch.tensor(PYRAMID[1]), "p2": torch.tensor(PYRAMID[0]),
                "unused": torch.zeros(1)}
    boxes = [torch.tensor(IMAGE_BOXES[IMAGE_BOXES[:, 0] == i, 1:]) for i in range(2)]
    out = pooler(features, boxes, [(64, 40), (50, 64)])
    order = np.argsort(IMAGE_BOXES[:, 0], kind="stable")
    expected = reference.multiscale_roi_align(PYRAMID, IMAGE_BOXES[order], (2, 2), SCALES, 2,
                                              False, 16)
    np.testing.assert_array_equal(out.numpy(), expected)
    with pytest.raises(ValueError, match="different scales in height and width"):
        pooler(features, boxes, [(64, 128)])
