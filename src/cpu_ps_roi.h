// CPU loops of ps_roi_align and ps_roi_pool (R-FCN), forward and backward.
//
// Work items as in cpu_roi_align.h, over output channels: forward is
// (RoI, output-channel block), backward (image, output-channel block). An
// output channel owns its PH * PW input channels, so backward items write
// disjoint planes: no atomics, the same bits for any thread count.
#pragma once
#include "../cyroi/kernels/ps_math.h"
#include "cpu_roi_align.h"
#include "cpu_roi_pool.h"

namespace cyroi {

// The input channels read by bin (ph, pw), as a map of C / (PH * PW)
// channels: output channel c of the view is input channel
// ps_input_channel(c, ph, pw). Lets the roi_align bin loops serve ps ops.
template <typename T>
Maps<T> ps_bin_view(const Maps<T>& m, int64_t ph, int64_t pw, int64_t pooled_h,
                    int64_t pooled_w) {
  Maps<T> v = m;
  v.data = m.data + ps_input_channel(0, ph, pw, pooled_h, pooled_w) * m.s.c;
  v.C = m.C / (pooled_h * pooled_w);
  v.s.c = m.s.c * pooled_h * pooled_w;
  return v;
}

// p.aligned must be true: ps_roi_align always offsets by half a pixel and
// has no minimum box size.
template <typename T>
void ps_roi_align_forward_item(const Maps<T>& f, const T* box, int64_t n,
                               const AlignParams<T>& p, int64_t k, int64_t c0, int64_t c1,
                               const Pooled<T>& out) {
  const int64_t channels = c1 - c0;
  std::vector<T> acc(channels, (T)0);
  const bool image_ok = n >= 0 && n < f.N;
  const AlignBox<T> b = align_box(box, p.scale, true, p.pooled_h, p.pooled_w, p.sampling_ratio);
  std::vector<AxisSamples<T>> xs(p.pooled_w);
  AxisSamples<T> ys;
  if (image_ok) {
    for (int64_t pw = 0; pw < p.pooled_w; ++pw)
      xs[pw].compute(b.start_x, b.bin_w, pw, b.grid_w, f.W);
  }
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    if (image_ok) ys.compute(b.start_y, b.bin_h, ph, b.grid_h, f.H);
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      if (image_ok) {
        const Maps<T> v = ps_bin_view(f, ph, pw, p.pooled_h, p.pooled_w);
        average_bin((const T*)v.plane(n, c0), v.s.c, channels, v, ys, xs[pw], b.count,
                    acc.data());
      }
      for (int64_t c = 0; c < channels; ++c) out.at(k, c0 + c, ph, pw) = acc[c];
    }
  }
}

template <typename T>
void ps_roi_align_backward_item(const Maps<T>& grad, const Pooled<T>& grad_out,
                                const T* boxes, const RoisByImage& rois,
                                const AlignParams<T>& p, int64_t n, int64_t c0, int64_t c1) {
  const int64_t channels = c1 - c0;
  std::vector<T> g(channels);
  std::vector<AxisSamples<T>> xs(p.pooled_w);
  AxisSamples<T> ys;
  for (int64_t r = rois.begin[n]; r < rois.begin[n + 1]; ++r) {
    const int64_t k = rois.order[r];
    const AlignBox<T> b =
        align_box(boxes + 4 * k, p.scale, true, p.pooled_h, p.pooled_w, p.sampling_ratio);
    for (int64_t pw = 0; pw < p.pooled_w; ++pw)
      xs[pw].compute(b.start_x, b.bin_w, pw, b.grid_w, grad.W);
    for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
      ys.compute(b.start_y, b.bin_h, ph, b.grid_h, grad.H);
      for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
        for (int64_t c = 0; c < channels; ++c) g[c] = grad_out.at(k, c0 + c, ph, pw);
        const Maps<T> v = ps_bin_view(grad, ph, pw, p.pooled_h, p.pooled_w);
        scatter_average(b, ys, xs[pw], g.data(), channels, v.plane(n, c0), v);
      }
    }
  }
}

template <typename T>
void ps_roi_pool_forward_item(const Maps<T>& f, const T* box, int64_t n, const PoolParams<T>& p,
                              int64_t k, int64_t c0, int64_t c1, const Pooled<T>& out) {
  const bool image_ok = n >= 0 && n < f.N;
  const PoolBox<T> b = pool_box(box, p.scale, p.pooled_h, p.pooled_w, (int64_t)0);
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    int64_t h0, h1;
    ps_pool_bin(b.bin_h, b.start_y, ph, f.H, &h0, &h1);
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      int64_t w0, w1;
      ps_pool_bin(b.bin_w, b.start_x, pw, f.W, &w0, &w1);
      const int64_t count = (image_ok && h1 > h0 && w1 > w0) ? (h1 - h0) * (w1 - w0) : 0;
      for (int64_t c = c0; c < c1; ++c) {
        T sum = 0;
        if (count) {
          const T* plane = f.plane(n, ps_input_channel(c, ph, pw, p.pooled_h, p.pooled_w));
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) sum += plane[h * f.s.h + w * f.s.w];
        }
        out.at(k, c, ph, pw) = ps_pool_mean(sum, count);
      }
    }
  }
}

// The true gradient of the forward: each element of a bin gets g / count.
template <typename T>
void ps_roi_pool_backward_item(const Maps<T>& grad, const Pooled<T>& grad_out, const T* boxes,
                               const RoisByImage& rois, const PoolParams<T>& p, int64_t n,
                               int64_t c0, int64_t c1) {
  for (int64_t r = rois.begin[n]; r < rois.begin[n + 1]; ++r) {
    const int64_t k = rois.order[r];
    const PoolBox<T> b = pool_box(boxes + 4 * k, p.scale, p.pooled_h, p.pooled_w, (int64_t)0);
    for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
      int64_t h0, h1;
      ps_pool_bin(b.bin_h, b.start_y, ph, grad.H, &h0, &h1);
      for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
        int64_t w0, w1;
        ps_pool_bin(b.bin_w, b.start_x, pw, grad.W, &w0, &w1);
        if (h1 <= h0 || w1 <= w0) continue;
        const int64_t count = (h1 - h0) * (w1 - w0);
        for (int64_t c = c0; c < c1; ++c) {
          T* plane = grad.plane(n, ps_input_channel(c, ph, pw, p.pooled_h, p.pooled_w));
          const T share = grad_out.at(k, c, ph, pw) / (T)count;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) plane[h * grad.s.h + w * grad.s.w] += share;
        }
      }
    }
  }
}

}  // namespace cyroi
