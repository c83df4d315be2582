"""Runs one case and judges it: a result equal to tests/reference.py where
the oracle answers, safe (finite, in range, zero where the RoI is invalid)
everywhere, or TypeError / ValueError naming the broken argument. Anything
else — a wrong value, an invalid input accepted, a valid one rejected, any
other exception — is an AssertionError; a crash kills the process, which is
why the fuzz tests run cases in a subprocess."""
import numpy as np

from . import oracle
from .case import build, from_layout
from .memory import as_numpy


def _gradients(result):
    """A backward's result: grad_features (a list for a pyramid), and
    grad_rois where it gives the gradient for box coordinates too."""
    if isinstance(result, tuple):
        return {"grad": result[0], "rois_grad": result[1]}
    return {"grad": result}


def call(case):
    """Calls the entry point; returns its results (see _gradients) and layout."""
    entry, args, layout = case.entry, case.args, case.args["layout"]
    common = {"layout": layout, "batch_indices": args["batch_indices"], **entry.fixed_kwargs}
    if entry.takes_validate:
        common["validate"] = args["validate"]
    family = entry.family
    if entry.kind == "forward":
        want_argmax = family.has_argmax(case.params)
        if want_argmax:
            common["return_argmax"] = True
        # spatial_scale by position: multiscale_roi_align calls it spatial_scales.
        result = entry.function(args["features"], args["rois"], args["output_size"],
                                args["spatial_scale"], **case.params, **common)
        out, argmax = result if want_argmax else (result, None)
        return {"out": out, "argmax": argmax}, layout
    if entry.kind == "backward":
        kwargs = family.backward_kwargs(args["spatial_scale"], case.params)
        if "argmax" in args:
            kwargs["argmax"] = args["argmax"]
        if family.input_shape_keyword:
            kwargs[family.input_shape_keyword] = args["input_shape"]
        if entry.reads_features:
            kwargs["features"] = args["features"]
        result = entry.function(args["grad_output"], args["rois"], **kwargs, **common)
        return _gradients(result), layout
    op = entry.function(args["output_size"], args["spatial_scale"], **case.params)
    out = op.forward(args["features"], args["rois"], layout=layout,
                     batch_indices=args["batch_indices"])
    return {"out": out, **_gradients(op.backward(args.get("grad_output")))}, layout


def _expects_rejection(case):
    """Names one of which the call's error must mention, or () for a valid
    call: the broken argument's, and the RoIs' when validate=True meets bad
    RoI values (either check may fire first)."""
    return case.broken + _bad_rois(case)


def _bad_rois(case):
    if not case.args.get("validate", True) or len(case.table) == 0:
        return ()
    index_ok = oracle.index_status(case) == "ok"
    with np.errstate(all="ignore"):
        boxes_ok = np.isfinite(case.table[:, 1:].astype(case.T)).all()
    list_ok = not isinstance(case.args["rois"], list) or \
        len(case.args["rois"]) <= case.values.shape[0]
    return () if index_ok.all() and boxes_ok and list_ok else ("rois", "batch")


def check(case):
    """Judges one case; returns "rejected", "compared" or "safe"."""
    names = _expects_rejection(case)
    try:
        arrays, layout = call(case)
    except (TypeError, ValueError) as error:
        assert names, f"valid input rejected: {type(error).__name__}: {error}"
        assert any(name in str(error) for name in names), \
            f"message names none of {names}: {type(error).__name__}: {error}"
        return "rejected"
    assert not names, f"invalid input accepted (expected an error naming {names})"
    rois_grad = arrays.pop("rois_grad", None)
    arrays = {k: None if v is None else _nchw(v, layout) for k, v in arrays.items()}
    status = oracle.row_status(case)
    compared = False
    if "out" in arrays:
        compared |= _check_forward(case, arrays["out"], arrays.get("argmax"), status)
    if "grad" in arrays:
        grads = arrays["grad"] if isinstance(arrays["grad"], list) else [arrays["grad"]]
        rois_table = None if rois_grad is None else _rois_grad_table(case, rois_grad)
        compared |= _check_backward(case, grads, rois_table, status)
    return "compared" if compared else "safe"


def _nchw(result, layout):
    if isinstance(result, list):
        return [from_layout(as_numpy(v), layout) for v in result]
    return from_layout(as_numpy(result), layout)


def _rois_grad_table(case, result):
    """grad_rois, which comes in the form of the rois, as (K, box columns)
    in the order of case.table; a (K, 1 + box columns) table's batch-index
    column must be 0."""
    columns = case.entry.family.box_columns
    if isinstance(case.args["rois"], list):
        assert isinstance(result, list) and len(result) == len(case.args["rois"]), \
            "grad_rois not a list like rois"
        # The empty float16 part keeps the parts' dtype (and makes [] a table).
        table = np.concatenate([np.zeros((0, columns), np.float16)] +
                               [as_numpy(v).reshape(-1, columns) for v in result])
    else:
        table = as_numpy(result)
        if case.args["batch_indices"] is None:
            assert table.shape[1:] == (1 + columns,), f"grad_rois shape {table.shape}"
            assert not table[:, 0].any(), "grad_rois has a non-zero batch-index column"
            table = table[:, 1:]
    assert table.shape == (len(case.table), columns), f"grad_rois shape {table.shape}"
    return table


