"""Slow, plain-loop NumPy oracle for cyroi, written from SPEC.md alone.

Conventions shared by every function:
- features (N, C, H, W) (NCHW only); rois (K, 5) [batch_index, x1, y1, x2, y2],
  or (K, 6) [batch_index, cx, cy, w, h, angle_degrees] for roi_align_rotated;
  output_size (PH, PW); backward functions return grad_features (N, C, H, W).
- dtype is the precision of the geometry (scaled box, bin sizes, sample
  coordinates, bilinear weights) and of the accumulation, done with NumPy
  scalars in the SPEC's order of operations, so that dtype=np.float32
  reproduces the float32 rounding of a C implementation of the SPEC formulas.
  Feature values are read in dtype as well.  Results are float64.
- A sample whose coordinate is outside [-1, H] x [-1, W] (or NaN, from a box
  that overflowed the dtype) contributes 0.  Such samples are skipped
  without being visited (in-map rows and columns are found by bisection on
  the monotone rounded coordinates), so enormous boxes finish; the result is
  exactly that of the full sample loop.
- max(rw, 1) and other clamps of a float use fmax/fmin semantics (NaN gives
  the other operand).
"""
import functools
import math
from fractions import Fraction

import numpy as np

_INT_MAX = 2**31 - 1
_ROUND_LIMIT = 2**40


def _quiet(fn):
    """Run fn with floating-point warnings silenced (overflow is part of the contract)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    return wrapper


def _scalar_type(dtype):
    return np.dtype(dtype).type


# ---------------------------------------------------------------------------
# Bilinear sampling (SPEC "Bilinear sample")
# ---------------------------------------------------------------------------

def _axis_taps(y, n, T):
    """Taps along one axis of length n: (i0, i1, low weight l, high weight h), None outside [-1, n]."""
    if not (y >= -1 and y <= n):
        return None
    if y <= 0:
        y = T(0)
    i0 = int(y)
    if i0 >= n - 1:
        i0 = i1 = n - 1
        y = T(i0)
    else:
        i1 = i0 + 1
    low = y - T(i0)
    return i0, i1, low, T(1) - low


def _taps(y, x, H, W, T):
    """The four (row, col, weight) taps of v(y, x), in the SPEC's order w1..w4; None when out of range."""
    ay, ax = _axis_taps(y, H, T), _axis_taps(x, W, T)
    if ay is None or ax is None:
        return None
    y0, y1, ly, hy = ay
    x0, x1, lx, hx = ax
    return ((y0, x0, hy * hx), (y0, x1, hy * lx), (y1, x0, ly * hx), (y1, x1, ly * lx))


def _interp(plane, taps):
    """((w1*f00 + w2*f01) + w3*f10) + w4*f11."""
    i, j, w = taps[0]
    value = w * plane[i, j]
    for i, j, w in taps[1:]:
        value = value + w * plane[i, j]
    return value


def _scatter(gplane, taps, g, count):
    """Add (g*w)/count to each tap of gplane."""
    for i, j, w in taps:
        gplane[i, j] += (g * w) / count


@_quiet
def bilinear(plane, y, x, dtype=np.float64):
    """SPEC "Bilinear sample" v(y, x) on one (H, W) plane, computed in dtype."""
    T = _scalar_type(dtype)
    plane = np.asarray(plane).astype(T)
    taps = _taps(T(y), T(x), plane.shape[0], plane.shape[1], T)
    return 0.0 if taps is None else float(_interp(plane, taps))


# ---------------------------------------------------------------------------
# Sample grids of the align ops
# ---------------------------------------------------------------------------

def _grid(bin_size, sampling_ratio):
    """Samples per bin side: sampling_ratio if > 0, else ceil(bin_size); clamped to [0, 2**31-1], NaN -> 0."""
    n = float(sampling_ratio) if sampling_ratio > 0 else float(np.ceil(bin_size))
    return int(min(n, _INT_MAX)) if n > 0 else 0


def _coord(start, i, b, g, T):
    """start + ((i + .5)*b)/g in T, where start = (box start + p*b)."""
    return start + ((T(i) + T(0.5)) * b) / T(g)


def _first_true(indices, pred):
    """First position p of the sequence indices with pred(indices[p]), pred monotone False -> True."""
    lo, hi = 0, len(indices)
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(indices[mid]):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _span(coord, indices, lo, hi):
    """Sub-range of the range `indices` where coord(i) lies in [lo, hi]; coord monotone, never NaN there."""
    if len(indices) == 0:
        return indices
    sign = 1 if coord(indices[0]) <= coord(indices[-1]) else -1
    lo, hi = (lo, hi) if sign > 0 else (-hi, -lo)
    first = _first_true(indices, lambda i: sign * coord(i) >= lo)
    stop = _first_true(indices, lambda i: sign * coord(i) > hi)
    return indices[first:max(first, stop)]


