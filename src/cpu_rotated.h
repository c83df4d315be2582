// CPU loops of roi_align_rotated: forward, backward for features, and the
// gradient for box coordinates.
//
// Work items as in cpu_roi_align.h: forward (RoI, channel block), backward
// (image, channel block) visiting the image's RoIs in a fixed order, box
// gradient one RoI with all its channels in order. The same bits for any
// thread count, no atomics. Taps are computed once per bin and reused for
// every channel of the block.
#pragma once
#include <vector>

#include "../cyroi/kernels/rotated_math.h"
#include "cpu_box_grad.h"

namespace cyroi {

template <typename T> struct RotatedParams {
  T scale;
  int64_t pooled_h, pooled_w, sampling_ratio;
  bool aligned, clockwise;
};

// The tag that picks this op's work items (see cpu_family_drivers.h).
struct RoiAlignRotated {};

template <typename T> RotatedBox<T> rotated_box_of(const T* box, const RotatedParams<T>& p) {
  return rotated_box(box, p.scale, p.aligned, p.clockwise, p.pooled_h, p.pooled_w,
                     p.sampling_ratio);
}

template <typename T>
static void rotated_taps(const RotatedBox<T>& b, int64_t ph, int64_t pw, const Maps<T>& m,
                         std::vector<Taps<T>>* taps) {
  taps->clear();
  for_each_rotated_sample(b, ph, pw, m.H, m.W,
                          [&](const AxisTap<T>& ty, const AxisTap<T>& tx, T, T, T, T, int64_t,
                              int64_t) { taps->push_back(combine_taps(ty, tx, m.s.h, m.s.w)); });
}

template <typename T>
void forward_item(RoiAlignRotated, const Maps<T>& f, const T* box, int64_t n,
                  const RotatedParams<T>& p, int64_t k, int64_t c0, int64_t c1,
                  const Pooled<T>& out) {
  const bool image_ok = n >= 0 && n < f.N;
  const RotatedBox<T> b = rotated_box_of(box, p);
  std::vector<Taps<T>> taps;
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      if (image_ok) rotated_taps(b, ph, pw, f, &taps);
      for (int64_t c = c0; c < c1; ++c) {
        T acc = 0;
        if (image_ok) {
          const T* plane = f.plane(n, c);
          for (const Taps<T>& t : taps) acc += tap_value<T, T>(plane, t);
        }
        out.at(k, c, ph, pw) = acc / b.count;
      }
    }
  }
}

template <typename T>
void backward_item(RoiAlignRotated, const Maps<T>& grad, const Pooled<T>& grad_out, const T* boxes,
                   const RoisByImage& rois, const RotatedParams<T>& p, int64_t n, int64_t c0,
                   int64_t c1) {
  std::vector<Taps<T>> taps;
  for (int64_t r = rois.begin[n]; r < rois.begin[n + 1]; ++r) {
    const int64_t k = rois.order[r];
    const RotatedBox<T> b = rotated_box_of(boxes + 5 * k, p);
    for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
      for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
        rotated_taps(b, ph, pw, grad, &taps);
        for (int64_t c = c0; c < c1; ++c) {
          const T g = grad_out.at(k, c, ph, pw);
          T* plane = grad.plane(n, c);
          for (const Taps<T>& t : taps)
            for (int q = 0; q < 4; ++q) plane[t.offset[q]] += g * t.weight[q] / b.count;
        }
      }
    }
  }
}

// grad_box (cx, cy, w, h, angle) of RoI k: the sum over its bins, samples and
// channels (in that order) of the output gradient times the derivative of
// the sample's value.
template <typename T>
void rois_grad_item(RoiAlignRotated, const Maps<T>& f, const Pooled<T>& grad_out, const T* box,
                    int64_t n, const RotatedParams<T>& p, int64_t k, T* grad_box) {
  for (int j = 0; j < 5; ++j) grad_box[j] = 0;
  if (n < 0 || n >= f.N) return;
  const RotatedBox<T> b = rotated_box_of(box, p);
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      for_each_rotated_sample(b, ph, pw, f.H, f.W,
                              [&](const AxisTap<T>& ty, const AxisTap<T>& tx, T y, T x, T yy,
                                  T xx, int64_t iy, int64_t ix) {
        T sum_y, sum_x;
        sample_channel_sums(f, grad_out, n, k, ph, pw, ty, tx, axis_slope(y), axis_slope(x),
                            &sum_y, &sum_x);
        const RotatedMotion<T> m =
            rotated_motion(b, p.scale, p.clockwise, yy, xx,
                           grid_fraction<T>(ph, iy, b.grid_h, p.pooled_h),
                           grid_fraction<T>(pw, ix, b.grid_w, p.pooled_w));
        for (int j = 0; j < 5; ++j) grad_box[j] += (sum_y * m.dy[j] + sum_x * m.dx[j]) / b.count;
      });
    }
  }
}

}  // namespace cyroi
