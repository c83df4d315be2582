// CPU loops of roi_align (modes "avg" and "max"), forward and backward.
//
// A work item is (RoI, channel block) forward and (image, channel block)
// backward: each output or gradient element is written by one item in a
// fixed order, so results are the same bits for any thread count, and
// backward needs no atomics. Sample taps are computed once per item and
// reused for every channel of the block.
#pragma once
#include <vector>

#include "../cyroi/kernels/roi_math.h"
#include "cpu_common.h"

namespace cyroi {

template <typename T> struct AlignParams {
  T scale;
  int64_t pooled_h, pooled_w, sampling_ratio;
  bool aligned, max_mode;
};

// The in-map samples of one bin along one axis: taps[j] belongs to sample
// index first + j; the samples outside [first, first + taps.size()) read 0.
template <typename T> struct AxisSamples {
  std::vector<AxisTap<T>> taps;
  int64_t first = 0;

  void compute(T start, T bin, int64_t p, int64_t grid, int64_t size) {
    int64_t lo, hi;
    sample_window(start, bin, p, grid, size, &lo, &hi);
    taps.clear();
    // One request for the whole window: a hopeless one (2^31 samples on the
    // map) fails at once instead of growing through memory first.
    taps.reserve(hi - lo);
    first = 0;
    for (int64_t i = lo; i < hi; ++i) {
      AxisTap<T> t;
      if (axis_tap(sample_coord(start, bin, p, i, grid), size, &t)) {
        if (taps.empty()) first = i;
        taps.push_back(t);
      }
    }
  }
  int64_t end() const { return first + (int64_t)taps.size(); }
};

template <typename T>
static void average_bin(const T* block, int64_t stride_c, int64_t channels, const Maps<T>& f,
                        const AxisSamples<T>& ys, const AxisSamples<T>& xs, T count, T* acc) {
  for (int64_t c = 0; c < channels; ++c) acc[c] = 0;
  for (const AxisTap<T>& ty : ys.taps) {
    for (const AxisTap<T>& tx : xs.taps) {
      const Taps<T> t = combine_taps(ty, tx, f.s.h, f.s.w);
      for (int64_t c = 0; c < channels; ++c) acc[c] += tap_value<T, T>(block + c * stride_c, t);
    }
  }
  for (int64_t c = 0; c < channels; ++c) acc[c] /= count;
}

// First maximum in row-major sample order; samples outside the map read 0.
template <typename T>
static void max_bin(const T* block, int64_t stride_c, int64_t channels, const Maps<T>& f,
                    const AlignBox<T>& b, const AxisSamples<T>& ys, const AxisSamples<T>& xs,
                    T* best, int64_t* where) {
  for (int64_t c = 0; c < channels; ++c) where[c] = -1;
  for (size_t j = 0; j < ys.taps.size(); ++j) {
    for (size_t i = 0; i < xs.taps.size(); ++i) {
      const Taps<T> t = combine_taps(ys.taps[j], xs.taps[i], f.s.h, f.s.w);
      const int64_t sample = (ys.first + (int64_t)j) * b.grid_w + xs.first + (int64_t)i;
      for (int64_t c = 0; c < channels; ++c) {
        const T v = tap_value<T, T>(block + c * stride_c, t);
        if (where[c] < 0 || v > best[c]) {
          best[c] = v;
          where[c] = sample;
        }
      }
    }
  }
  const int64_t outside =
      first_outside_sample(ys.first, ys.end(), xs.first, xs.end(), b.grid_h, b.grid_w);
  for (int64_t c = 0; c < channels; ++c) {
    const bool take_outside =
        outside >= 0 && (where[c] < 0 || (T)0 > best[c] || ((T)0 == best[c] && outside < where[c]));
    if (take_outside) {
      best[c] = 0;
      where[c] = outside;
    } else if (where[c] < 0) {
      best[c] = 0;  // no samples at all
    }
  }
}

template <typename T>
void roi_align_forward_item(const Maps<T>& f, const T* box, int64_t n,
                            const AlignParams<T>& p, int64_t k, int64_t c0, int64_t c1,
                            const Pooled<T>& out, const Pooled<int64_t>& argmax) {
  const int64_t channels = c1 - c0;
  std::vector<T> acc(channels);
  std::vector<int64_t> where(channels, -1);
  const bool image_ok = n >= 0 && n < f.N;
  const AlignBox<T> b = align_box(box, p.scale, p.aligned, p.pooled_h, p.pooled_w, p.sampling_ratio);
  std::vector<AxisSamples<T>> xs(p.pooled_w);
  for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
    if (image_ok) xs[pw].compute(b.start_x, b.bin_w, pw, b.grid_w, f.W);
  }
  AxisSamples<T> ys;
  const T* block = image_ok ? f.plane(n, c0) : nullptr;
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    if (image_ok) ys.compute(b.start_y, b.bin_h, ph, b.grid_h, f.H);
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      if (!image_ok) {
        for (int64_t c = 0; c < channels; ++c) acc[c] = 0;
      } else if (p.max_mode) {
        max_bin(block, f.s.c, channels, f, b, ys, xs[pw], acc.data(), where.data());
      } else {
        average_bin(block, f.s.c, channels, f, ys, xs[pw], b.count, acc.data());
      }
      for (int64_t c = 0; c < channels; ++c) {
        out.at(k, c0 + c, ph, pw) = acc[c];
        if (argmax.data) argmax.at(k, c0 + c, ph, pw) = where[c];
      }
    }
  }
}

