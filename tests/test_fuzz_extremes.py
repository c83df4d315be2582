"""Hand-picked extremes the random fuzzing reaches rarely or not at all:
parameters at and past the limits of float and int64, and allocation
failure. Each is judged like a fuzz case (fuzz.check)."""
import os
import subprocess
import sys
import textwrap

import pytest

import fuzz  # noqa: F401  (puts this tree's cyroi and the oracle on the path)
from fuzz.broken import BROKEN_VALUES
from fuzz.case import Recipe
from fuzz.check import check_recipe
from fuzz.table import CORE_ENTRY_POINTS as ENTRY_POINTS
from fuzz.table import ENTRY_POINTS as ALL_ENTRY_POINTS

TAKES_SCALE = [e.name for e in ENTRY_POINTS if e.kind != "backward" or e.name ==
               "roi_align_backward"]
ALIGN_ENTRIES = [e.name for e in ENTRY_POINTS if e.family.name == "roi_align"]


@pytest.mark.parametrize("entry", [e.name for e in ALL_ENTRY_POINTS])
@pytest.mark.parametrize("layout", BROKEN_VALUES["layout"])
def test_unknown_layout_is_rejected_by_every_entry_point(entry, layout):
    """Backward ops once took any layout but "NCHW" for "NHWC"."""
    assert check_recipe(Recipe(entry, broken=(("layout", layout),))) == "rejected"


# Every backward row but precise_roi_pool_backward, which takes the
# forward's features instead of an input_shape.
@pytest.mark.parametrize("entry", [e.name for e in ALL_ENTRY_POINTS if e.kind == "backward"
                                   and e.name != "precise_roi_pool_backward"])
@pytest.mark.parametrize("shape", BROKEN_VALUES["input_shape"])
def test_backward_rejects_a_bad_input_shape(entry, shape):
    """input_shape=None once fell back to grad_output's own shape."""
    assert check_recipe(Recipe(entry, broken=(("input_shape", shape),))) == "rejected"


@pytest.mark.parametrize("entry", TAKES_SCALE)
def test_spatial_scale_past_float_range_is_rejected(entry):
    assert check_recipe(Recipe(entry, broken=(("spatial_scale", 10**400),))) == "rejected"


# A box 2^33 px wide: whatever the sampling ratio, samples are >= 4 px apart,
# so only a few land on the map and the oracle can answer.
WIDE = ((0, -2.0**32, -2.0**32, 2.0**32, 2.0**32), (1, -2.0**33, -2.0**32, 2.0**32, 2.0**33))


@pytest.mark.parametrize("entry", ALIGN_ENTRIES)
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("ratio", [2**31 - 1, 2**31, 2**40, 2**63, 2**70])
def test_sampling_ratio_saturates_like_the_adaptive_grid(entry, mode, ratio):
    """Past 2^31 - 1 samples per side the grid saturates (roi_math.h
    kMaxGrid; the oracle does the same): no int64 overflow of the sample
    index iy * gw + ix, no OverflowError from a ratio past int64."""
    params = (("aligned", False), ("mode", mode), ("sampling_ratio", ratio))
    # float64: in float32 the sample index itself rounds (to multiples of 128
    # near 2^30), so hundreds of samples share each position on the map:
    # more work than the oracle's budget (fuzz/table.py).
    recipe = Recipe(entry, dtype="float64", boxes=WIDE, params=params, output_size=2)
    assert check_recipe(recipe) == "compared"


ALLOCATION_FAILURE = """
import resource
import numpy as np
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
import cyroi
RATIO = 2**31 - 1
f = np.zeros((1, 4, 6, 6), np.float32)
rois = np.array([[0, 0.5, 0.5, 4.5, 4.5]], np.float32)
rotated = np.array([[0, 2.5, 2.5, 4.0, 4.0, 30.0]], np.float32)
g1, g2 = np.ones((1, 4, 1, 1), np.float32), np.ones((1, 1, 2, 2), np.float32)
calls = [
    lambda: cyroi.roi_align(f, rois, 1, 1.0, RATIO),
    lambda: cyroi.roi_align_backward(g1, rois, f.shape, 1.0, RATIO),
    lambda: cyroi.roi_align_backward(g1, rois, f.shape, 1.0, RATIO, need_rois_grad=True,
                                     features=f),
    lambda: cyroi.ps_roi_align(f, rois, 2, 1.0, RATIO),
    lambda: cyroi.ps_roi_align_backward(g2, rois, f.shape, 1.0, RATIO),
    lambda: cyroi.roi_align_rotated(f, rotated, 1, 1.0, RATIO),
    lambda: cyroi.roi_align_rotated_backward(g1, rotated, f.shape, 1.0, RATIO),
    lambda: cyroi.multiscale_roi_align([f], rois, 1, [1.0], RATIO),
]
for call in calls:
    try:
        call()
    except MemoryError:
        print("MemoryError")
"""


@pytest.mark.skipif(bool(os.environ.get("CYROI_SANITIZED")),
                    reason="ASan maps terabytes of shadow memory: no address-space limit applies")
def test_allocation_failure_is_a_memory_error_not_an_abort():
    """sampling_ratio 2^31 - 1 on a box inside the map puts 2^31 samples per
    side on it; their table cannot be allocated (here under a 2 GiB
    address-space limit). That must raise MemoryError in Python, not escape
    the OpenMP loop as a C++ exception (std::terminate, abort). Every op
    with a sampling ratio."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(ALLOCATION_FAILURE)],
                            cwd=fuzz.ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["MemoryError"] * 8


@pytest.mark.parametrize("entry", [e.name for e in ENTRY_POINTS if e.family.name == "roi_pool"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_roi_pool_box_spanning_past_the_rounding_limit(entry, dtype):
    """Scaled corners of +-1e30 round to +-2^40 (roi_math.h kMaxCoord); the
    bins of such a box start before the map and end past it, so they cover
    it. The bin offsets (up to 2^41) once saturated at 2^40 too, which
    emptied every bin."""
    boxes = ((0, 0.0, -1.0, 0.0, 1.0), (0, -1.0, -1.0, 1.0, 1.0), (1, -1.0, 0.5, 0.25, 2.0))
    for size in (1, (2, 3)):
        recipe = Recipe(entry, dtype=dtype, shape=(2, 2, 5, 4), boxes=boxes,
                        output_size=size, spatial_scale=1e30)
        assert check_recipe(recipe) == "compared"


@pytest.mark.parametrize("entry", [e.name for e in ENTRY_POINTS if e.takes_validate])
def test_no_images_with_validate_off_gives_zeros(entry):
    """N = 0 images and RoIs pointing at them under validate=False: every
    RoI has an invalid batch index, so every output is 0 (fuzz.check
    asserts it). The loops once asked an empty view for its first element
    (IndexError)."""
    recipe = Recipe(entry, shape=(0, 3, 5, 6), validate=False,
                    boxes=((0, 1.0, 1.0, 3.0, 4.0), (2, 0.0, 0.0, 5.0, 5.0)))
    assert check_recipe(recipe) != "rejected"
