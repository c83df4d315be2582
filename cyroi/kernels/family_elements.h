// One output element of the rest of the RoI family (ps_roi_align,
// ps_roi_pool, roi_align_rotated, precise_roi_pool): the bodies of the CUDA
// kernels in family_ops.cuh, host-and-device like roi_elements.h so that the
// tests run them on the host. The formulas are those of the math headers the
// CPU loops use; only the walk over one element lives here. Visiting order
// (samples row-major, cells row by row) is the CPU loops', so one thread per
// element reproduces their sums bit for bit.
#pragma once
#include "fpn_math.h"
#include "prroi_math.h"
#include "ps_math.h"
#include "roi_elements.h"
#include "rotated_math.h"

namespace cyroi {

// The input element a position-sensitive output element reads: the same
// RoI and bin, on input channel ps_input_channel.
CYROI_HD PooledIndex ps_input_index(const PooledIndex& e, int64_t pooled_h, int64_t pooled_w) {
  PooledIndex in = e;
  in.c = ps_input_channel(e.c, e.ph, e.pw, pooled_h, pooled_w);
  return in;
}

// ------------------------------------------------------------ ps_roi_pool

// The clipped integer bin of one element; false when it is empty.
template <typename Acc>
CYROI_HD bool ps_pool_window(const Acc* boxes, Acc scale, int64_t pooled_h, int64_t pooled_w,
                             const View4& v, const PooledIndex& e, int64_t* h0, int64_t* h1,
                             int64_t* w0, int64_t* w1) {
  const PoolBox<Acc> b = pool_box(boxes + 4 * e.k, scale, pooled_h, pooled_w, (int64_t)0);
  ps_pool_bin(b.bin_h, b.start_y, e.ph, v.h, h0, h1);
  ps_pool_bin(b.bin_w, b.start_x, e.pw, v.w, w0, w1);
  return *h1 > *h0 && *w1 > *w0;
}

// `in` is the element's input index (ps_input_index).
template <typename T, typename Acc>
CYROI_HD Acc ps_roi_pool_element(const T* features, const View4& f, const Acc* boxes,
                                 const int64_t* batch, Acc scale, int64_t pooled_h,
                                 int64_t pooled_w, const PooledIndex& in) {
  int64_t plane, h0, h1, w0, w1;
  if (!plane_offset(f, batch, in, &plane) ||
      !ps_pool_window(boxes, scale, pooled_h, pooled_w, f, in, &h0, &h1, &w0, &w1))
    return 0;
  Acc sum = 0;
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) sum += (Acc)features[plane + h * f.sh + w * f.sw];
  return ps_pool_mean(sum, (h1 - h0) * (w1 - w0));
}

// The true gradient of the mean: g / count to every element of the bin.
template <typename Acc, typename Sink>
CYROI_HD void ps_roi_pool_scatter(Acc g, const View4& grad, const Acc* boxes,
                                  const int64_t* batch, Acc scale, int64_t pooled_h,
                                  int64_t pooled_w, const PooledIndex& in, Sink& sink) {
  int64_t plane, h0, h1, w0, w1;
  if (!plane_offset(grad, batch, in, &plane) ||
      !ps_pool_window(boxes, scale, pooled_h, pooled_w, grad, in, &h0, &h1, &w0, &w1))
    return;
  const Acc share = g / (Acc)((h1 - h0) * (w1 - w0));
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) sink.add(plane + h * grad.sh + w * grad.sw, share);
}

// ------------------------------------------------------- roi_align_rotated

template <typename Acc> struct RotatedSpec {
  Acc scale;
  int64_t pooled_h, pooled_w, sampling_ratio;
  bool aligned, clockwise;
};

// boxes are (K, 5): cx, cy, w, h, angle.
template <typename Acc>
CYROI_HD RotatedBox<Acc> rotated_box_of(const Acc* boxes, const RotatedSpec<Acc>& s, int64_t k) {
  return rotated_box(boxes + 5 * k, s.scale, s.aligned, s.clockwise, s.pooled_h, s.pooled_w,
                     s.sampling_ratio);
}

