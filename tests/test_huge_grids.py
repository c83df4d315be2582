"""Sample grids with more than 2^24 samples per side (boxes tens of millions
of pixels long under adaptive sampling): past 2^24 a float can no longer
count samples one by one, so sample positions must be formed in the compute
dtype, as the SPEC's (iy + .5) * bh / gh says."""
import numpy as np
import pytest

import cyroi
import reference


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["avg", "max"])
def test_tall_box_matches_reference(dtype, mode):
    features = np.random.default_rng(0).standard_normal((1, 1, 6, 6)).astype(dtype)
    # 2^25 px tall, ending on the map: the samples that land on it have
    # indices near 2^25, where float32 spacing is 4.
    rois = np.array([[0, 0.3, -2.0**25 - 3.3, 4.2, 5.1]], dtype)
    result = cyroi.roi_align(features, rois, 1, 1.0, -1, False, mode,
                             return_argmax=mode == "max")
    out, argmax = result if mode == "max" else (result, None)
    want, want_argmax = reference.roi_align(features, rois, (1, 1), 1.0, -1, False, mode,
                                            dtype=dtype)
    np.testing.assert_allclose(out, want, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=0)
    if mode == "max":
        np.testing.assert_array_equal(argmax, want_argmax)
