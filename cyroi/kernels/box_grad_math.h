// Gradients for box coordinates of the sampled ops (roi_align avg,
// roi_align_rotated): how a bilinear sample changes when its position moves,
// and how sample positions move with the box, for a fixed sample grid.
#pragma once
#include "roi_math.h"

namespace cyroi {

// d(tap weight l) / d(coordinate) of axis_tap: 1 where the taps follow the
// coordinate, 0 where it was raised to 0 (c in [-1, 0)). Past the last index
// lo == hi, so tap_gradient vanishes there by itself.
template <typename T> CYROI_HD T axis_slope(T c) { return c >= (T)0 ? (T)1 : (T)0; }

// dv/dy and dv/dx of the bilinear sample with taps t = combine_taps(ty, tx)
// on one plane; slopes from axis_slope of the sample's coordinates.
template <typename T, typename Acc>
CYROI_HD void tap_gradient(const T* plane, const Taps<Acc>& t, const AxisTap<Acc>& ty,
                           const AxisTap<Acc>& tx, Acc slope_y, Acc slope_x, Acc* dy, Acc* dx) {
  const Acc f00 = (Acc)plane[t.offset[0]], f01 = (Acc)plane[t.offset[1]];
  const Acc f10 = (Acc)plane[t.offset[2]], f11 = (Acc)plane[t.offset[3]];
  *dy = slope_y * (tx.h * (f10 - f00) + tx.l * (f11 - f01));
  *dx = slope_x * (ty.h * (f01 - f00) + ty.l * (f11 - f10));
}

// Where sample i of bin p sits along one axis, as a fraction of the box's
// extent: (p + (i + .5) / grid) / pooled.
template <typename T>
CYROI_HD T grid_fraction(int64_t p, int64_t i, int64_t grid, int64_t pooled) {
  return ((T)p + ((T)i + (T)0.5) / (T)grid) / (T)pooled;
}

// roi_align: d(sample coordinate) / d(box start) and / d(box end), both in
// image pixels, for a sample at fraction `along` of the box. A size raised
// to 1 (`fixed`) makes the sample follow the start alone.
template <typename T>
CYROI_HD void align_sample_motion(T scale, bool fixed, T along, T* d_start, T* d_end) {
  *d_end = fixed ? (T)0 : scale * along;
  *d_start = scale - *d_end;
}

}  // namespace cyroi