template <typename T, typename Acc>
CYROI_HD Acc roi_align_rotated_element(const T* features, const View4& f, const Acc* boxes,
                                       const int64_t* batch, const RotatedSpec<Acc>& s,
                                       const PooledIndex& e) {
  int64_t plane;
  if (!plane_offset(f, batch, e, &plane)) return 0;
  const RotatedBox<Acc> b = rotated_box_of(boxes, s, e.k);
  Acc sum = 0;
  for_each_rotated_sample(b, e.ph, e.pw, f.h, f.w,
                          [&](const AxisTap<Acc>& ty, const AxisTap<Acc>& tx, Acc, Acc, Acc, Acc,
                              int64_t, int64_t) {
                            sum += tap_value<T, Acc>(features + plane,
                                                     combine_taps(ty, tx, f.sh, f.sw));
                          });
  return sum / b.count;
}

template <typename Acc, typename Sink>
CYROI_HD void roi_align_rotated_scatter(Acc g, const View4& grad, const Acc* boxes,
                                        const int64_t* batch, const RotatedSpec<Acc>& s,
                                        const PooledIndex& e, Sink& sink) {
  int64_t plane;
  if (!plane_offset(grad, batch, e, &plane)) return;
  const RotatedBox<Acc> b = rotated_box_of(boxes, s, e.k);
  for_each_rotated_sample(b, e.ph, e.pw, grad.h, grad.w,
                          [&](const AxisTap<Acc>& ty, const AxisTap<Acc>& tx, Acc, Acc, Acc, Acc,
                              int64_t, int64_t) {
                            const Taps<Acc> t = combine_taps(ty, tx, grad.sh, grad.sw);
                            for (int q = 0; q < 4; ++q)
                              sink.add(plane + t.offset[q], g * t.weight[q] / b.count);
                          });
}

// -------------------------------------------------------- precise_roi_pool

// Bin (ph, pw)'s windows along both axes and the cells they weigh.
template <typename Acc> struct PreciseBin {
  Acc y_lo, y_hi, x_lo, x_hi, bin_h, bin_w;
  int64_t y0, y1, x0, x1;
};

template <typename Acc>
CYROI_HD PreciseBin<Acc> precise_bin(const Acc* boxes, Acc scale, int64_t pooled_h,
                                     int64_t pooled_w, const View4& v, const PooledIndex& e) {
  const PreciseBox<Acc> b = precise_box(boxes + 4 * e.k, scale, pooled_h, pooled_w);
  PreciseBin<Acc> p;
  p.bin_h = b.bin_h;
  p.bin_w = b.bin_w;
  precise_window(b.start_y, b.bin_h, e.ph, v.h, &p.y_lo, &p.y_hi, &p.y0, &p.y1);
  precise_window(b.start_x, b.bin_w, e.pw, v.w, &p.x_lo, &p.x_hi, &p.x0, &p.x1);
  return p;
}

// The bin's mean: sum over cells of (row weight) * (sum of column weight *
// value), the weights being the hat integrals over the window per length.
template <typename T, typename Acc>
CYROI_HD Acc precise_roi_pool_element(const T* features, const View4& f, const Acc* boxes,
                                      const int64_t* batch, Acc scale, int64_t pooled_h,
                                      int64_t pooled_w, const PooledIndex& e) {
  int64_t plane;
  if (!plane_offset(f, batch, e, &plane)) return 0;
  const PreciseBin<Acc> p = precise_bin(boxes, scale, pooled_h, pooled_w, f, e);
  Acc sum = 0;
  for (int64_t k = p.y0; k < p.y1; ++k) {
    Acc across = 0;
    for (int64_t l = p.x0; l < p.x1; ++l)
      across += hat_integral(p.x_lo, p.x_hi, l) / p.bin_w *
                (Acc)features[plane + k * f.sh + l * f.sw];
    sum += hat_integral(p.y_lo, p.y_hi, k) / p.bin_h * across;
  }
  return sum;
}

template <typename Acc, typename Sink>
CYROI_HD void precise_roi_pool_scatter(Acc g, const View4& grad, const Acc* boxes,
                                       const int64_t* batch, Acc scale, int64_t pooled_h,
                                       int64_t pooled_w, const PooledIndex& e, Sink& sink) {
  int64_t plane;
  if (!plane_offset(grad, batch, e, &plane)) return;
  const PreciseBin<Acc> p = precise_bin(boxes, scale, pooled_h, pooled_w, grad, e);
  for (int64_t k = p.y0; k < p.y1; ++k) {
    const Acc g_row = g * (hat_integral(p.y_lo, p.y_hi, k) / p.bin_h);
    for (int64_t l = p.x0; l < p.x1; ++l)
      sink.add(plane + k * grad.sh + l * grad.sw,
               g_row * (hat_integral(p.x_lo, p.x_hi, l) / p.bin_w));
  }
}

}  // namespace cyroi
