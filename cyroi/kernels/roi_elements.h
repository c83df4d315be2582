// One output element of each op: the bodies of the CUDA kernels.
//
// Host-and-device like roi_math.h. A kernel in roi_ops.cu is a grid-stride
// loop around one of these functions, so the tests can run the very same
// code on the host over the whole index space (tests/cuda_host/).
//
// Geometry and sums are done in Acc: float for float16, bfloat16 and float32
// data, double for float64 data. Feature values are read as T and widened.
#pragma once
#include "roi_math.h"

namespace cyroi {

// A 4-D array seen in (N, C, H, W) order: extents and element strides. NHWC
// arrays and strided views are described by their strides, without copies.
struct View4 {
  int64_t n, c, h, w;
  int64_t sn, sc, sh, sw;
};

// Position of an element of a pooled (K, C, PH, PW) array.
struct PooledIndex {
  int64_t k, c, ph, pw;
};

// Element i of a pooled array stored contiguously in NCHW or NHWC order. In
// NHWC neighbouring threads take neighbouring channels, whose reads of the
// same sample taps are then adjacent in memory.
CYROI_HD PooledIndex pooled_index(int64_t i, int64_t channels, int64_t pooled_h,
                                  int64_t pooled_w, bool channels_last) {
  PooledIndex e;
  if (channels_last) {
    e.c = i % channels;
    i /= channels;
    e.pw = i % pooled_w;
    i /= pooled_w;
    e.ph = i % pooled_h;
    e.k = i / pooled_h;
  } else {
    e.pw = i % pooled_w;
    i /= pooled_w;
    e.ph = i % pooled_h;
    i /= pooled_h;
    e.c = i % channels;
    e.k = i / channels;
  }
  return e;
}

// Offset of the element's (n, c) plane (negative strides make it negative);
// false when the RoI's image index is out of range (only possible with
// validate=False): such RoIs read and write nothing.
CYROI_HD bool plane_offset(const View4& v, const int64_t* batch, const PooledIndex& e,
                           int64_t* offset) {
  const int64_t n = batch[e.k];
  if (n < 0 || n >= v.n) return false;
  *offset = n * v.sn + e.c * v.sc;
  return true;
}

// ---------------------------------------------------------------- roi_align

template <typename Acc> struct AlignSpec {
  Acc scale;
  int64_t pooled_h, pooled_w, sampling_ratio;
  bool aligned, max_mode;
};

template <typename Acc>
CYROI_HD AlignBox<Acc> align_box_of(const Acc* boxes, const AlignSpec<Acc>& s, int64_t k) {
  return align_box(boxes + 4 * k, s.scale, s.aligned, s.pooled_h, s.pooled_w, s.sampling_ratio);
}

// The in-map samples [first, end) of bin p along one axis: the candidates
// trimmed to those axis_tap accepts. Sample coordinates move one way with the
// index, so the in-map samples form one run.
template <typename Acc>
CYROI_HD void in_map_samples(Acc start, Acc bin, int64_t p, int64_t grid, int64_t size,
                             int64_t* first, int64_t* end) {
  int64_t lo, hi;
  candidate_samples(start, bin, p, grid, size, &lo, &hi);
  AxisTap<Acc> t;
  while (lo < hi && !axis_tap(sample_coord(start, bin, p, lo, grid), size, &t)) ++lo;
  while (hi > lo && !axis_tap(sample_coord(start, bin, p, hi - 1, grid), size, &t)) --hi;
  *first = lo;
  *end = hi;
}

// The taps of sample (iy, ix) of bin (ph, pw); false when it reads 0.
template <typename Acc>
CYROI_HD bool sample_taps(const AlignBox<Acc>& b, const View4& v, const PooledIndex& e,
                          int64_t iy, int64_t ix, Taps<Acc>* taps) {
  AxisTap<Acc> ty, tx;
  if (!axis_tap(sample_coord(b.start_y, b.bin_h, e.ph, iy, b.grid_h), v.h, &ty) ||
      !axis_tap(sample_coord(b.start_x, b.bin_w, e.pw, ix, b.grid_w), v.w, &tx))
    return false;
  *taps = combine_taps(ty, tx, v.sh, v.sw);
  return true;
}

// Output value of one element, and for mode "max" the winning sample
// (row-major index in the bin's grid, -1 when the grid is empty). Samples are
// visited in row-major order: the sum and the first maximum are those of
// the SPEC's loop.
template <typename T, typename Acc>
CYROI_HD Acc roi_align_element(const T* features, const View4& f, const Acc* boxes,
                               const int64_t* batch, const AlignSpec<Acc>& s,
                               const PooledIndex& e, int64_t* argmax) {
  *argmax = -1;
  int64_t plane;
  if (!plane_offset(f, batch, e, &plane)) return 0;
  const AlignBox<Acc> b = align_box_of(boxes, s, e.k);
  int64_t y0, y1, x0, x1;
  in_map_samples(b.start_y, b.bin_h, e.ph, b.grid_h, f.h, &y0, &y1);
  in_map_samples(b.start_x, b.bin_w, e.pw, b.grid_w, f.w, &x0, &x1);
  Acc sum = 0, best = 0;
  int64_t where = -1;
  for (int64_t iy = y0; iy < y1; ++iy) {
    AxisTap<Acc> ty, tx;
    if (!axis_tap(sample_coord(b.start_y, b.bin_h, e.ph, iy, b.grid_h), f.h, &ty)) continue;
    for (int64_t ix = x0; ix < x1; ++ix) {
      if (!axis_tap(sample_coord(b.start_x, b.bin_w, e.pw, ix, b.grid_w), f.w, &tx)) continue;
      const Acc v = tap_value<T, Acc>(features + plane, combine_taps(ty, tx, f.sh, f.sw));
      if (!s.max_mode) {
        sum += v;
      } else if (where < 0 || v > best) {
        best = v;
        where = iy * b.grid_w + ix;
      }
    }
  }
  if (!s.max_mode) return sum / b.count;
  // Every sample outside the map reads 0; only the first of them can win.
  const int64_t outside = first_outside_sample(y0, y1, x0, x1, b.grid_h, b.grid_w);
  if (outside >= 0 && (where < 0 || (Acc)0 > best || ((Acc)0 == best && outside < where))) {
    best = 0;
    where = outside;
  }
  *argmax = where;
  return best;
}

// Scatters the gradient g of one output element through `sink.add(offset,
// value)`: to the taps of every in-map sample (mode "avg"), or of the winning
// `sample` only (mode "max"; a sample index outside the grid is ignored).
template <typename Acc, typename Sink>
CYROI_HD void roi_align_scatter(Acc g, int64_t sample, const View4& grad, const Acc* boxes,
                                const int64_t* batch, const AlignSpec<Acc>& s,
                                const PooledIndex& e, Sink& sink) {
  int64_t plane;
  if (!plane_offset(grad, batch, e, &plane)) return;
  const AlignBox<Acc> b = align_box_of(boxes, s, e.k);
  Taps<Acc> t;
  if (s.max_mode) {
    if (sample < 0 || b.grid_w <= 0 || sample / b.grid_w >= b.grid_h) return;
    if (!sample_taps(b, grad, e, sample / b.grid_w, sample % b.grid_w, &t)) return;
    for (int q = 0; q < 4; ++q) sink.add(plane + t.offset[q], g * t.weight[q]);
    return;
  }
  int64_t y0, y1, x0, x1;
  in_map_samples(b.start_y, b.bin_h, e.ph, b.grid_h, grad.h, &y0, &y1);
  in_map_samples(b.start_x, b.bin_w, e.pw, b.grid_w, grad.w, &x0, &x1);
  for (int64_t iy = y0; iy < y1; ++iy) {
    AxisTap<Acc> ty, tx;
    if (!axis_tap(sample_coord(b.start_y, b.bin_h, e.ph, iy, b.grid_h), grad.h, &ty)) continue;
    for (int64_t ix = x0; ix < x1; ++ix) {
      if (!axis_tap(sample_coord(b.start_x, b.bin_w, e.pw, ix, b.grid_w), grad.w, &tx)) continue;
      t = combine_taps(ty, tx, grad.sh, grad.sw);
      for (int q = 0; q < 4; ++q) sink.add(plane + t.offset[q], g * t.weight[q] / b.count);
    }
  }
}

// ------------------------------------------------------------------ roi_pool

// Maximum over the integer bin of one element and its flat h * W + w
// (first maximum wins); 0 and -1 for an empty bin.
template <typename T, typename Acc>
CYROI_HD Acc roi_pool_element(const T* features, const View4& f, const Acc* boxes,
                              const int64_t* batch, Acc scale, int64_t pooled_h,
                              int64_t pooled_w, const PooledIndex& e, int64_t* argmax) {
  *argmax = -1;
  int64_t plane;
  if (!plane_offset(f, batch, e, &plane)) return 0;
  const PoolBox<Acc> b = pool_box(boxes + 4 * e.k, scale, pooled_h, pooled_w, (int64_t)1);
  int64_t h0, h1, w0, w1;
  pool_bin(b.bin_h, b.start_y, e.ph, f.h, &h0, &h1);
  pool_bin(b.bin_w, b.start_x, e.pw, f.w, &w0, &w1);
  Acc best = 0;
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t w = w0; w < w1; ++w) {
      const Acc v = (Acc)features[plane + h * f.sh + w * f.sw];
      if (*argmax < 0 || v > best) {
        best = v;
        *argmax = h * f.w + w;
      }
    }
  }
  return best;
}

