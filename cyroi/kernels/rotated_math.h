// roi_align_rotated (detectron2's ROIAlignRotated): the sample grid of a box
// turned about its centre. The grid is laid out in the box's own frame
// exactly as roi_align's (sample_coord), then rotated onto the map.
#pragma once
#include "box_grad_math.h"

namespace cyroi {

static const double kPi = 3.14159265358979323846;

// Machine epsilon of the compute dtype: the scale of sample-position rounding.
CYROI_HD double epsilon_of(float) { return 1.1920928955078125e-07; }
CYROI_HD double epsilon_of(double) { return 2.220446049250313e-16; }

template <typename T> struct RotatedBox {
  T center_y, center_x;  // on the feature map, after the half-pixel offset
  T start_y, start_x;    // -h/2, -w/2: the grid's corner in the box's frame
  T bin_h, bin_w, cos_a, sin_a;
  int64_t grid_h, grid_w;
  T count;  // max(gh * gw, 1)
  // The size was raised to 1 (aligned=False): it no longer follows the box.
  bool fixed_h, fixed_w;
};

// box = (cx, cy, w, h, angle in degrees, counter-clockwise unless `clockwise`).
template <typename T>
CYROI_HD RotatedBox<T> rotated_box(const T* box, T scale, bool aligned, bool clockwise,
                                   int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio) {
  const T offset = aligned ? (T)0.5 : (T)0;
  RotatedBox<T> b;
  b.center_x = box[0] * scale - offset;
  b.center_y = box[1] * scale - offset;
  T roi_w = box[2] * scale;
  T roi_h = box[3] * scale;
  b.fixed_w = !aligned && roi_w < (T)1;
  b.fixed_h = !aligned && roi_h < (T)1;
  if (!aligned) {
    roi_w = max_of(roi_w, (T)1);
    roi_h = max_of(roi_h, (T)1);
  }
  T theta = box[4] * (T)kPi / (T)180;
  if (clockwise) theta = -theta;
  // Rounded from double: the correctly rounded value on every platform.
  b.cos_a = (T)cos((double)theta);
  b.sin_a = (T)sin((double)theta);
  b.bin_h = roi_h / (T)pooled_h;
  b.bin_w = roi_w / (T)pooled_w;
  b.start_y = -roi_h / (T)2;
  b.start_x = -roi_w / (T)2;
  b.grid_h = grid_side(sampling_ratio, roi_h, pooled_h);
  b.grid_w = grid_side(sampling_ratio, roi_w, pooled_w);
  b.count = (T)max_of(b.grid_h * b.grid_w, (int64_t)1);
  return b;
}

// Map position (y, x) of the sample at (yy, xx) in the box's frame.
template <typename T>
CYROI_HD void rotated_point(const RotatedBox<T>& b, T yy, T xx, T* y, T* x) {
  *y = yy * b.cos_a - xx * b.sin_a + b.center_y;
  *x = yy * b.sin_a + xx * b.cos_a + b.center_x;
}

// Candidate sample index ranges [y0, y1) x [x0, x1) of bin (ph, pw) that may
// land on the map: the frame-coordinate bounding box of the map rectangle
// [-1, H] x [-1, W] turned back, widened past the rounding of rotated_point
// and of sample_coord (1e-6: 8 ulps of a float index). Bounds the work of
// enormous boxes by the map size; callers test every candidate exactly with
// axis_tap. A centre far off the map (|c| >> H, W) in float32 makes a wide
// window: landing there is decided by rounding at that scale.
//
// rotated_point's y of a sample that lands on the map is off by under 3 ulps
// of |yy c| + |xx s| + |y|, and |yy| <= |c| Y + |s| X, |xx| <= |s| Y + |c| X
// for Y = |cy| + H + 2, X = |cx| + W + 2; so by under dy = 16 eps (Y + 2|cs| X),
// and x by dx = 16 eps (X + 2|cs| Y). Turned back, that widens the frame's
// yy by |c| dy + |s| dx and xx by |s| dy + |c| dx. Per axis, so that a huge
// |cx| does not widen an upright box's rows (which made the window the whole
// 2^31 x 2^31 grid: hours); never wider than the former shared slack,
// 16 eps (|cy| + |cx| + H + W + 4).
template <typename T>
CYROI_HD void rotated_window(const RotatedBox<T>& b, int64_t ph, int64_t pw, int64_t height,
                             int64_t width, int64_t* y0, int64_t* y1, int64_t* x0, int64_t* x1) {
  *y0 = *y1 = *x0 = *x1 = 0;
  const double c = (double)b.cos_a, s = (double)b.sin_a;
  const double cy = (double)b.center_y, cx = (double)b.center_x;
  const double norm = c * c + s * s;
  // Finite centre and angle only: otherwise no sample lands on the map.
  if (!(norm > 0) || !(cy - cy == 0.0) || !(cx - cx == 0.0)) return;
  const double eps16 = 16.0 * epsilon_of(b.cos_a);
  const double Y = fabs(cy) + (double)height + 2.0, X = fabs(cx) + (double)width + 2.0;
  const double cs2 = 2.0 * fabs(c * s), ac = fabs(c), as = fabs(s);
  const double dy = eps16 * (Y + cs2 * X), dx = eps16 * (X + cs2 * Y);
  const double shared = eps16 * (X + Y);
  const double slack_y = min_of(shared, (ac * dy + as * dx) / norm);
  const double slack_x = min_of(shared, (as * dy + ac * dx) / norm);
  double yy_lo = 0, yy_hi = 0, xx_lo = 0, xx_hi = 0;
  for (int corner = 0; corner < 4; ++corner) {
    const double dy = (corner & 1 ? (double)height : -1.0) - cy;
    const double dx = (corner & 2 ? (double)width : -1.0) - cx;
    const double yy = (c * dy + s * dx) / norm, xx = (c * dx - s * dy) / norm;
    yy_lo = corner ? min_of(yy_lo, yy) : yy;
    yy_hi = corner ? max_of(yy_hi, yy) : yy;
    xx_lo = corner ? min_of(xx_lo, xx) : xx;
    xx_hi = corner ? max_of(xx_hi, xx) : xx;
  }
  sample_window_between(b.start_y, b.bin_h, ph, b.grid_h, yy_lo - slack_y, yy_hi + slack_y, 1e-6,
                        y0, y1);
  sample_window_between(b.start_x, b.bin_w, pw, b.grid_w, xx_lo - slack_x, xx_hi + slack_x, 1e-6,
                        x0, x1);
}

// Calls visit(ty, tx, y, x, yy, xx, iy, ix) for every sample of bin (ph, pw)
// that reads the map, in row-major order: its axis taps, map position,
// position in the box's frame and grid index.
template <typename T, typename Visit>
CYROI_HD void for_each_rotated_sample(const RotatedBox<T>& b, int64_t ph, int64_t pw,
                                      int64_t height, int64_t width, Visit&& visit) {
  int64_t y0, y1, x0, x1;
  rotated_window(b, ph, pw, height, width, &y0, &y1, &x0, &x1);
  for (int64_t iy = y0; iy < y1; ++iy) {
    const T yy = sample_coord(b.start_y, b.bin_h, ph, iy, b.grid_h);
    for (int64_t ix = x0; ix < x1; ++ix) {
      const T xx = sample_coord(b.start_x, b.bin_w, pw, ix, b.grid_w);
      T y, x;
      rotated_point(b, yy, xx, &y, &x);
      AxisTap<T> ty, tx;
      if (axis_tap(y, height, &ty) && axis_tap(x, width, &tx))
        visit(ty, tx, y, x, yy, xx, iy, ix);
    }
  }
}

// d(y, x) / d(cx, cy, w, h, angle in degrees) of the sample at frame position
// (yy, xx), at fractions (along_y, along_x) of the box's height and width
// (grid_fraction). Coordinates in image pixels.
template <typename T> struct RotatedMotion {
  T dy[5], dx[5];
};

template <typename T>
CYROI_HD RotatedMotion<T> rotated_motion(const RotatedBox<T>& b, T scale, bool clockwise, T yy,
                                         T xx, T along_y, T along_x) {
  const T dyy_dh = b.fixed_h ? (T)0 : scale * (along_y - (T)0.5);
  const T dxx_dw = b.fixed_w ? (T)0 : scale * (along_x - (T)0.5);
  const T dtheta = (clockwise ? (T)-1 : (T)1) * (T)kPi / (T)180;
  RotatedMotion<T> m;
  m.dy[0] = 0;
  m.dx[0] = scale;
  m.dy[1] = scale;
  m.dx[1] = 0;
  m.dy[2] = -b.sin_a * dxx_dw;
  m.dx[2] = b.cos_a * dxx_dw;
  m.dy[3] = b.cos_a * dyy_dh;
  m.dx[3] = b.sin_a * dyy_dh;
  m.dy[4] = -(yy * b.sin_a + xx * b.cos_a) * dtheta;
  m.dx[4] = (yy * b.cos_a - xx * b.sin_a) * dtheta;
  return m;
}

}  // namespace cyroi
