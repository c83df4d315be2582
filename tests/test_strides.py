"""Non-contiguous, negatively strided, read-only, misaligned, broadcast,
byte-swapped and torch-strided inputs give exactly the oracle's results (the
contiguous input's), for every entry point and both layouts: copied or read
through strides, never misread. mmcv returned wrong results for
non-contiguous input."""
import numpy as np
import pytest

import fuzz  # noqa: F401  (puts this tree's cyroi and the oracle on the path)
import cyroi
from fuzz.case import Recipe
from fuzz.check import check_recipe
from fuzz.memory import arrange, arrangements_for
from fuzz.table import CORE_ENTRY_POINTS as ENTRY_POINTS

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



def misaligned(array):
    return arrange(np.asarray(array), "misaligned")


def family_calls():
    """Every other op, given misaligned features, RoIs and gradients (these
    are not in fuzz/table.py yet)."""
    rng = np.random.default_rng(3)
    f = misaligned(rng.standard_normal((2, 8, 7, 6)).astype(np.float32))
    rois = misaligned(np.array([[0, 0.5, 1.0, 5.0, 6.0], [1, 1.0, 0.0, 4.0, 3.0]]))
    rotated = misaligned(np.array([[0, 3.0, 3.0, 4.0, 2.0, 30.0], [1, 2.0, 4.0, 3.0, 3.0, -60.0]]))
    g = misaligned(np.ones((2, 8, 2, 2), np.float32))
    g_ps = misaligned(np.ones((2, 2, 2, 2), np.float32))
    # float64 features: boxes already float64 and contiguous are not converted.
    f64 = misaligned(np.asarray(f, np.float64))
    boxes, index = misaligned(np.asarray(rois)[:, 1:]), misaligned(np.array([0, 1]))
    return [
        lambda: cyroi.ps_roi_align(f64, boxes, 2, 1.0, 2, batch_indices=index),
        lambda: cyroi.roi_align_rotated(f64, misaligned(np.asarray(rotated)[:, 1:]), 2, 1.0, 2,
                                        batch_indices=index),
        lambda: cyroi.precise_roi_pool(f64, boxes, 2, batch_indices=index),
        lambda: cyroi.roi_align_backward(g, rois, f.shape, 1.0, 2, need_rois_grad=True,
                                         features=f),
        lambda: cyroi.ps_roi_align(f, rois, 2, 1.0, 2),
        lambda: cyroi.ps_roi_align_backward(g_ps, rois, f.shape, 1.0, 2),
        lambda: cyroi.ps_roi_pool(f, rois, 2),
        lambda: cyroi.ps_roi_pool_backward(g_ps, rois, f.shape),
        lambda: cyroi.roi_align_rotated(f, rotated, 2, 1.0, 2),
        lambda: cyroi.roi_align_rotated_backward(g, rotated, f.shape, 1.0, 2,
                                                 need_rois_grad=True, features=f),
        lambda: cyroi.precise_roi_pool(f, rois, 2),
        lambda: cyroi.precise_roi_pool_backward(g, rois, f),
        lambda: cyroi.multiscale_roi_align([f], rois, 2, [1.0]),
        lambda: cyroi.multiscale_roi_align_backward(g, rois, [f.shape], [1.0]),
    ]


def test_family_loops_only_get_aligned_arrays(monkeypatch):
    from cyroi import _cpu
    unaligned = []
    for module in (_cpu._cpu_ext, _cpu._cpu_family):
        for name in dir(module):
            loop = getattr(module, name)
            if name.startswith("_") or not callable(loop):
                continue

            def spy(*args, _loop=loop, _name=name):
                arrays = [a for a in args if isinstance(a, np.ndarray)]
                arrays += [a for x in args if isinstance(x, (list, tuple)) for a in x
                           if isinstance(a, np.ndarray)]
                if not all(a.flags.aligned for a in arrays):
                    unaligned.append(_name)
                return _loop(*args)
            monkeypatch.setattr(module, name, spy)
    for call in family_calls():
        call()
    assert not unaligned, sorted(set(unaligned))
