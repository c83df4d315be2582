// The per-sample math of every cyroi op, written once.
//
// Included by the Cython extension (host C++) and by the CUDA sources through
// NVRTC, so the CPU and GPU backends cannot drift apart, and the GPU math can
// be run on the host in tests. Every formula follows ../shared/SPEC.md in the
// SPEC's order of operations: that order is what makes float32 results equal
// torchvision's bit for bit.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define CYROI_HD __host__ __device__ __forceinline__
#else
#define CYROI_HD static inline
#endif

#ifdef __CUDACC_RTC__
typedef long long int64_t;
#else
#include <stdint.h>
#include <math.h>
#endif

namespace cyroi {

// Largest sample grid side. The SPEC's adaptive grid ceil(roi_size / pooled)
// overflows any integer for absurd boxes (1e30 px); past 2^31 - 1 samples per
// side the grid saturates, so sample indices (iy * gw + ix) fit in int64.
static const int64_t kMaxGrid = 2147483647LL;
// Saturation bound for rounded roi_pool coordinates: keeps every integer
// expression in int64 whatever finite value the box holds.
static const double kMaxCoord = 1099511627776.0;  // 2^40

template <typename T> CYROI_HD T min_of(T a, T b) { return b < a ? b : a; }
template <typename T> CYROI_HD T max_of(T a, T b) { return a < b ? b : a; }

// Saturating float -> int64 conversion; NaN maps to `nan_value`.
CYROI_HD int64_t saturate_to_int64(double v, double lo, double hi, int64_t nan_value) {
  if (!(v == v)) return nan_value;
  return (int64_t)min_of(max_of(v, lo), hi);
}

// One axis of the SPEC's bilinear sample: the two lattice neighbours of a
// coordinate and their weights. Bilinear weights are separable, so a sample's
// four taps are the products of a y tap and an x tap.
template <typename T> struct AxisTap {
  int64_t lo, hi;  // neighbour indices along the axis
  T l, h;          // weight of `hi` and of `lo`: l = c - lo, h = 1 - l
};

// Returns false (the sample reads 0) when the coordinate is outside
// [-1, size] or not a number.
template <typename T> CYROI_HD bool axis_tap(T c, int64_t size, AxisTap<T>* tap) {
  if (!(c >= (T)-1 && c <= (T)size)) return false;
  if (c < (T)0) c = (T)0;
  int64_t lo = (int64_t)c;
  int64_t hi;
  if (lo >= size - 1) {
    lo = hi = size - 1;
    c = (T)lo;
  } else {
    hi = lo + 1;
  }
  tap->lo = lo;
  tap->hi = hi;
  tap->l = c - (T)lo;
  tap->h = (T)1 - tap->l;
  return true;
}

// The four weights of a sample, in the SPEC's order
// (y0,x0), (y0,x1), (y1,x0), (y1,x1).
template <typename T> struct Taps {
  int64_t offset[4];  // element offsets inside one (H, W) plane
  T weight[4];
};

template <typename T>
CYROI_HD Taps<T> combine_taps(const AxisTap<T>& ty, const AxisTap<T>& tx, int64_t stride_h,
                              int64_t stride_w) {
  Taps<T> t;
  t.offset[0] = ty.lo * stride_h + tx.lo * stride_w;
  t.offset[1] = ty.lo * stride_h + tx.hi * stride_w;
  t.offset[2] = ty.hi * stride_h + tx.lo * stride_w;
  t.offset[3] = ty.hi * stride_h + tx.hi * stride_w;
  t.weight[0] = ty.h * tx.h;
  t.weight[1] = ty.h * tx.l;
  t.weight[2] = ty.l * tx.h;
  t.weight[3] = ty.l * tx.l;
  return t;
}

// The SPEC's bilinear value v(y, x) of one sample (Acc accumulates T data).
template <typename T, typename Acc>
CYROI_HD Acc tap_value(const T* plane, const Taps<Acc>& t) {
  return t.weight[0] * (Acc)plane[t.offset[0]] + t.weight[1] * (Acc)plane[t.offset[1]] +
         t.weight[2] * (Acc)plane[t.offset[2]] + t.weight[3] * (Acc)plane[t.offset[3]];
}

// ---------------------------------------------------------------- roi_align

// Sample grid side: sampling_ratio if > 0, else ceil(size / pooled);
// negative or NaN sizes give an empty grid (their samples would not run).
template <typename T> CYROI_HD int64_t grid_side(int64_t sampling_ratio, T roi_size, int64_t pooled) {
  if (sampling_ratio > 0) return sampling_ratio;
  return saturate_to_int64(ceil((double)(roi_size / (T)pooled)), 0.0, (double)kMaxGrid, 0);
}

// Where one RoI's bins and samples lie on the feature map (SPEC roi_align).
template <typename T> struct AlignBox {
  T start_y, start_x, bin_h, bin_w;
  int64_t grid_h, grid_w;
  T count;  // max(gh * gw, 1), the divisor of mode "avg"
  // The size was raised to 1 (aligned=False): it no longer follows the box,
  // which matters to the gradient for box coordinates.
  bool fixed_h, fixed_w;
};

// box = (x1, y1, x2, y2) in image pixels.
template <typename T>
CYROI_HD AlignBox<T> align_box(const T* box, T scale, bool aligned, int64_t pooled_h,
                               int64_t pooled_w, int64_t sampling_ratio) {
  const T offset = aligned ? (T)0.5 : (T)0;
  AlignBox<T> b;
  b.start_x = box[0] * scale - offset;
  b.start_y = box[1] * scale - offset;
  T roi_w = box[2] * scale - offset - b.start_x;
  T roi_h = box[3] * scale - offset - b.start_y;
  b.fixed_w = !aligned && roi_w < (T)1;
  b.fixed_h = !aligned && roi_h < (T)1;
  if (!aligned) {
    roi_w = max_of(roi_w, (T)1);
    roi_h = max_of(roi_h, (T)1);
  }
  b.bin_h = roi_h / (T)pooled_h;
  b.bin_w = roi_w / (T)pooled_w;
  b.grid_h = grid_side(sampling_ratio, roi_h, pooled_h);
  b.grid_w = grid_side(sampling_ratio, roi_w, pooled_w);
  b.count = (T)max_of(b.grid_h * b.grid_w, (int64_t)1);
  return b;
}

// Coordinate of sample i of bin p along one axis. (i + .5) is formed in T:
// for float it is torchvision's float expression, and double keeps counting
// exactly past 2^24 samples (where a float index would skip samples).
template <typename T>
CYROI_HD T sample_coord(T start, T bin, int64_t p, int64_t i, int64_t grid) {
  return start + (T)p * bin + ((T)i + (T)0.5) * bin / (T)grid;
}

// Candidate sample indices [first, last) of bin p whose coordinate may fall in
// [lo, hi]; every other sample lies outside. Bounds the work of enormous
// boxes by the map size instead of the grid size. The window is widened past
// the float rounding of sample_coord (2 samples, plus `relative_slack` of the
// magnitudes involved), and callers test each candidate exactly (axis_tap),
// so the result equals a loop over the whole grid.
template <typename T>
CYROI_HD void sample_window_between(T start, T bin, int64_t p, int64_t grid, double lo, double hi,
                                    double relative_slack, int64_t* first, int64_t* last) {
  *first = 0;
  *last = 0;
  if (grid <= 0) return;
  const double base = (double)start + (double)p * (double)bin;
  const double step = (double)bin / (double)grid;
  if (!(base == base) || !(step == step)) return;
  if (step == 0.0) {
    if (base >= lo && base <= hi) *last = grid;
    return;
  }
  double a = (lo - base) / step - 0.5;
  double b = (hi - base) / step - 0.5;
  if (step < 0) {
    double t = a;
    a = b;
    b = t;
  }
  const double slack =
      2.0 + relative_slack * (fabs(base) + max_of(fabs(lo), fabs(hi)) + 1.0) / fabs(step);
  *first = saturate_to_int64(floor(a - slack), 0.0, (double)grid, 0);
  *last = saturate_to_int64(ceil(b + slack) + 1.0, 0.0, (double)grid, 0);
}

// The window of the samples that may read the map: coordinate in [-1, size].
template <typename T>
CYROI_HD void sample_window(T start, T bin, int64_t p, int64_t grid, int64_t size,
                            int64_t* first, int64_t* last) {
  sample_window_between(start, bin, p, grid, -1.0, (double)size, 1e-5, first, last);
}

// Grids up to this side take all of [0, grid) as candidates, sparing the
// double arithmetic of sample_window in the common case.
static const int64_t kSmallGrid = 64;

// Candidate sample indices [first, last) of bin p: a range holding every
// sample that reads the map (see sample_window).
template <typename T>
CYROI_HD void candidate_samples(T start, T bin, int64_t p, int64_t grid, int64_t size,
                                int64_t* first, int64_t* last) {
  *first = 0;
  *last = max_of(grid, (int64_t)0);
  if (grid > kSmallGrid) sample_window(start, bin, p, grid, size, first, last);
}

// mode="max": the samples outside the map read 0 and take part in the max.
// Given the exact in-map index ranges [y0, y1) and [x0, x1) of a bin (empty
// if y0 >= y1), returns the row-major index of its first outside sample, or
// -1 if every sample is inside.
CYROI_HD int64_t first_outside_sample(int64_t y0, int64_t y1, int64_t x0, int64_t x1,
                                      int64_t grid_h, int64_t grid_w) {
  if (grid_h <= 0 || grid_w <= 0) return -1;
  if (y0 >= y1 || x0 >= x1 || y0 > 0 || x0 > 0) return 0;
  if (x1 < grid_w) return x1;
  if (y1 < grid_h) return y1 * grid_w;
  return -1;
}

// ------------------------------------------------------------------ roi_pool

// C's round (half away from zero), saturated so integer arithmetic is safe.
template <typename T> CYROI_HD int64_t round_coord(T v) {
  return saturate_to_int64((double)round(v), -kMaxCoord, kMaxCoord, 0);
}

// Integer RoI of roi_pool / ps_roi_pool. `min_size_one_extra` is 1 for
// roi_pool (rw = ex - sx + 1) and 0 for ps_roi_pool (rw = ex - sx).
template <typename T> struct PoolBox {
  int64_t start_y, start_x;
  T bin_h, bin_w;
};

template <typename T>
CYROI_HD PoolBox<T> pool_box(const T* box, T scale, int64_t pooled_h, int64_t pooled_w,
                             int64_t inclusive) {
  PoolBox<T> b;
  b.start_x = round_coord(box[0] * scale);
  b.start_y = round_coord(box[1] * scale);
  const int64_t roi_w = max_of(round_coord(box[2] * scale) - b.start_x + inclusive, (int64_t)1);
  const int64_t roi_h = max_of(round_coord(box[3] * scale) - b.start_y + inclusive, (int64_t)1);
  b.bin_w = (T)roi_w / (T)pooled_w;
  b.bin_h = (T)roi_h / (T)pooled_h;
  return b;
}

// Integer extent [lo, hi) of bin p along one axis, clipped to [0, limit].
// Bin offsets reach the RoI size, up to 2 kMaxCoord + 1: they saturate far
// above that (2^62), where adding start (|start| <= kMaxCoord) cannot overflow.
template <typename T>
CYROI_HD void pool_bin(T bin, int64_t start, int64_t p, int64_t limit, int64_t* lo, int64_t* hi) {
  const double offset_limit = 4611686018427387904.0;  // 2^62
  const int64_t a = saturate_to_int64(floor((double)((T)p * bin)), -offset_limit, offset_limit, 0);
  const int64_t b =
      saturate_to_int64(ceil((double)((T)(p + 1) * bin)), -offset_limit, offset_limit, 0);
  *lo = min_of(max_of(a + start, (int64_t)0), limit);
  *hi = min_of(max_of(b + start, (int64_t)0), limit);
}

}  // namespace cyroi