// Adds g at the element's argmax; an argmax outside the plane (hand-made) is
// ignored rather than followed.
template <typename Acc, typename Sink>
CYROI_HD void roi_pool_scatter(Acc g, int64_t where, const View4& grad, const int64_t* batch,
                               const PooledIndex& e, Sink& sink) {
  int64_t plane;
  if (!plane_offset(grad, batch, e, &plane) || where < 0 || where >= grad.h * grad.w) return;
  sink.add(plane + (where / grad.w) * grad.sh + (where % grad.w) * grad.sw, g);
}

// ------------------------------------------------- deterministic accumulation
//
// deterministic=True sums each gradient element as an int64 count of units
// 2^-u: integer addition is associative, so any order of atomic adds gives
// the same bits. Every scattered value v satisfies |v| <= max|grad_output|
// (bilinear weights are <= 1), and the values landing on one element sum to
// at most max|grad_output| * bins (each bin spreads a total weight <= 1), so
// with max|grad_output| < 2^E and bins < 2^B the unit 2^(E + B - 61) keeps
// every partial sum below 2^61 whatever the order. Non-finite values cannot
// be counted and are added as floats beside the count; a sum of inf and NaN
// does not depend on the order either.

// Sentinel exponent: no finite non-zero gradient was seen.
static const int kNoExponent = -100000;

CYROI_HD bool is_finite(double v) { return v - v == 0.0; }

// frexp exponent E of |v| (|v| < 2^E) of a finite non-zero v, else kNoExponent.
CYROI_HD int magnitude_exponent(double v) {
  if (!is_finite(v) || v == 0.0) return kNoExponent;
  int e;
  frexp(v, &e);
  return e;
}

// Units per 1.0 of the fixed-point sums: 2^(61 - E - B), capped so that it
// stays a finite double (gradients near 2^-1000 then count as 0).
CYROI_HD double fixed_point_scale(int max_exponent, int64_t bins) {
  if (max_exponent == kNoExponent) return 1.0;
  int bins_exponent;
  frexp((double)max_of(bins, (int64_t)1), &bins_exponent);
  return ldexp(1.0, min_of(61 - max_exponent - bins_exponent, 1000));
}

CYROI_HD long long to_fixed_point(double v, double scale) { return llrint(v * scale); }

}  // namespace cyroi
