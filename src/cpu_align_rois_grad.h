// CPU loop of roi_align's (mode "avg") gradient for box coordinates.
//
// One work item per RoI, covering all its channels in a fixed order, so each
// RoI's gradient is the same bits for any thread count, without atomics.
#pragma once
#include "../cyroi/kernels/box_grad_math.h"
#include "cpu_roi_align.h"

namespace cyroi {

// grad_box (x1, y1, x2, y2) of RoI k: the sum over its bins, samples and
// channels (in that order) of the output gradient times the derivative of
// the sample's value, the sample grid held fixed.
template <typename T>
void roi_align_rois_grad_item(const Maps<T>& f, const Pooled<T>& grad_out, const T* box,
                              int64_t n, const AlignParams<T>& p, int64_t k, T* grad_box) {
  for (int j = 0; j < 4; ++j) grad_box[j] = 0;
  if (n < 0 || n >= f.N) return;
  RoiSamples<T> samples;
  samples.compute(box, p, f.H, f.W);
  const AlignBox<T>& b = samples.box;
  const AxisGrid<T>& ys = samples.ys;
  const AxisGrid<T>& xs = samples.xs;
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      for (int64_t j = 0; j < ys.count(ph); ++j) {
        const int64_t iy = ys.first[ph] + j;
        const T slope_y = axis_slope(sample_coord(b.start_y, b.bin_h, ph, iy, b.grid_h));
        T dy_start, dy_end;
        align_sample_motion(p.scale, b.fixed_h, grid_fraction<T>(ph, iy, b.grid_h, p.pooled_h),
                            &dy_start, &dy_end);
        for (int64_t i = 0; i < xs.count(pw); ++i) {
          const int64_t ix = xs.first[pw] + i;
          const T slope_x = axis_slope(sample_coord(b.start_x, b.bin_w, pw, ix, b.grid_w));
          T dx_start, dx_end;
          align_sample_motion(p.scale, b.fixed_w,
                              grid_fraction<T>(pw, ix, b.grid_w, p.pooled_w), &dx_start, &dx_end);
          const AxisTap<T>& ty = ys.of(ph)[j];
          const AxisTap<T>& tx = xs.of(pw)[i];
          const Taps<T> t = combine_taps(ty, tx, f.s.h, f.s.w);
          T sum_y = 0, sum_x = 0;
          for (int64_t c = 0; c < f.C; ++c) {
            T dy, dx;
            tap_gradient(f.plane(n, c), t, ty, tx, slope_y, slope_x, &dy, &dx);
            const T g = grad_out.at(k, c, ph, pw);
            sum_y += g * dy;
            sum_x += g * dx;
          }
          grad_box[0] += sum_x * dx_start / b.count;
          grad_box[1] += sum_y * dy_start / b.count;
          grad_box[2] += sum_x * dx_end / b.count;
          grad_box[3] += sum_y * dy_end / b.count;
        }
      }
    }
  }
}

}  // namespace cyroi