def _axis_span(start, b, g, lo, hi, T):
    """Indices i of [0, g) whose _coord(start, i, b, g, T) lies in [lo, hi].

    With start and b finite the coordinate is monotone in i (every rounded
    operation is) and never NaN (at worst +-inf), so bisection is exact; with
    either non-finite every coordinate is +-inf or NaN, i.e. out of range.
    """
    if not (np.isfinite(start) and np.isfinite(b)):
        return range(0)
    return _span(lambda i: _coord(start, i, b, g, T), range(g), lo, hi)


def _candidates(start, b, g, lo, hi, T):
    """A range of indices of [0, g) holding every i whose _coord(start, i, b, g, T) lies in [lo, hi].

    The exact-arithmetic solution widened by a slack far above the rounding
    error of the T computation (32 ulps of the magnitudes involved), plus 2.
    """
    A, b = float(start), float(b)
    if g == 0 or not (math.isfinite(A) and math.isfinite(b)):
        return range(0)
    if b == 0:
        return range(g) if lo <= A <= hi else range(0)
    slack = 16 * float(np.finfo(T).eps) * (abs(A) + max(abs(lo), abs(hi)) + 1)
    t0, t1 = ((np.float64(v) - A) * g / b - 0.5 for v in (lo - slack, hi + slack))
    if b < 0:
        t0, t1 = t1, t0
    if math.isnan(t0) or math.isnan(t1):
        return range(g)
    first = max(math.floor(min(max(t0, -1.0), g)) - 2, 0)
    last = min(math.ceil(min(max(t1, -1.0), g)) + 2, g - 1)
    return range(first, last + 1)


class _Bin:
    """gh x gw sample grid of one output bin.

    Subclasses give taps(iy, ix) (None outside the map) and visit(), the
    (iy, ix) in row-major order of a subset of the grid holding every sample
    inside the map; the others are 0 and are skipped.
    """

    def __init__(self, ay, bh, gh, ax, bw, gw, H, W, T):
        self.ay, self.bh, self.gh = ay, bh, gh
        self.ax, self.bw, self.gw = ax, bw, gw
        self.H, self.W, self.T = H, W, T
        self.count = T(max(gh * gw, 1))

    def samples(self):
        """([(iy*gw + ix, taps or None)] over visit(), smallest sample index not visited or None)."""
        samples = [(iy * self.gw + ix, self.taps(iy, ix)) for iy, ix in self.visit()]
        first_skipped = 0
        for index, _ in samples:
            if index != first_skipped:
                break
            first_skipped += 1
        return samples, (first_skipped if first_skipped < self.gh * self.gw else None)


class _AlignBin(_Bin):
    """Axis-aligned grid: y = ay + ((iy+.5)*bh)/gh, x = ax + ((ix+.5)*bw)/gw with ay = sy + ph*bh."""

    def taps(self, iy, ix):
        T = self.T
        y = _coord(self.ay, iy, self.bh, self.gh, T)
        x = _coord(self.ax, ix, self.bw, self.gw, T)
        return _taps(y, x, self.H, self.W, T)

    def visit(self):
        """Rows with y in [-1, H] times columns with x in [-1, W]: exactly the in-map samples."""
        rows = _axis_span(self.ay, self.bh, self.gh, -1, self.H, self.T)
        cols = _axis_span(self.ax, self.bw, self.gw, -1, self.W, self.T)
        return ((iy, ix) for iy in rows for ix in cols)


