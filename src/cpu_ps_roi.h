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

// ps_roi_align always offsets by half a pixel and has no minimum box size:
// its RoI geometry is roi_align's with aligned = true.
template <typename T> AlignParams<T> ps_align_params(AlignParams<T> p) {
  p.aligned = true;
  return p;
}

// The tags that pick these ops' work items (see cpu_family_drivers.h).
struct PsRoiAlign {};
struct PsRoiPool {};

template <typename T>
void forward_item(PsRoiAlign, const Maps<T>& f, const T* box, int64_t n, const AlignParams<T>& p,
                  int64_t k, int64_t c0, int64_t c1, const Pooled<T>& out) {
  const int64_t channels = c1 - c0;
  if (n < 0 || n >= f.N) return write_empty_rois(out, Pooled<int64_t>{}, k, c0, channels);
  AlignScratch<T> s;
  s.roi.compute(box, ps_align_params(p), f.H, f.W);
  s.acc.resize(channels);
  const Divisor<T> count(s.roi.box.count);
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      const Maps<T> v = ps_bin_view(f, ph, pw, p.pooled_h, p.pooled_w);
      const ChannelBlock<const T> in{v.plane(n, c0), v.s.h, v.s.w, v.s.c, channels};
      // Strided channels: the scalar loop, no lines of any width (V 16).
      average_bin<16, T, false>(in, BinSamples<T>(s.roi, ph, pw), count, LineSpan<T>(in), s,
                                &out.at(k, c0, ph, pw), out.s.c);
    }
  }
}

template <typename T>
void backward_item(PsRoiAlign, const Maps<T>& grad, const Pooled<T>& grad_out, const T* boxes,
                   const RoisByImage& rois, const AlignParams<T>& p, int64_t n, int64_t c0,
                   int64_t c1) {
  const int64_t channels = c1 - c0;
  AlignScratch<T> s;
  std::vector<T> g(channels);
  for (int64_t r = rois.begin[n]; r < rois.begin[n + 1]; ++r) {
    const int64_t k = rois.order[r];
    s.roi.compute(boxes + 4 * k, ps_align_params(p), grad.H, grad.W);
    const Divisor<T> count(s.roi.box.count);
    for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
      for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
        for (int64_t c = 0; c < channels; ++c) g[c] = grad_out.at(k, c0 + c, ph, pw);
        const Maps<T> v = ps_bin_view(grad, ph, pw, p.pooled_h, p.pooled_w);
        const ChannelBlock<T> out{v.plane(n, c0), v.s.h, v.s.w, v.s.c, channels};
        const BinSamples<T> bin(s.roi, ph, pw);
        for (int64_t first = 0; first < bin.size(); first += s.batch.size) {
          bin.fill(first, out.sh, out.sw, s.batch);
          if (count.exact_inverse)
            scatter_samples<T, false, true>(out, s.batch, g.data(), count, 0);
          else
            scatter_samples<T, false, false>(out, s.batch, g.data(), count, 0);
        }
      }
    }
  }
}

template <typename T>
void forward_item(PsRoiPool, const Maps<T>& f, const T* box, int64_t n, const PoolParams<T>& p,
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
void backward_item(PsRoiPool, const Maps<T>& grad, const Pooled<T>& grad_out, const T* boxes,
                   const RoisByImage& rois, const PoolParams<T>& p, int64_t n, int64_t c0,
                   int64_t c1) {
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
