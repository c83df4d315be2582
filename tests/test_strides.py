"""Non-contiguous, negatively strided, read-only, misaligned, broadcast,
byte-swapped and torch-strided inputs give exactly the oracle's results (the
contiguous input's), for every entry point and both layouts: copied or read
through strides, never misread. mmcv returned wrong results for
non-contiguous input."""
import numpy as np
import pytest

import fuzz  # noqa: F401  (puts this tree's cyroi and the oracle on the path)
from fuzz.case import Recipe
from fuzz.check import check_recipe
from fuzz.memory import arrangements_for
from fuzz.table import ENTRY_POINTS

ENTRIES = [e.name for e in ENTRY_POINTS]
ALIGN_PARAMS = [(("aligned", a), ("mode", m), ("sampling_ratio", r))
                for a, m, r in [(False, "avg", 2), (True, "max", -1)]]


def params_of(entry):
    return ALIGN_PARAMS if "lign" in entry else [()]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("arrangement", arrangements_for("float32"))
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_features_and_grad_output(entry, arrangement, layout, dtype):
    for params in params_of(entry):
        recipe = Recipe(entry, dtype=dtype, layout=layout, arrangement=arrangement,
                        grad_arrangement=arrangement, params=params)
        assert check_recipe(recipe) == "compared"


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("arrangement", arrangements_for("float64", per_roi=True))
@pytest.mark.parametrize("form", ["table", "list", "indices"])
def test_rois_and_batch_indices(entry, arrangement, form):
    for params in params_of(entry):
        for rois_dtype in ("float64", "float32", "float16", "int32"):
            recipe = Recipe(entry, rois_arrangement=arrangement, rois_form=form,
                            rois_dtype=rois_dtype, params=params,
                            boxes=((0, 0, 1, 6, 5), (1, 2, 0, 7, 6), (0, 5, 4, 1, 2)))
            assert check_recipe(recipe) == "compared"


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("dtype", ["float16", "longdouble", ">f8", "<f8", ">f4"])
def test_other_float_dtypes_compute_at_their_width(entry, dtype):
    """float16 in float32 (the SPEC); byte-swapped and wider floats in their
    own width, never silently in float32."""
    for params in params_of(entry):
        assert check_recipe(Recipe(entry, dtype=dtype, params=params)) == "compared"


def test_compiled_loops_only_get_aligned_arrays(monkeypatch):
    """Misaligned views (np.frombuffer at an odd offset) are copied before
    the loops load from them: a misaligned load is undefined behaviour in C
    (UBSan flags it; vectorised code may fault)."""
    from cyroi import _cpu
    seen = []
    for name in ("roi_align_forward", "roi_align_backward", "roi_pool_forward",
                 "roi_pool_backward"):
        loop = getattr(_cpu._cpu_ext, name)

        def spy(*args, _loop=loop, _name=name):
            arrays = [a for a in args if isinstance(a, np.ndarray)]
            seen.append((_name, all(a.flags.aligned for a in arrays)))
            return _loop(*args)
        monkeypatch.setattr(_cpu._cpu_ext, name, spy)
    for entry in ENTRIES:
        for params in params_of(entry):
            recipe = Recipe(entry, arrangement="misaligned", grad_arrangement="misaligned",
                            rois_arrangement="misaligned", params=params)
            assert check_recipe(recipe) == "compared"
    assert {name for name, _ in seen} == {"roi_align_forward", "roi_align_backward",
                                          "roi_pool_forward", "roi_pool_backward"}
    assert all(aligned for _, aligned in seen), [name for name, ok in seen if not ok]