template <typename T>
static void scatter_average(const AlignBox<T>& b, const AxisSamples<T>& ys,
                            const AxisSamples<T>& xs, const T* g, int64_t channels,
                            T* block, const Maps<T>& grad) {
  for (const AxisTap<T>& ty : ys.taps) {
    for (const AxisTap<T>& tx : xs.taps) {
      const Taps<T> t = combine_taps(ty, tx, grad.s.h, grad.s.w);
      for (int64_t c = 0; c < channels; ++c) {
        T* plane = block + c * grad.s.c;
        for (int q = 0; q < 4; ++q) plane[t.offset[q]] += g[c] * t.weight[q] / b.count;
      }
    }
  }
}

// The winning sample of mode "max" gets the whole gradient, by its taps.
template <typename T>
static void scatter_max(const AlignBox<T>& b, int64_t ph, int64_t pw, int64_t sample, T g,
                        T* plane, const Maps<T>& grad) {
  if (sample < 0 || b.grid_w <= 0 || sample / b.grid_w >= b.grid_h) return;
  AxisTap<T> ty, tx;
  if (!axis_tap(sample_coord(b.start_y, b.bin_h, ph, sample / b.grid_w, b.grid_h), grad.H, &ty) ||
      !axis_tap(sample_coord(b.start_x, b.bin_w, pw, sample % b.grid_w, b.grid_w), grad.W, &tx))
    return;
  const Taps<T> t = combine_taps(ty, tx, grad.s.h, grad.s.w);
  for (int q = 0; q < 4; ++q) plane[t.offset[q]] += g * t.weight[q];
}

// Accumulates into grad (zeroed by the caller) the channels [c0, c1) of
// image n, visiting its RoIs in `rois.order`.
template <typename T>
void roi_align_backward_item(const Maps<T>& grad, const Pooled<T>& grad_out,
                             const T* boxes, const RoisByImage& rois, const AlignParams<T>& p,
                             const Pooled<int64_t>& argmax, int64_t n, int64_t c0,
                             int64_t c1) {
  const int64_t channels = c1 - c0;
  std::vector<T> g(channels);
  std::vector<AxisSamples<T>> xs(p.pooled_w);
  AxisSamples<T> ys;
  T* block = grad.plane(n, c0);
  for (int64_t r = rois.begin[n]; r < rois.begin[n + 1]; ++r) {
    const int64_t k = rois.order[r];
    const AlignBox<T> b =
        align_box(boxes + 4 * k, p.scale, p.aligned, p.pooled_h, p.pooled_w, p.sampling_ratio);
    if (!p.max_mode) {
      for (int64_t pw = 0; pw < p.pooled_w; ++pw)
        xs[pw].compute(b.start_x, b.bin_w, pw, b.grid_w, grad.W);
    }
    for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
      if (!p.max_mode) ys.compute(b.start_y, b.bin_h, ph, b.grid_h, grad.H);
      for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
        for (int64_t c = 0; c < channels; ++c) g[c] = grad_out.at(k, c0 + c, ph, pw);
        if (p.max_mode) {
          for (int64_t c = 0; c < channels; ++c)
            scatter_max(b, ph, pw, argmax.at(k, c0 + c, ph, pw), g[c], block + c * grad.s.c, grad);
        } else {
          scatter_average(b, ys, xs[pw], g.data(), channels, block, grad);
        }
      }
    }
  }
}

}  // namespace cyroi
