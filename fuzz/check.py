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


def call(case):
    """Calls the entry point; returns its arrays as NumPy, NCHW ordered."""
    entry, args, layout = case.entry, case.args, case.args["layout"]
    common = {"layout": layout, "batch_indices": args["batch_indices"]}
    if entry.takes_validate:
        common["validate"] = args["validate"]
    family = entry.family
    if entry.kind == "forward":
        want_argmax = family.has_argmax(case.params)
        result = entry.function(args["features"], args["rois"], args["output_size"],
                                spatial_scale=args["spatial_scale"], **case.params,
                                return_argmax=want_argmax, **common)
        out, argmax = result if want_argmax else (result, None)
        return {"out": out, "argmax": argmax}, layout
    if entry.kind == "backward":
        kwargs = family.backward_kwargs(args["spatial_scale"], case.params)
        if "argmax" in args:
            kwargs["argmax"] = args["argmax"]
        grad = entry.function(args["grad_output"], args["rois"],
                              input_shape=args["input_shape"], **kwargs, **common)
        return {"grad": grad}, layout
    op = entry.function(args["output_size"], args["spatial_scale"], **case.params)
    out = op.forward(args["features"], args["rois"], layout=layout,
                     batch_indices=args["batch_indices"])
    return {"out": out, "grad": op.backward(args.get("grad_output"))}, layout


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
    arrays = {k: None if v is None else from_layout(as_numpy(v), layout)
              for k, v in arrays.items()}
    status = oracle.row_status(case)
    compared = False
    if "out" in arrays:
        compared |= _check_forward(case, arrays["out"], arrays.get("argmax"), status)
    if "grad" in arrays:
        compared |= _check_backward(case, arrays["grad"], status)
    return "compared" if compared else "safe"


def _tolerance(case, dtype):
    """Both sides do the SPEC's operations in the same order and precision,
    so they agree to rounding: a few ulps of the compute dtype, or of the
    output dtype when that is narrower (float16)."""
    eps = max(np.finfo(case.T).eps, np.finfo(np.dtype(dtype).newbyteorder("=")).eps
              if np.dtype(dtype).itemsize < np.dtype(case.T).itemsize else 0.0)
    return 4 * float(eps)


def _check_forward(case, out, argmax, status):
    family, values = case.entry.family, case.values
    K, C = len(case.table), values.shape[1]
    assert out.shape == (K, C, *case.size), f"out shape {out.shape}"
    assert out.dtype == case.args["features"].dtype or not isinstance(
        case.args["features"], np.ndarray), f"out dtype {out.dtype}"
    result = out.astype(np.float64)
    finite_values = np.isfinite(values).all()
    bound = float(np.abs(values[np.isfinite(values)].astype(np.float64)).max(initial=0.0))
    if finite_values:
        assert np.isfinite(result).all(), "non-finite output from finite features"
        assert (np.abs(result) <= bound * (1 + 1e-3)).all(), \
            f"output {np.abs(result).max()} beyond max |features| {bound}"
    if argmax is not None:
        limit = family.argmax_limit(values.shape, case.params)
        assert argmax.dtype == np.int64 and ((argmax >= -1) & (argmax < limit)).all(), \
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


def _check_backward(case, grad, status):
    N, C, H, W = case.values.shape
    assert grad.shape == (N, C, H, W), f"grad shape {grad.shape}"
    result = grad.astype(np.float64)
    assert np.isfinite(result).all(), "non-finite gradient from a finite grad_output"
    # Every output element sends its gradient to samples whose weights sum
    # to at most 1, so no gradient can outweigh grad_output.
    reads = status != "zero"
    g = np.abs(case.grad_values[reads].astype(np.float64)).sum()
    assert np.abs(result).sum() <= g * (1 + 1e-3) + 1e-6, "gradient outweighs grad_output"
    trusted_argmax = case.argmax_values is None or case.entry.kind == "object" or \
        case.recipe.argmax == "oracle"
    comparable = (status != "safe").all() and trusted_argmax
    if not comparable:
        return False
    rows = status == "compare"
    want = oracle.backward(case, rows) if rows.any() else np.zeros(result.shape)
    want = want.astype(case.T).astype(grad.dtype).astype(np.float64)
    tol = _tolerance(case, grad.dtype)
    scale = max(float(np.abs(case.grad_values.astype(np.float64)).max(initial=0)), 1.0)
    np.testing.assert_allclose(result, want, rtol=tol, atol=tol * scale * max(len(rows), 1),
                               err_msg="gradient differs from the oracle")
    return True


def check_recipe(recipe):
    return check(build(recipe))
