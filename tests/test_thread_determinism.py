"""CPU results, forward and backward, are the same bits for 1, 2 and 4 threads."""
import numpy as np
import pytest

import cyroi
from strategies import assert_same_bits_for_1_2_4_threads, thread_workload


def run_all(f, rois, layout):
    results = []
    for mode in ("avg", "max"):
        out, argmax = (cyroi.roi_align(f, rois, (5, 4), 0.1, -1, True, mode, layout=layout,
                                       return_argmax=True) if mode == "max"
                       else (cyroi.roi_align(f, rois, (5, 4), 0.1, -1, True, layout=layout),
                             None))
        grad = cyroi.roi_align_backward(np.ones_like(out) * 0.37, rois, f.shape, 0.1, -1, True,
                                        mode, argmax=argmax, layout=layout)
        results += [out, grad]
    out, argmax = cyroi.roi_pool(f, rois, 3, 0.1, layout=layout, return_argmax=True)
    results += [out, argmax, cyroi.roi_pool_backward(out, rois, argmax, f.shape, layout=layout)]
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_bitwise_identical_for_1_2_4_threads(dtype, layout, restore_threads):
    assert_same_bits_for_1_2_4_threads(run_all, thread_workload(dtype, 37, 60), layout)
