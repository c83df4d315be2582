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

// Integral of hat(t - k) over [a, b], a <= b: the rising and the falling half
// of the hat each in closed form, so no large antiderivatives cancel.
template <typename T> CYROI_HD T hat_integral(T a, T b, int64_t k) {
  const T left = (T)(k - 1), middle = (T)k, right = (T)(k + 1);
  T sum = 0;
  const T u0 = max_of(a, left) - left, u1 = min_of(b, middle) - left;  // hat = t - (k - 1)
  if (u1 > u0) sum += (u1 - u0) * (u1 + u0) / (T)2;
  const T v0 = right - min_of(b, right), v1 = right - max_of(a, middle);  // hat = (k + 1) - t
  if (v1 > v0) sum += (v1 - v0) * (v1 + v0) / (T)2;
  return sum;
}

// Cells [first, last) of a `size`-cell axis whose hat may overlap [a, b]
// (k in [floor(a), ceil(b)]); empty for NaN.
template <typename T>
CYROI_HD void hat_span(T a, T b, int64_t size, int64_t* first, int64_t* last) {
  *first = saturate_to_int64(floor((double)a), 0.0, (double)size, 0);
  *last = saturate_to_int64(ceil((double)b) + 1.0, 0.0, (double)size, 0);
}

// The interpolant along one axis at t, as taps lo = floor(t), hi = lo + 1
// with weights h = hat(t - lo), l = hat(t - hi); a tap off the map has
// weight 0 (and index 0, so reading it is safe).
template <typename T> CYROI_HD AxisTap<T> hat_point(T t, int64_t size) {
  AxisTap<T> tap;
  tap.lo = tap.hi = 0;
  tap.l = tap.h = 0;
  if (!(t > (T)-1 && t < (T)size)) return tap;
  const int64_t lo = (int64_t)floor((double)t);
  const T frac = t - (T)lo;
  if (lo >= 0) {
    tap.lo = lo;
    tap.h = (T)1 - frac;
  }
  if (lo + 1 < size) {
    tap.hi = lo + 1;
    tap.l = frac;
  }
  return tap;
}

// Gradient of a bin's mean O (window length `bin` along this axis) for its
// low and high edges, given L_lo and L_hi, the means of f along those edges:
// moving an edge out adds f's line there and dilutes the mean.
template <typename T>
CYROI_HD void precise_edge_gradient(T mean, T line_lo, T line_hi, T bin, T* d_lo, T* d_hi) {
  *d_lo = (mean - line_lo) / bin;
  *d_hi = (line_hi - mean) / bin;
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
