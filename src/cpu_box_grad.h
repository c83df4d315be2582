// The channel sums shared by the CPU loops of the gradients for box
// coordinates (cpu_align_rois_grad.h, cpu_rotated.h); the GPU's are in
// cyroi/kernels/box_grad_elements.h.
#pragma once
#include "../cyroi/kernels/box_grad_math.h"
#include "cpu_common.h"

namespace cyroi {

// The sums over channels, in channel order, of the output gradient of bin
// (k, ph, pw) times dv/dy and dv/dx of the bilinear sample with axis taps
// (ty, tx) on image n; slopes from axis_slope of the sample's coordinates.
template <typename T>
void sample_channel_sums(const Maps<T>& f, const Pooled<T>& grad_out, int64_t n, int64_t k,
                         int64_t ph, int64_t pw, const AxisTap<T>& ty, const AxisTap<T>& tx,
                         T slope_y, T slope_x, T* sum_y, T* sum_x) {
  const Taps<T> t = combine_taps(ty, tx, f.s.h, f.s.w);
  T along_y = 0, along_x = 0;
  for (int64_t c = 0; c < f.C; ++c) {
    T dy, dx;
    tap_gradient(f.plane(n, c), t, ty, tx, slope_y, slope_x, &dy, &dx);
    const T g = grad_out.at(k, c, ph, pw);
    along_y += g * dy;
    along_x += g * dx;
  }
  *sum_y = along_y;
  *sum_x = along_x;
}

}  // namespace cyroi
