// Gradients for box coordinates on the GPU, one bin at a time: each body
// below writes the contribution of bin (k, ph, pw), summed over its samples
// (or cells) and all channels, to `part` (4 or 5 values); the driver sums
// the bins of each RoI. Host-and-device like roi_elements.h; the formulas
// are box_grad_math.h's and prroi_math.h's, walked in the CPU loops' order.
#pragma once
#include "family_elements.h"

namespace cyroi {

// Where the features and the pooled gradient of one bin are.
struct BinGradient {
  const View4* f;
  int64_t channels, pooled_h, pooled_w, k, ph, pw;
  bool channels_last;
};

// Offset of channel c of the bin in the contiguous pooled array.
CYROI_HD int64_t pooled_offset(const BinGradient& b, int64_t c) {
  return b.channels_last ? ((b.k * b.pooled_h + b.ph) * b.pooled_w + b.pw) * b.channels + c
                         : ((b.k * b.channels + c) * b.pooled_h + b.ph) * b.pooled_w + b.pw;
}

// sum over channels of g * (dv/dy, dv/dx) for the sample with taps (ty, tx)
// at map position (y, x) on image n.
template <typename T, typename Acc>
CYROI_HD void channel_sums(const T* features, const T* grad_output, const BinGradient& bg,
                           int64_t n, const AxisTap<Acc>& ty, const AxisTap<Acc>& tx, Acc y,
                           Acc x, Acc* sum_y, Acc* sum_x) {
  const View4& f = *bg.f;
  const Taps<Acc> t = combine_taps(ty, tx, f.sh, f.sw);
  const Acc slope_y = axis_slope(y), slope_x = axis_slope(x);
  *sum_y = *sum_x = 0;
  for (int64_t c = 0; c < f.c; ++c) {
    Acc dy, dx;
    tap_gradient(features + n * f.sn + c * f.sc, t, ty, tx, slope_y, slope_x, &dy, &dx);
    const Acc g = (Acc)grad_output[pooled_offset(bg, c)];
    *sum_y += g * dy;
    *sum_x += g * dx;
  }
}

// roi_align (mode "avg"): d/d(x1, y1, x2, y2), the sample grid held fixed.
template <typename T, typename Acc>
CYROI_HD void roi_align_box_grad_bin(const T* features, const T* grad_output,
                                     const BinGradient& bg, const Acc* boxes,
                                     const int64_t* batch, const AlignSpec<Acc>& s, Acc* part) {
  for (int j = 0; j < 4; ++j) part[j] = 0;
  const View4& f = *bg.f;
  const int64_t n = batch[bg.k];
  if (n < 0 || n >= f.n) return;
  const AlignBox<Acc> b = align_box_of(boxes, s, bg.k);
  int64_t y0, y1, x0, x1;
  in_map_samples(b.start_y, b.bin_h, bg.ph, b.grid_h, f.h, &y0, &y1);
  in_map_samples(b.start_x, b.bin_w, bg.pw, b.grid_w, f.w, &x0, &x1);
  for (int64_t iy = y0; iy < y1; ++iy) {
    const Acc y = sample_coord(b.start_y, b.bin_h, bg.ph, iy, b.grid_h);
    AxisTap<Acc> ty, tx;
    if (!axis_tap(y, f.h, &ty)) continue;
    Acc dy_start, dy_end;
    align_sample_motion(s.scale, b.fixed_h, grid_fraction<Acc>(bg.ph, iy, b.grid_h, s.pooled_h),
                        &dy_start, &dy_end);
    for (int64_t ix = x0; ix < x1; ++ix) {
      const Acc x = sample_coord(b.start_x, b.bin_w, bg.pw, ix, b.grid_w);
      if (!axis_tap(x, f.w, &tx)) continue;
      Acc dx_start, dx_end, sum_y, sum_x;
      align_sample_motion(s.scale, b.fixed_w,
                          grid_fraction<Acc>(bg.pw, ix, b.grid_w, s.pooled_w), &dx_start,
                          &dx_end);
      channel_sums(features, grad_output, bg, n, ty, tx, y, x, &sum_y, &sum_x);
      part[0] += sum_x * dx_start / b.count;
      part[1] += sum_y * dy_start / b.count;
      part[2] += sum_x * dx_end / b.count;
      part[3] += sum_y * dy_end / b.count;
    }
  }
}

// roi_align_rotated: d/d(cx, cy, w, h, angle in degrees).
template <typename T, typename Acc>
CYROI_HD void roi_align_rotated_box_grad_bin(const T* features, const T* grad_output,
                                             const BinGradient& bg, const Acc* boxes,
                                             const int64_t* batch, const RotatedSpec<Acc>& s,
                                             Acc* part) {
  for (int j = 0; j < 5; ++j) part[j] = 0;
  const View4& f = *bg.f;
  const int64_t n = batch[bg.k];
  if (n < 0 || n >= f.n) return;
  const RotatedBox<Acc> b = rotated_box_of(boxes, s, bg.k);
  for_each_rotated_sample(b, bg.ph, bg.pw, f.h, f.w,
                          [&](const AxisTap<Acc>& ty, const AxisTap<Acc>& tx, Acc y, Acc x,
                              Acc yy, Acc xx, int64_t iy, int64_t ix) {
    Acc sum_y, sum_x;
    channel_sums(features, grad_output, bg, n, ty, tx, y, x, &sum_y, &sum_x);
    const RotatedMotion<Acc> m =
        rotated_motion(b, s.scale, s.clockwise, yy, xx,
                       grid_fraction<Acc>(bg.ph, iy, b.grid_h, s.pooled_h),
                       grid_fraction<Acc>(bg.pw, ix, b.grid_w, s.pooled_w));
    for (int j = 0; j < 5; ++j) part[j] += (sum_y * m.dy[j] + sum_x * m.dx[j]) / b.count;
  });
}

// The edge-weighted slopes along one line of a plane (element step `step`,
// `size` cells, zero off the map) over the window [lo, hi] of length `bin`.
template <typename T, typename Acc>
CYROI_HD void precise_slope_sums(const T* line, int64_t step, int64_t size, Acc lo, Acc hi,
                                 Acc bin, Acc* sum_lo, Acc* sum_hi) {
  *sum_lo = *sum_hi = 0;
  int64_t first, last;
  slope_span(lo, hi, size, &first, &last);
  for (int64_t l = first; l < last; ++l) {
    Acc w_lo, w_hi;
    edge_weights(lo, hi, bin, l, &w_lo, &w_hi);
    const Acc rise = (l + 1 < size ? (Acc)line[(l + 1) * step] : (Acc)0) -
                     (l >= 0 ? (Acc)line[l * step] : (Acc)0);
    *sum_lo += w_lo * rise;
    *sum_hi += w_hi * rise;
  }
}

// precise_roi_pool: d/d(x1, y1, x2, y2) through the four edges of the bin.
template <typename T, typename Acc>
CYROI_HD void precise_roi_pool_box_grad_bin(const T* features, const T* grad_output,
                                            const BinGradient& bg, const Acc* boxes,
                                            const int64_t* batch, Acc scale, Acc* part) {
  for (int j = 0; j < 4; ++j) part[j] = 0;
  const View4& f = *bg.f;
  const int64_t n = batch[bg.k];
  if (n < 0 || n >= f.n) return;
  const PooledIndex e = {bg.k, 0, bg.ph, bg.pw};
  const PreciseBin<Acc> p = precise_bin(boxes, scale, bg.pooled_h, bg.pooled_w, f, e);
  if (p.y1 <= p.y0 || p.x1 <= p.x0) return;  // off the map or zero-size: no gradient
  Acc sum_top = 0, sum_bottom = 0, sum_left = 0, sum_right = 0;
  for (int64_t c = 0; c < f.c; ++c) {
    const T* plane = features + n * f.sn + c * f.sc;
    Acc d_top = 0, d_bottom = 0, d_left = 0, d_right = 0, lo, hi;
    for (int64_t k = p.y0; k < p.y1; ++k) {  // rows: slopes along x
      const Acc w = hat_integral(p.y_lo, p.y_hi, k) / p.bin_h;
      precise_slope_sums(plane + k * f.sh, f.sw, f.w, p.x_lo, p.x_hi, p.bin_w, &lo, &hi);
      d_left += w * lo;
      d_right += w * hi;
    }
    for (int64_t l = p.x0; l < p.x1; ++l) {  // columns: slopes along y
      const Acc w = hat_integral(p.x_lo, p.x_hi, l) / p.bin_w;
      precise_slope_sums(plane + l * f.sw, f.sh, f.h, p.y_lo, p.y_hi, p.bin_h, &lo, &hi);
      d_top += w * lo;
      d_bottom += w * hi;
    }
    const Acc g = (Acc)grad_output[pooled_offset(bg, c)];
    sum_top += g * d_top;
    sum_bottom += g * d_bottom;
    sum_left += g * d_left;
    sum_right += g * d_right;
  }
  precise_edge_chain(sum_left, sum_right, bg.pw, bg.pooled_w, scale, &part[0], &part[2]);
  precise_edge_chain(sum_top, sum_bottom, bg.ph, bg.pooled_h, scale, &part[1], &part[3]);
}

}  // namespace cyroi