def _tolerance(case, dtype):
    """Both sides do the SPEC's operations in the same order and precision,
    so they agree to rounding: a few ulps of the compute dtype, or of the
    output dtype when that is narrower (float16); the family's own tolerance
    where it computes otherwise."""
    eps = max(np.finfo(case.T).eps, np.finfo(np.dtype(dtype).newbyteorder("=")).eps
              if np.dtype(dtype).itemsize < np.dtype(case.T).itemsize else 0.0)
    own = case.entry.family.tolerance
    return max(4 * float(eps), own(case.T) if own else 0.0)


def _check_forward(case, out, argmax, status):
    family, values = case.entry.family, case.values
    K, C = len(case.table), case.recipe.shape[1]
    assert out.shape == (K, C, *case.size), f"out shape {out.shape}"
    features = case.args["features"]
    first = features[0] if isinstance(features, list) else features
    assert not isinstance(first, np.ndarray) or out.dtype == first.dtype, \
        f"out dtype {out.dtype}"
    result = out.astype(np.float64)
    finite_values = np.isfinite(values).all()
    bound = float(np.abs(values[np.isfinite(values)].astype(np.float64)).max(initial=0.0))
    if finite_values:
        assert np.isfinite(result).all(), "non-finite output from finite features"
        assert (np.abs(result) <= bound * (1 + 1e-3)).all(), \
            f"output {np.abs(result).max()} beyond max |features| {bound}"
    if argmax is not None:
        limit = family.argmax_limit(values.shape, case.params)
        assert argmax.dtype == family.argmax_dtype(values.shape, case.params), \
            f"argmax dtype {argmax.dtype}"
        assert ((argmax >= -1) & (argmax < limit)).all(), \
            f"argmax out of [-1, {limit}): {argmax.min()}..{argmax.max()}"
    zero = status == "zero"
    assert (result[zero] == 0).all(), "RoI with an invalid batch index gave non-zero output"
    if argmax is not None:
        assert (argmax[zero] == -1).all(), "RoI with an invalid batch index gave an argmax"
    rows = status == "compare"
    if not rows.any():
        return False
    want, want_argmax = oracle.forward(case, rows)
    want = want.astype(case.T).astype(out.dtype).astype(np.float64)
    tol = _tolerance(case, out.dtype)
    np.testing.assert_allclose(result[rows], want, rtol=tol, atol=tol * max(bound, 1.0),
                               equal_nan=True, err_msg="forward differs from the oracle")
    if argmax is not None and want_argmax is not None:
        np.testing.assert_array_equal(argmax[rows], want_argmax,
                                      err_msg="argmax differs from the oracle")
    return True


def _check_backward(case, grads, rois_grad, status):
    features = case.features if isinstance(case.features, list) else [case.features]
    assert [g.shape for g in grads] == [f.shape for f in features], \
        f"grad shapes {[g.shape for g in grads]}"
    results = [g.astype(np.float64) for g in grads]
    assert all(np.isfinite(r).all() for r in results), \
        "non-finite gradient from a finite grad_output"
    # Every output element sends its gradient to samples whose weights sum
    # to at most 1, so no gradient can outweigh grad_output.
    reads = status != "zero"
    g = np.abs(case.grad_values[reads].astype(np.float64)).sum()
    assert sum(np.abs(r).sum() for r in results) <= g * (1 + 1e-3) + 1e-6, \
        "gradient outweighs grad_output"
    if rois_grad is not None:
        assert (rois_grad[status == "zero"] == 0).all(), \
            "RoI with an invalid batch index got a box gradient"
    trusted_argmax = case.argmax_values is None or case.entry.kind == "object" or \
        case.recipe.argmax == "oracle"
    rows = status == "compare"
    compared = rois_grad is not None and rows.any() and \
        _check_rois_grad(case, rois_grad[rows], rows)
    if not ((status != "safe").all() and trusted_argmax):
        return compared
    want = oracle.backward(case, rows) if rows.any() else [np.zeros(f.shape) for f in features]
    wants = want if isinstance(want, list) else [want]
    tol = _tolerance(case, grads[0].dtype)
    scale = max(float(np.abs(case.grad_values.astype(np.float64)).max(initial=0)), 1.0)
    for result, want in zip(results, wants):
        want = want.astype(case.T).astype(grads[0].dtype).astype(np.float64)
        np.testing.assert_allclose(result, want, rtol=tol,
                                   atol=tol * scale * max(len(rows), 1),
                                   err_msg="gradient differs from the oracle")
    return True


def _check_rois_grad(case, result, rows):
    """The box gradient of the rows the oracle answers: finite from finite
    inputs, and equal to the oracle's where it has an answer. Returns
    whether it compared any."""
    dtype, result = result.dtype, result.astype(np.float64)
    if np.isfinite(case.values).all():
        assert np.isfinite(result).all(), "non-finite box gradient from finite inputs"
    values = case.values.astype(case.T)
    if values.size == 0:  # no channels: nothing to differentiate
        assert not result.any(), "box gradient without features"
        return False
    want = oracle.rois_grad(case, rows)
    if want is None or np.isnan(want).all():
        return False
    # A result narrower than the compute dtype (float16) is rounded to it.
    rounding = 2 * float(np.finfo(dtype).eps) * np.abs(want) \
        if dtype.itemsize < np.dtype(case.T).itemsize else 0.0
    assert case.entry.family.rois_grad_agrees(result, want, rounding, values,
                                              case.table[rows], case.size, case.scale), \
        f"box gradient differs from the oracle: {result} vs {want}"
    return True


def check_recipe(recipe):
    return check(build(recipe))