class _RotatedBin(_Bin):
    """Rotated grid: local (yy, xx) as in _AlignBin, then rotated by (cos, sin) about (cy, cx)."""

    def __init__(self, ay, bh, gh, ax, bw, gw, cy, cx, cos, sin, H, W, T):
        super().__init__(ay, bh, gh, ax, bw, gw, H, W, T)
        self.cy, self.cx, self.cos, self.sin = cy, cx, cos, sin

    def _yx(self, yy, ix):
        xx = _coord(self.ax, ix, self.bw, self.gw, self.T)
        return (yy * self.cos - xx * self.sin) + self.cy, (yy * self.sin + xx * self.cos) + self.cx

    def taps(self, iy, ix):
        y, x = self._yx(_coord(self.ay, iy, self.bh, self.gh, self.T), ix)
        return _taps(y, x, self.H, self.W, self.T)

    def rows(self):
        """Candidate rows: local yy within the bounding box of the map
        [-1, H] x [-1, W] rotated back, plus slack for the rounding of y and x."""
        c, s, cy, cx = (float(v) for v in (self.cos, self.sin, self.cy, self.cx))
        if not (math.isfinite(cy) and math.isfinite(cx)):
            return range(0)
        norm = c * c + s * s
        corners = [(dy, dx) for dy in (-1 - cy, self.H - cy) for dx in (-1 - cx, self.W - cx)]
        yys = [(c * dy + s * dx) / norm for dy, dx in corners]
        slack = 16 * float(np.finfo(self.T).eps) * (abs(cy) + abs(cx) + self.H + self.W + 4)
        return _candidates(self.ay, self.bh, self.gh, min(yys) - slack, max(yys) + slack, self.T)

    def visit(self):
        """Candidate rows (rows()), then per row the columns with y and x
        both in range.  In a row with finite yy, over the columns with finite
        xx, y and x are monotone in ix and never NaN, so bisection finds the
        in-map columns exactly.
        """
        rows = self.rows()
        big = float(np.finfo(self.T).max)
        finite_cols = _axis_span(self.ax, self.bw, self.gw, -big, big, self.T)
        for iy in rows:
            yy = _coord(self.ay, iy, self.bh, self.gh, self.T)
            if not np.isfinite(yy):
                continue
            by_y = _span(lambda ix: self._yx(yy, ix)[0], finite_cols, -1, self.H)
            by_x = _span(lambda ix: self._yx(yy, ix)[1], finite_cols, -1, self.W)
            for ix in range(max(by_y.start, by_x.start), min(by_y.stop, by_x.stop)):
                yield iy, ix


def _align_bins(roi, output_size, spatial_scale, sampling_ratio, offset, min_size, H, W, T):
    """_AlignBin[ph][pw] of one (K, 5) box under the roi_align formulas."""
    PH, PW = output_size
    s, off = T(spatial_scale), T(offset)
    sx, sy, ex, ey = (T(roi[i]) * s - off for i in (1, 2, 3, 4))
    rw, rh = ex - sx, ey - sy
    if min_size:
        rw, rh = np.fmax(rw, T(1)), np.fmax(rh, T(1))
    bw, bh = rw / T(PW), rh / T(PH)
    gh, gw = _grid(bh, sampling_ratio), _grid(bw, sampling_ratio)
    return [[_AlignBin(sy + T(ph) * bh, bh, gh, sx + T(pw) * bw, bw, gw, H, W, T)
             for pw in range(PW)] for ph in range(PH)]


def _rotated_bins(roi, output_size, spatial_scale, sampling_ratio, aligned, clockwise, H, W, T):
    """_RotatedBin[ph][pw] of one (K, 6) box under the roi_align_rotated formulas."""
    PH, PW = output_size
    s, off = T(spatial_scale), T(0.5 if aligned else 0.0)
    cx, cy = T(roi[1]) * s - off, T(roi[2]) * s - off
    rw, rh = T(roi[3]) * s, T(roi[4]) * s
    if not aligned:
        rw, rh = np.fmax(rw, T(1)), np.fmax(rh, T(1))
    theta = T(roi[5]) * T(np.pi) / T(180)
    if clockwise:
        theta = -theta
    # cos/sin rounded from float64: correctly rounded, as C's cosf (NumPy's
    # own float32 cos is off by an ulp now and then).
    cos, sin = T(np.cos(np.float64(theta))), T(np.sin(np.float64(theta)))
    bw, bh = rw / T(PW), rh / T(PH)
    gh, gw = _grid(bh, sampling_ratio), _grid(bw, sampling_ratio)
    y_start, x_start = -rh / T(2), -rw / T(2)
    return [[_RotatedBin(y_start + T(ph) * bh, bh, gh, x_start + T(pw) * bw, bw, gw,
                         cy, cx, cos, sin, H, W, T)
             for pw in range(PW)] for ph in range(PH)]


def _average(plane, samples, count, T):
    """Sum of v over the samples in row-major order, divided by count."""
    acc = T(0)
    for _, taps in samples:
        if taps is not None:
            acc = acc + _interp(plane, taps)
    return acc / count


def _maximum(plane, samples, first_skipped, T):
    """(max, argmax) over the whole grid, out-of-map samples being 0; (0, -1) for an empty grid.

    Skipped samples are all 0 and only the first of them can win a strict->
    scan, so the visited samples plus that one give the full scan's result.
    """
    seq = [(i, T(0) if taps is None else _interp(plane, taps)) for i, taps in samples]
    if first_skipped is not None:
        seq.append((first_skipped, T(0)))
    if not seq:
        return T(0), -1
    seq.sort(key=lambda item: item[0])
    best_i, best = seq[0]
    for i, v in seq[1:]:
        if v > best:
            best_i, best = i, v
    return best, best_i


