"""Forward visits RoIs in an order of its own (each image's RoIs along a
Z-order curve of their centres, cpu_common.h ImageGroups::by_position), so a
RoI's results must depend on its box alone: the same RoIs in any order give
the same bits, permuted; nothing of one RoI (sums, winners, staged results)
may leak into the next one visited."""
import numpy as np
import pytest

import cyroi
from test_streamed_results import call, expected, nchw

SIZE = (3, 4)


def problem(channels, rois, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, channels, 20, 26)).astype(np.float32)
    boxes = rng.uniform(-6, 60, (rois, 4))
    r = np.column_stack([rng.integers(0, 3, rois), np.minimum(boxes[:, :2], boxes[:, 2:]),
                         np.maximum(boxes[:, :2], boxes[:, 2:])]).astype(np.float32)
    r[::9, 0] = 3  # no such image: reads 0
    return x, r


def forward(op, x, rois, layout):
    """(output, argmax or None), both (K, C, PH, PW)."""
    results = call(op, x, rois, SIZE, layout, validate=False)
    results = results if isinstance(results, tuple) else (results, None)
    return tuple(None if a is None else nchw(a, layout) for a in results)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("op", ["align", "align_max", "pool"])
@pytest.mark.parametrize("channels", [3, 40])
def test_any_roi_order_gives_the_same_bits(op, layout, channels, threads):
    x, rois = problem(channels, 80, seed=channels)
    permutation = np.random.default_rng(1).permutation(len(rois))
    cyroi.set_num_threads(threads)
    try:
        out, argmax = forward(op, x, rois, layout)
        shuffled_out, shuffled_argmax = forward(op, x, rois[permutation], layout)
    finally:
        cyroi.set_num_threads(None)
    np.testing.assert_array_equal(shuffled_out, out[permutation])
    if argmax is not None:
        np.testing.assert_array_equal(shuffled_argmax, argmax[permutation])
    # and the unshuffled call is the reference's on a few RoIs, 0 on those of
    # no image
    assert not out[::9].any()
    checked = [1, 10, 31, 79]
    np.testing.assert_allclose(out[checked], expected(op, x, rois[checked], SIZE)[0],
                               rtol=1e-5, atol=1e-5)
