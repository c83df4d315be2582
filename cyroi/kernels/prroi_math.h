// precise_roi_pool (PrRoI Pooling, IoU-Net): exact integrals of the map's
// bilinear interpolant f(y, x) = sum_kl hat(y - k) hat(x - l) F[k, l],
// hat(u) = max(0, 1 - |u|), which is zero off the map. f is separable, so
// its integral over a window [ya, yb] x [xa, xb] is sum_kl wy[k] wx[l] F[k, l]
// with wy[k] the integral of hat(y - k) over [ya, yb]: one weight per cell and
// axis, reused for every channel.
#pragma once
#include "roi_math.h"

namespace cyroi {

template <typename T> struct PreciseBox {
  T start_y, start_x, bin_h, bin_w;  // on the feature map; bins are >= 0
};

// box = (x1, y1, x2, y2) in image pixels: no offset, no rounding; an
// inverted box (or NaN extent) has zero-size bins, whose output is 0.
template <typename T>
CYROI_HD PreciseBox<T> precise_box(const T* box, T scale, int64_t pooled_h, int64_t pooled_w) {
  PreciseBox<T> b;
  b.start_x = box[0] * scale;
  b.start_y = box[1] * scale;
  const T roi_w = box[2] * scale - b.start_x;
  const T roi_h = box[3] * scale - b.start_y;
  b.bin_w = (roi_w > (T)0 ? roi_w : (T)0) / (T)pooled_w;
  b.bin_h = (roi_h > (T)0 ? roi_h : (T)0) / (T)pooled_h;
  return b;
}

// Integral of hat(t - k) over [a, b], a <= b: each half of the hat as the
// length of its overlap times the hat's value at the overlap's midpoint, so
// a window far narrower than a cell keeps its weight (no difference of
// antiderivatives near 1 is taken).
template <typename T> CYROI_HD T hat_integral(T a, T b, int64_t k) {
  const T left = (T)(k - 1), middle = (T)k, right = (T)(k + 1);
  T sum = 0;
  T lo = max_of(a, left), hi = min_of(b, middle);  // rising half: hat = t - (k - 1)
  if (hi > lo) sum += (hi - lo) * ((lo - left) + (hi - left)) / (T)2;
  lo = max_of(a, middle);
  hi = min_of(b, right);  // falling half: hat = (k + 1) - t
  if (hi > lo) sum += (hi - lo) * ((right - lo) + (right - hi)) / (T)2;
  return sum;
}

// Cells [first, last) of a `size`-cell axis whose hat may overlap [a, b]
// (k in [floor(a), ceil(b)]); empty for NaN.
template <typename T>
CYROI_HD void hat_span(T a, T b, int64_t size, int64_t* first, int64_t* last) {
  *first = saturate_to_int64(floor((double)a), 0.0, (double)size, 0);
  *last = saturate_to_int64(ceil((double)b) + 1.0, 0.0, (double)size, 0);
}

// Window [lo, hi] of bin p along one axis and the cells [first, last) that
// may carry weight in it; no cells for a zero-size (or NaN) bin.
template <typename T>
CYROI_HD void precise_window(T start, T bin, int64_t p, int64_t size, T* lo, T* hi,
                             int64_t* first, int64_t* last) {
  *lo = start + (T)p * bin;
  *hi = *lo + bin;
  *first = *last = 0;
  if (bin > (T)0) hat_span(*lo, *hi, size, first, last);
}

// Box gradient. Along one axis the interpolant (at any fixed position on the
// other axis) is a line L(t) with slope F[l + 1] - F[l] on segment
// [l, l + 1] (F = 0 off the map). The mean M over a window [lo, hi] of length
// `bin` moves with its edges as
//   dM/dhi = (L(hi) - M) / bin = integral of L'(t) (t - lo) dt / bin^2
//   dM/dlo = (M - L(lo)) / bin = integral of L'(t) (hi - t) dt / bin^2,
// sums of the segments' slopes with the weights below: the same numbers as
// the differences, without their cancellation in narrow windows.

// Segments [first, last) of a `size`-cell axis (segment -1 enters the map,
// segment size - 1 leaves it) that may overlap [lo, hi]; empty for NaN.
template <typename T>
CYROI_HD void slope_span(T lo, T hi, int64_t size, int64_t* first, int64_t* last) {
  *first = saturate_to_int64(floor((double)lo), -1.0, (double)size, size);
  *last = saturate_to_int64(ceil((double)hi), -1.0, (double)size, -1);
}

// Weights of segment l's slope in dM/dlo and dM/dhi.
template <typename T>
CYROI_HD void edge_weights(T lo, T hi, T bin, int64_t l, T* w_lo, T* w_hi) {
  *w_lo = *w_hi = 0;
  const T u0 = max_of(lo, (T)l), u1 = min_of(hi, (T)(l + 1));
  if (!(u1 > u0)) return;
  const T part = (u1 - u0) / bin;
  *w_lo = part * (((hi - u0) + (hi - u1)) / ((T)2 * bin));
  *w_hi = part * (((u0 - lo) + (u1 - lo)) / ((T)2 * bin));
}

// Chain rule from the edges of bin p (lo = s + p*bin, hi = lo + bin,
// bin = (e - s) / pooled, s = start * scale) to the box's start and end
// coordinates in image pixels.
template <typename T>
CYROI_HD void precise_edge_chain(T d_lo, T d_hi, int64_t p, int64_t pooled, T scale, T* d_start,
                                 T* d_end) {
  const T f_lo = (T)p / (T)pooled, f_hi = (T)(p + 1) / (T)pooled;
  *d_start = scale * (d_lo * ((T)1 - f_lo) + d_hi * ((T)1 - f_hi));
  *d_end = scale * (d_lo * f_lo + d_hi * f_hi);
}

}  // namespace cyroi