def _sampled_forward(features, rois, output_size, bins_of, channel_of, c_out, mode, T):
    """Forward of every sampled op: out (K, c_out, PH, PW) and argmax (max mode) or None."""
    PH, PW = output_size
    feats = np.asarray(features).astype(T)
    rois = np.asarray(rois)
    out = np.zeros((len(rois), c_out, PH, PW))
    argmax = np.full(out.shape, -1, dtype=np.int64)
    for k, roi in enumerate(rois):
        b, bins = int(roi[0]), bins_of(roi)
        for ph in range(PH):
            for pw in range(PW):
                bin_ = bins[ph][pw]
                samples, first_skipped = bin_.samples()
                for c in range(c_out):
                    plane = feats[b, channel_of(c, ph, pw)]
                    if mode == "max":
                        value, argmax[k, c, ph, pw] = _maximum(plane, samples, first_skipped, T)
                    else:
                        value = _average(plane, samples, bin_.count, T)
                    out[k, c, ph, pw] = value
    return out, (argmax if mode == "max" else None)


def _sampled_backward(grad_out, rois, input_shape, bins_of, channel_of, mode, argmax, T):
    """Backward of every sampled op: avg scatters (g*w)/count per sample, max g*w at the argmax sample."""
    grad = np.zeros(input_shape, dtype=T)
    g_out = np.asarray(grad_out).astype(T)
    _, c_out, PH, PW = g_out.shape
    for k, roi in enumerate(np.asarray(rois)):
        b, bins = int(roi[0]), bins_of(roi)
        for ph in range(PH):
            for pw in range(PW):
                bin_ = bins[ph][pw]
                samples = bin_.samples()[0] if mode == "avg" else None
                for c in range(c_out):
                    gplane, g = grad[b, channel_of(c, ph, pw)], g_out[k, c, ph, pw]
                    if mode == "max":
                        a = int(argmax[k, c, ph, pw])
                        taps = bin_.taps(*divmod(a, bin_.gw)) if a >= 0 else None
                        if taps is not None:
                            _scatter(gplane, taps, g, T(1))
                    else:
                        for _, taps in samples:
                            if taps is not None:
                                _scatter(gplane, taps, g, bin_.count)
    return grad.astype(np.float64)


def _same_channel(c, ph, pw):
    return c


def _ps_channel(output_size):
    """Input channel (c*PH + ph)*PW + pw read by output bin (c, ph, pw)."""
    PH, PW = output_size
    return lambda c, ph, pw: (c * PH + ph) * PW + pw


def _check_mode(mode):
    if mode not in ("avg", "max"):
        raise ValueError(f"mode must be 'avg' or 'max', got {mode!r}")


# ---------------------------------------------------------------------------
# roi_align
# ---------------------------------------------------------------------------

def _roi_align_bins(input_shape, output_size, spatial_scale, sampling_ratio, aligned, T):
    H, W = input_shape[2:]
    return lambda roi: _align_bins(roi, output_size, spatial_scale, sampling_ratio,
                                   0.5 if aligned else 0.0, not aligned, H, W, T)


@_quiet
def roi_align(features, rois, output_size, spatial_scale, sampling_ratio=-1, aligned=False,
              mode="avg", dtype=np.float64):
    """SPEC roi_align -> (out (K, C, PH, PW), argmax int64 for mode="max" else None)."""
    _check_mode(mode)
    T = _scalar_type(dtype)
    bins_of = _roi_align_bins(features.shape, output_size, spatial_scale, sampling_ratio, aligned, T)
    return _sampled_forward(features, rois, output_size, bins_of, _same_channel,
                            features.shape[1], mode, T)


@_quiet
def roi_align_backward(grad_out, rois, input_shape, output_size, spatial_scale, sampling_ratio=-1,
                       aligned=False, mode="avg", argmax=None, dtype=np.float64):
    """Gradient of roi_align for features (argmax from the forward when mode="max")."""
    _check_mode(mode)
    T = _scalar_type(dtype)
    bins_of = _roi_align_bins(input_shape, output_size, spatial_scale, sampling_ratio, aligned, T)
    return _sampled_backward(grad_out, rois, input_shape, bins_of, _same_channel, mode, argmax, T)


# ---------------------------------------------------------------------------
# ps_roi_align
# ---------------------------------------------------------------------------

def _ps_align_bins(input_shape, output_size, spatial_scale, sampling_ratio, T):
    H, W = input_shape[2:]
    return lambda roi: _align_bins(roi, output_size, spatial_scale, sampling_ratio,
                                   0.5, False, H, W, T)


def _ps_out_channels(C, output_size):
    PH, PW = output_size
    if C % (PH * PW):
        raise ValueError(f"C={C} is not divisible by PH*PW={PH * PW}")
    return C // (PH * PW)


