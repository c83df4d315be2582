// CPU loop of roi_align's (mode "avg") gradient for box coordinates.
//
// One work item per RoI, covering all its channels in a fixed order, so each
// RoI's gradient is the same bits for any thread count, without atomics.
#pragma once
#include "cpu_box_grad.h"
#include "cpu_roi_align.h"

namespace cyroi {

// The tag that picks roi_align's box-gradient item (see cpu_family_drivers.h);
// roi_align's other loops are its own (cpu_roi_align.h).
struct RoiAlign {};

// grad_box (x1, y1, x2, y2) of RoI k: the sum over its bins, samples and
// channels (in that order) of the output gradient times the derivative of
// the sample's value, the sample grid held fixed.
template <typename T>
void rois_grad_item(RoiAlign, const Maps<T>& f, const Pooled<T>& grad_out, const T* box, int64_t n,
                    const AlignParams<T>& p, int64_t k, T* grad_box) {
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
          T sum_y, sum_x;
          sample_channel_sums(f, grad_out, n, k, ph, pw, ys.of(ph)[j], xs.of(pw)[i], slope_y,
                              slope_x, &sum_y, &sum_x);
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
