// CPU loops of roi_pool (Fast R-CNN max pooling), forward and backward.
// Work items as in cpu_roi_align.h: same bits for any thread count.
#pragma once
#include "../cyroi/kernels/roi_math.h"
#include "cpu_common.h"

namespace cyroi {

template <typename T> struct PoolParams {
  T scale;
  int64_t pooled_h, pooled_w;
};

template <typename T>
void roi_pool_forward_item(const Maps<T>& f, const T* box, int64_t n, const PoolParams<T>& p,
                           int64_t k, int64_t c0, int64_t c1, const Pooled<T>& out,
                           const Pooled<int64_t>& argmax) {
  const bool image_ok = n >= 0 && n < f.N;
  const PoolBox<T> b = pool_box(box, p.scale, p.pooled_h, p.pooled_w, (int64_t)1);
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    int64_t h0, h1;
    pool_bin(b.bin_h, b.start_y, ph, f.H, &h0, &h1);
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      int64_t w0, w1;
      pool_bin(b.bin_w, b.start_x, pw, f.W, &w0, &w1);
      const bool empty = !image_ok || h1 <= h0 || w1 <= w0;
      for (int64_t c = c0; c < c1; ++c) {
        T best = 0;
        int64_t where = -1;
        if (!empty) {
          const T* plane = f.plane(n, c);
          for (int64_t h = h0; h < h1; ++h) {
            for (int64_t w = w0; w < w1; ++w) {
              const T v = plane[h * f.s.h + w * f.s.w];
              if (where < 0 || v > best) {
                best = v;
                where = h * f.W + w;
              }
            }
          }
        }
        out.at(k, c, ph, pw) = best;
        if (argmax.data) argmax.at(k, c, ph, pw) = where;
      }
    }
  }
}

// Adds each output gradient at its argmax; argmax values outside the plane
// (a hand-made argmax) are ignored rather than followed.
template <typename T>
void roi_pool_backward_item(const Maps<T>& grad, const Pooled<T>& grad_out,
                            const RoisByImage& rois, const Pooled<int64_t>& argmax,
                            int64_t n, int64_t c0, int64_t c1) {
  const int64_t plane_size = grad.H * grad.W;
  for (int64_t r = rois.begin[n]; r < rois.begin[n + 1]; ++r) {
    const int64_t k = rois.order[r];
    for (int64_t c = c0; c < c1; ++c) {
      T* plane = grad.plane(n, c);
      for (int64_t ph = 0; ph < grad_out.PH; ++ph) {
        for (int64_t pw = 0; pw < grad_out.PW; ++pw) {
          const int64_t where = argmax.at(k, c, ph, pw);
          if (where < 0 || where >= plane_size) continue;
          plane[(where / grad.W) * grad.s.h + (where % grad.W) * grad.s.w] += grad_out.at(k, c, ph, pw);
        }
      }
    }
  }
}

}  // namespace cyroi