@_quiet
def ps_roi_align(features, rois, output_size, spatial_scale, sampling_ratio=-1, dtype=np.float64):
    """SPEC ps_roi_align -> out (K, C/(PH*PW), PH, PW): avg roi_align, offset 0.5, no minimum size."""
    T = _scalar_type(dtype)
    c_out = _ps_out_channels(features.shape[1], output_size)
    bins_of = _ps_align_bins(features.shape, output_size, spatial_scale, sampling_ratio, T)
    return _sampled_forward(features, rois, output_size, bins_of, _ps_channel(output_size),
                            c_out, "avg", T)[0]


@_quiet
def ps_roi_align_backward(grad_out, rois, input_shape, output_size, spatial_scale, sampling_ratio=-1,
                          dtype=np.float64):
    """Gradient of ps_roi_align for features."""
    T = _scalar_type(dtype)
    bins_of = _ps_align_bins(input_shape, output_size, spatial_scale, sampling_ratio, T)
    return _sampled_backward(grad_out, rois, input_shape, bins_of, _ps_channel(output_size),
                             "avg", None, T)


# ---------------------------------------------------------------------------
# roi_align_rotated
# ---------------------------------------------------------------------------

def _rotated_bins_of(input_shape, output_size, spatial_scale, sampling_ratio, aligned, clockwise, T):
    H, W = input_shape[2:]
    return lambda roi: _rotated_bins(roi, output_size, spatial_scale, sampling_ratio,
                                     aligned, clockwise, H, W, T)


@_quiet
def roi_align_rotated(features, rois, output_size, spatial_scale, sampling_ratio=-1, aligned=True,
                      clockwise=False, dtype=np.float64):
    """SPEC roi_align_rotated -> out (K, C, PH, PW); rois (K, 6) with the angle in degrees."""
    T = _scalar_type(dtype)
    bins_of = _rotated_bins_of(features.shape, output_size, spatial_scale, sampling_ratio,
                               aligned, clockwise, T)
    return _sampled_forward(features, rois, output_size, bins_of, _same_channel,
                            features.shape[1], "avg", T)[0]


@_quiet
def roi_align_rotated_backward(grad_out, rois, input_shape, output_size, spatial_scale,
                               sampling_ratio=-1, aligned=True, clockwise=False, dtype=np.float64):
    """Gradient of roi_align_rotated for features."""
    T = _scalar_type(dtype)
    bins_of = _rotated_bins_of(input_shape, output_size, spatial_scale, sampling_ratio,
                               aligned, clockwise, T)
    return _sampled_backward(grad_out, rois, input_shape, bins_of, _same_channel, "avg", None, T)


# ---------------------------------------------------------------------------
# roi_pool and ps_roi_pool (integer bins)
# ---------------------------------------------------------------------------

def _c_round(v):
    """C round() (half away from zero) of a float scalar, clamped to [-2**40, 2**40], as an int."""
    t = np.trunc(v)
    if abs(v - t) >= 0.5:
        t = t + np.sign(v)
    return int(min(max(float(t), -_ROUND_LIMIT), _ROUND_LIMIT))


def _int_bins(roi, output_size, spatial_scale, H, W, T, ps):
    """(hstart, hend, wstart, wend)[ph][pw] for roi_pool, or for ps_roi_pool when ps is True."""
    PH, PW = output_size
    s = T(spatial_scale)
    sx, sy, ex, ey = (_c_round(T(roi[i]) * s) for i in (1, 2, 3, 4))
    extra = 0 if ps else 1
    rw, rh = max(ex - sx + extra, 1), max(ey - sy + extra, 1)
    bw, bh = T(rw) / T(PW), T(rh) / T(PH)
    top_h, top_w = (H - 1, W - 1) if ps else (H, W)

    def span(p, size, start, top):
        lo = int(np.floor(T(p) * size)) + start
        hi = int(np.ceil(T(p + 1) * size)) + start
        return min(max(lo, 0), top), min(max(hi, 0), top)

    return [[span(ph, bh, sy, top_h) + span(pw, bw, sx, top_w) for pw in range(PW)]
            for ph in range(PH)]


