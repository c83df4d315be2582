"""Non-contiguous, negatively strided, read-only, misaligned, broadcast,
byte-swapped and torch-strided inputs give exactly the oracle's results (the
contiguous input's), for every entry point and both layouts: copied or read
through strides, never misread. mmcv returned wrong results for
non-contiguous input."""
import numpy as np
import pytest

import fuzz  # noqa: F401  (puts this tree's cyroi and the oracle on the path)
import cyroi
from fuzz.case import robustness_recipes
from fuzz.check import check_recipe
from fuzz.memory import arrangements_for
from fuzz.table import ENTRY_POINTS

ENTRIES = {e.name: e for e in ENTRY_POINTS}


@pytest.fixture(autouse=True)
def one_thread():
    """Arrangements are dealt with before the loops run, and the loops give
    the same bits for any thread count (test_*determinism.py). The family's
    loops wake an OpenMP team even for these tiny calls, which costs ~10 ms
    a call when the other core is busy: ~1,500 tests' worth of it."""
    cyroi.set_num_threads(1)
    yield
    cyroi.set_num_threads(None)


def check_all(entry, **fields):
    """Each of the entry point's parameter sets with `fields` equals the oracle."""
    for recipe in robustness_recipes(ENTRIES[entry], **fields):
        assert check_recipe(recipe) == "compared", recipe


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("arrangement", arrangements_for("float32"))
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_features_and_grad_output(entry, arrangement, layout, dtype):
    check_all(entry, dtype=dtype, layout=layout, arrangement=arrangement,
              grad_arrangement=arrangement)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("arrangement", arrangements_for("float64", per_roi=True))
@pytest.mark.parametrize("form", ["table", "list", "indices"])
def test_rois_and_batch_indices(entry, arrangement, form):
    for rois_dtype in ("float64", "float32", "float16", "int32"):
        check_all(entry, corner_boxes=((0, 0, 1, 6, 5), (1, 2, 0, 7, 6), (0, 5, 4, 1, 2)),
                  rois_arrangement=arrangement, rois_form=form, rois_dtype=rois_dtype)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("dtype", ["float16", "longdouble", ">f8", "<f8", ">f4"])
def test_other_float_dtypes_compute_at_their_width(entry, dtype):
    """float16 in float32 (the SPEC); byte-swapped and wider floats in their
    own width, never silently in float32."""
    check_all(entry, dtype=dtype)


def test_compiled_loops_only_get_aligned_arrays(monkeypatch):
    """Misaligned views (np.frombuffer at an odd offset) are copied before
    the loops load from them: a misaligned load is undefined behaviour in C
    (UBSan flags it; vectorised code may fault). float64 features meet
    float64 boxes, which need no conversion (so no copy) otherwise; RoIs
    come as a table and as boxes with batch indices."""
    from cyroi import _cpu
    loops, seen = set(), []
    for module in (_cpu._cpu_ext, _cpu._cpu_family):
        for name in dir(module):
            loop = getattr(module, name)
            if name.startswith("_") or name in ("max_threads", "simd_bytes") or not callable(loop):
                continue

            def spy(*args, _loop=loop, _name=name):
                arrays = [a for x in args for a in (x if isinstance(x, (list, tuple)) else [x])
                          if isinstance(a, np.ndarray)]
                seen.append((_name, all(a.flags.aligned for a in arrays)))
                return _loop(*args)
            monkeypatch.setattr(module, name, spy)
            loops.add(name)
    for entry in ENTRIES:
        for dtype in ("float32", "float64"):
            for form in ("table", "indices"):
                check_all(entry, dtype=dtype, rois_form=form, arrangement="misaligned",
                          grad_arrangement="misaligned", rois_arrangement="misaligned")
    assert {name for name, _ in seen} == loops  # every loop was watched
    assert all(aligned for _, aligned in seen), sorted({name for name, ok in seen if not ok})