@_quiet
def roi_pool(features, rois, output_size, spatial_scale, dtype=np.float64):
    """SPEC roi_pool -> (out (K, C, PH, PW), argmax h*W + w int64, -1 for empty bins)."""
    T = _scalar_type(dtype)
    PH, PW = output_size
    feats = np.asarray(features).astype(T)
    _, C, H, W = feats.shape
    rois = np.asarray(rois)
    out = np.zeros((len(rois), C, PH, PW))
    argmax = np.full(out.shape, -1, dtype=np.int64)
    for k, roi in enumerate(rois):
        b, bins = int(roi[0]), _int_bins(roi, output_size, spatial_scale, H, W, T, ps=False)
        for ph in range(PH):
            for pw in range(PW):
                hs, he, ws, we = bins[ph][pw]
                if he <= hs or we <= ws:
                    continue
                for c in range(C):
                    plane = feats[b, c]
                    best, best_i = plane[hs, ws], hs * W + ws
                    for h in range(hs, he):
                        for w in range(ws, we):
                            if plane[h, w] > best:
                                best, best_i = plane[h, w], h * W + w
                    out[k, c, ph, pw], argmax[k, c, ph, pw] = best, best_i
    return out, argmax


@_quiet
def roi_pool_backward(grad_out, rois, input_shape, output_size, spatial_scale, argmax,
                      dtype=np.float64):
    """Gradient of roi_pool for features: each output's gradient is added at its argmax."""
    T = _scalar_type(dtype)
    grad = np.zeros(input_shape, dtype=T)
    g_out = np.asarray(grad_out).astype(T)
    W = input_shape[3]
    for k, roi in enumerate(np.asarray(rois)):
        b = int(roi[0])
        for c, ph, pw in np.ndindex(g_out.shape[1:]):
            a = int(argmax[k, c, ph, pw])
            if a >= 0:
                grad[b, c, a // W, a % W] += g_out[k, c, ph, pw]
    return grad.astype(np.float64)


@_quiet
def ps_roi_pool(features, rois, output_size, spatial_scale, dtype=np.float64):
    """SPEC ps_roi_pool -> out (K, C/(PH*PW), PH, PW): mean over the integer bin, 0 if empty."""
    T = _scalar_type(dtype)
    PH, PW = output_size
    feats = np.asarray(features).astype(T)
    _, C, H, W = feats.shape
    c_out, channel_of = _ps_out_channels(C, output_size), _ps_channel(output_size)
    rois = np.asarray(rois)
    out = np.zeros((len(rois), c_out, PH, PW))
    for k, roi in enumerate(rois):
        b, bins = int(roi[0]), _int_bins(roi, output_size, spatial_scale, H, W, T, ps=True)
        for ph in range(PH):
            for pw in range(PW):
                hs, he, ws, we = bins[ph][pw]
                if he <= hs or we <= ws:
                    continue
                for c in range(c_out):
                    plane = feats[b, channel_of(c, ph, pw)]
                    acc = T(0)
                    for h in range(hs, he):
                        for w in range(ws, we):
                            acc = acc + plane[h, w]
                    out[k, c, ph, pw] = acc / T((he - hs) * (we - ws))
    return out


@_quiet
def ps_roi_pool_backward(grad_out, rois, input_shape, output_size, spatial_scale, dtype=np.float64):
    """True gradient of ps_roi_pool for features: g/area to every element of the bin."""
    T = _scalar_type(dtype)
    H, W = input_shape[2:]
    channel_of = _ps_channel(output_size)
    grad = np.zeros(input_shape, dtype=T)
    g_out = np.asarray(grad_out).astype(T)
    for k, roi in enumerate(np.asarray(rois)):
        b, bins = int(roi[0]), _int_bins(roi, output_size, spatial_scale, H, W, T, ps=True)
        for c, ph, pw in np.ndindex(g_out.shape[1:]):
            hs, he, ws, we = bins[ph][pw]
            if he <= hs or we <= ws:
                continue
            share = g_out[k, c, ph, pw] / T((he - hs) * (we - ws))
            grad[b, channel_of(c, ph, pw), hs:he, ws:we] += share
    return grad.astype(np.float64)


# ---------------------------------------------------------------------------
# precise_roi_pool (exact integral of the bilinear interpolant)
# ---------------------------------------------------------------------------
# The interpolant with zero outside the map is f(y, x) = sum_kl hat(y-k) hat(x-l) F[k, l],
# hat(u) = max(0, 1-|u|), so its integral over [ya, yb] x [xa, xb] is wy @ F @ wx with
# wy[k] = integral of hat(y-k) over [ya, yb] (the cell-by-cell integral, in closed form).

# Weights are formed in exact rational arithmetic (Fraction) and rounded once
# to float64, so windows far narrower than a cell keep their weights, and the
# edge derivatives (L(edge) - O) / length lose nothing to cancellation.

def _hat_antiderivative(t):
    """Integral of hat over (-inf, t], exactly (t a Fraction)."""
    t = min(max(t, Fraction(-1)), Fraction(1))
    return (t + 1) ** 2 / 2 if t <= 0 else 1 - (1 - t) ** 2 / 2


def _mean_weights(a, b, length, n):
    """m[k] = (integral of hat(t - k) over [a, b]) / length, k = 0..n-1, as Fractions.

    An edge that overflowed to inf (with a finite length) lies far off the map.
    """
    if not (math.isfinite(a) and math.isfinite(b)):
        return [Fraction(0)] * n
    a, b, length = Fraction(a), Fraction(b), Fraction(length)
    return [(_hat_antiderivative(b - k) - _hat_antiderivative(a - k)) / length for k in range(n)]


def _point_weights(t, n):
    """w[k] = hat(t - k) as Fractions: the interpolant at t is w @ samples."""
    t = Fraction(t)
    return [max(Fraction(0), 1 - abs(t - k)) for k in range(n)]


def _floats(weights):
    return np.array([float(w) for w in weights])


def _edge_derivatives(mean, a, b, length, n):
    """(d/da, d/db) weight vectors of the window mean (mean @ samples) for its edges a, b:
    (mean - point(a)) / length and (point(b) - mean) / length."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return np.zeros(n), np.zeros(n)
    length = Fraction(length)
    at_a, at_b = _point_weights(a, n), _point_weights(b, n)
    return (_floats([(m - p) / length for m, p in zip(mean, at_a)]),
            _floats([(p - m) / length for m, p in zip(mean, at_b)]))


def _precise_bins(roi, output_size, spatial_scale, T):
    """Bin windows ((ya, yb, xa, xb), (bh, bw)) [ph][pw], computed in T and returned as floats."""
    PH, PW = output_size
    s = T(spatial_scale)
    sx, sy, ex, ey = (T(roi[i]) * s for i in (1, 2, 3, 4))
    bw, bh = np.fmax(ex - sx, T(0)) / T(PW), np.fmax(ey - sy, T(0)) / T(PH)
    bins = []
    for ph in range(PH):
        ya = sy + T(ph) * bh
        row = []
        for pw in range(PW):
            xa = sx + T(pw) * bw
            row.append(tuple(float(v) for v in (ya, ya + bh, xa, xa + bw, bh, bw)))
        bins.append(row)
    return bins


def _finite_area(bh, bw):
    return bh > 0 and bw > 0 and math.isfinite(bh) and math.isfinite(bw)


@_quiet
def precise_roi_pool(features, rois, output_size, spatial_scale, dtype=np.float64):
    """SPEC precise_roi_pool -> out (K, C, PH, PW): integral over each bin window / its area.

    Box geometry is computed in dtype (inverted boxes have zero-area bins, as
    mmcv's max(x2 - x1, 0)); the integral itself is evaluated exactly and
    rounded to float64 (mean weights wy / bh, wx / bw).
    """
    T = _scalar_type(dtype)
    PH, PW = output_size
    feats = np.asarray(features).astype(T).astype(np.float64)
    _, C, H, W = feats.shape
    rois = np.asarray(rois)
    out = np.zeros((len(rois), C, PH, PW))
    for k, roi in enumerate(rois):
        b, bins = int(roi[0]), _precise_bins(roi, output_size, spatial_scale, T)
        for ph, pw in np.ndindex(PH, PW):
            ya, yb, xa, xb, bh, bw = bins[ph][pw]
            if _finite_area(bh, bw):
                wy = _floats(_mean_weights(ya, yb, bh, H))
                wx = _floats(_mean_weights(xa, xb, bw, W))
                for c in range(C):
                    out[k, c, ph, pw] = wy @ feats[b, c] @ wx
    return out


@_quiet
def precise_roi_pool_backward(grad_out, features, rois, output_size, spatial_scale, dtype=np.float64):
    """Gradient of precise_roi_pool -> (grad_features (N, C, H, W), grad_rois (K, 5), column 0 zero).

    With O the window mean: dO/dxb = (L(xb) - O)/bw where L(x) is the mean of the
    interpolant along the window's edge at x (dO/dxa = (O - L(xa))/bw, likewise for
    ya, yb), chained through xa = sx + pw*bw, xb = sx + (pw+1)*bw, bw = (ex - sx)/PW,
    sx = x1*s.
    """
    T = _scalar_type(dtype)
    PH, PW = output_size
    feats = np.asarray(features).astype(T).astype(np.float64)
    _, C, H, W = feats.shape
    g_out = np.asarray(grad_out, dtype=np.float64)
    rois = np.asarray(rois)
    s = float(T(spatial_scale))
    grad = np.zeros(feats.shape)
    grad_rois = np.zeros((len(rois), 5))
    for k, roi in enumerate(rois):
        b, bins = int(roi[0]), _precise_bins(roi, output_size, spatial_scale, T)
        for ph, pw in np.ndindex(PH, PW):
            ya, yb, xa, xb, bh, bw = bins[ph][pw]
            if not _finite_area(bh, bw):
                continue
            my, mx = _mean_weights(ya, yb, bh, H), _mean_weights(xa, xb, bw, W)
            wy, wx = _floats(my), _floats(mx)
            dy_a, dy_b = _edge_derivatives(my, ya, yb, bh, H)
            dx_a, dx_b = _edge_derivatives(mx, xa, xb, bw, W)
            for c in range(C):
                g, F = g_out[k, c, ph, pw], feats[b, c]
                grad[b, c] += g * np.outer(wy, wx)
                d_xa, d_xb = wy @ F @ dx_a, wy @ F @ dx_b
                d_ya, d_yb = dy_a @ F @ wx, dy_b @ F @ wx
                fa, fb = pw / PW, (pw + 1) / PW
                grad_rois[k, 1] += g * s * (d_xa * (1 - fa) + d_xb * (1 - fb))
                grad_rois[k, 3] += g * s * (d_xa * fa + d_xb * fb)
                fa, fb = ph / PH, (ph + 1) / PH
                grad_rois[k, 2] += g * s * (d_ya * (1 - fa) + d_yb * (1 - fb))
                grad_rois[k, 4] += g * s * (d_ya * fa + d_yb * fb)
    return grad, grad_rois


# ---------------------------------------------------------------------------
# multiscale_roi_align (FPN)
# ---------------------------------------------------------------------------

@_quiet
def fpn_levels(rois, spatial_scales, canonical_scale=224, canonical_level=4, dtype=np.float64):
    """Level index (into spatial_scales) of each RoI, int64 (K,).

    k = floor(canonical_level + log2(sqrt(area)/canonical_scale) + 1e-6) in dtype, clamped
    (fmax/fmin: a NaN from a negative area goes to k_min) to [k_min, k_max] =
    -log2 of the first and last scale (rounded to integers); index = k - k_min.
    """
    T = _scalar_type(dtype)
    k_min, k_max = (int(round(-math.log2(spatial_scales[i]))) for i in (0, -1))
    levels = []
    for roi in np.asarray(rois):
        area = (T(roi[3]) - T(roi[1])) * (T(roi[4]) - T(roi[2]))
        k = np.floor(T(canonical_level) + np.log2(np.sqrt(area) / T(canonical_scale)) + T(1e-6))
        k = np.fmin(np.fmax(k, T(k_min)), T(k_max))
        levels.append(int(k) - k_min)
    return np.array(levels, dtype=np.int64)


@_quiet
def multiscale_roi_align(features_list, rois, output_size, spatial_scales, sampling_ratio=2,
                         aligned=False, canonical_scale=224, canonical_level=4, dtype=np.float64):
    """SPEC multiscale_roi_align -> out (K, C, PH, PW), each RoI pooled by roi_align from its level."""
    rois = np.asarray(rois)
    levels = fpn_levels(rois, spatial_scales, canonical_scale, canonical_level, dtype)
    out = np.zeros((len(rois), features_list[0].shape[1]) + tuple(output_size))
    for lvl, feats in enumerate(features_list):
        mask = levels == lvl
        out[mask] = roi_align(feats, rois[mask], output_size, spatial_scales[lvl],
                              sampling_ratio, aligned, dtype=dtype)[0]
    return out


@_quiet
def multiscale_roi_align_backward(grad_out, rois, input_shapes, output_size, spatial_scales,
                                  sampling_ratio=2, aligned=False, canonical_scale=224,
                                  canonical_level=4, dtype=np.float64):
    """Gradient of multiscale_roi_align: a list with one grad_features per level."""
    rois = np.asarray(rois)
    grad_out = np.asarray(grad_out)
    levels = fpn_levels(rois, spatial_scales, canonical_scale, canonical_level, dtype)
    return [roi_align_backward(grad_out[levels == lvl], rois[levels == lvl], shape, output_size,
                               spatial_scales[lvl], sampling_ratio, aligned, dtype=dtype)
            for lvl, shape in enumerate(input_shapes)]


# ---------------------------------------------------------------------------
# Gradient checking
# ---------------------------------------------------------------------------

def numeric_box_grad(forward, rois):
    """numeric_grad of forward(rois) for the box columns rois[:, 1:], the
    batch column held."""
    return numeric_grad(lambda boxes: forward(np.column_stack([rois[:, 0], boxes])), rois[:, 1:])


def numeric_grad(f, x, eps=1e-6):
    """Central-difference gradient at x of f (float64 array -> scalar; an array result is summed)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[i] += eps
        minus[i] -= eps
        grad[i] = (float(np.sum(f(plus))) - float(np.sum(f(minus)))) / (2 * eps)
    return grad
