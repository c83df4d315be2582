// CPU loops of precise_roi_pool: forward, backward for features, and the
// gradient for box coordinates.
//
// Work items as in cpu_roi_align.h: forward (RoI, channel block), backward
// (image, channel block) visiting the image's RoIs in a fixed order, box
// gradient one RoI with all its channels in order. The same bits for any
// thread count, no atomics. Cell weights are computed once per bin.
#pragma once
#include <vector>

#include "../cyroi/kernels/prroi_math.h"
#include "cpu_common.h"

namespace cyroi {

// The tag that picks this op's work items (see cpu_family_drivers.h).
struct PreciseRoiPool {};

template <typename T> struct PreciseParams {
  T scale;
  int64_t pooled_h, pooled_w;
};

// The cells one bin covers along one axis and their weights divided by the
// bin's length, so that sum_kl wy[k] wx[l] F[k, l] is the bin's mean. A
// zero-size bin has no cells (its mean is 0).
template <typename T> struct CellWeights {
  std::vector<T> w;
  int64_t first = 0;
  T lo = 0, hi = 0;  // the bin's window

  void compute(T start, T bin, int64_t p, int64_t size) {
    int64_t last;
    precise_window(start, bin, p, size, &lo, &hi, &first, &last);
    w.clear();
    for (int64_t k = first; k < last; ++k) w.push_back(hat_integral(lo, hi, k) / bin);
  }
};

// The bin's mean on one plane; `row_step` and `col_step` are the plane's
// element strides.
template <typename T>
static T bin_mean(const T* plane, const CellWeights<T>& ys, const CellWeights<T>& xs,
                  int64_t row_step, int64_t col_step) {
  T acc = 0;
  for (size_t j = 0; j < ys.w.size(); ++j) {
    const T* row = plane + (ys.first + (int64_t)j) * row_step + xs.first * col_step;
    T across = 0;
    for (size_t i = 0; i < xs.w.size(); ++i) across += xs.w[i] * row[(int64_t)i * col_step];
    acc += ys.w[j] * across;
  }
  return acc;
}

template <typename T>
void forward_item(PreciseRoiPool, const Maps<T>& f, const T* box, int64_t n,
                  const PreciseParams<T>& p, int64_t k, int64_t c0, int64_t c1,
                  const Pooled<T>& out) {
  const bool image_ok = n >= 0 && n < f.N;
  const PreciseBox<T> b = precise_box(box, p.scale, p.pooled_h, p.pooled_w);
  std::vector<CellWeights<T>> xs(p.pooled_w);
  for (int64_t pw = 0; pw < p.pooled_w; ++pw) xs[pw].compute(b.start_x, b.bin_w, pw, f.W);
  CellWeights<T> ys;
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    ys.compute(b.start_y, b.bin_h, ph, f.H);
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      for (int64_t c = c0; c < c1; ++c)
        out.at(k, c, ph, pw) = image_ok ? bin_mean((const T*)f.plane(n, c), ys, xs[pw], f.s.h,
                                                   f.s.w)
                                        : (T)0;
    }
  }
}

template <typename T>
void backward_item(PreciseRoiPool, const Maps<T>& grad, const Pooled<T>& grad_out, const T* boxes,
                   const RoisByImage& rois, const PreciseParams<T>& p, int64_t n, int64_t c0,
                   int64_t c1) {
  std::vector<CellWeights<T>> xs(p.pooled_w);
  CellWeights<T> ys;
  for (int64_t r = rois.begin[n]; r < rois.begin[n + 1]; ++r) {
    const int64_t k = rois.order[r];
    const PreciseBox<T> b = precise_box(boxes + 4 * k, p.scale, p.pooled_h, p.pooled_w);
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) xs[pw].compute(b.start_x, b.bin_w, pw, grad.W);
    for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
      ys.compute(b.start_y, b.bin_h, ph, grad.H);
      for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
        const CellWeights<T>& xw = xs[pw];
        for (int64_t c = c0; c < c1; ++c) {
          const T g = grad_out.at(k, c, ph, pw);
          T* plane = grad.plane(n, c);
          for (size_t j = 0; j < ys.w.size(); ++j) {
            T* row = plane + (ys.first + (int64_t)j) * grad.s.h + xw.first * grad.s.w;
            const T g_row = g * ys.w[j];
            for (size_t i = 0; i < xw.w.size(); ++i) row[(int64_t)i * grad.s.w] += g_row * xw.w[i];
          }
        }
      }
    }
  }
}

// The slope segments of one bin along one axis and their weights in the
// derivatives of the bin's mean for its low and high edges (edge_weights).
template <typename T> struct EdgeWeights {
  std::vector<T> lo, hi;
  int64_t first = 0;

  void compute(const CellWeights<T>& cells, T bin, int64_t size) {
    lo.clear();
    hi.clear();
    first = 0;
    if (!(bin > (T)0)) return;
    int64_t last;
    slope_span(cells.lo, cells.hi, size, &first, &last);
    for (int64_t l = first; l < last; ++l) {
      T w_lo, w_hi;
      edge_weights(cells.lo, cells.hi, bin, l, &w_lo, &w_hi);
      lo.push_back(w_lo);
      hi.push_back(w_hi);
    }
  }
};

// The edge-weighted slopes along one line of a plane (element step `step`,
// `size` cells; zero off the map), for the low and the high edge.
template <typename T>
static void slope_sums(const T* line, int64_t step, int64_t size, const EdgeWeights<T>& edges,
                       T* sum_lo, T* sum_hi) {
  *sum_lo = *sum_hi = 0;
  for (size_t j = 0; j < edges.lo.size(); ++j) {
    const int64_t l = edges.first + (int64_t)j;
    const T rise = (l + 1 < size ? line[(l + 1) * step] : (T)0) - (l >= 0 ? line[l * step] : (T)0);
    *sum_lo += edges.lo[j] * rise;
    *sum_hi += edges.hi[j] * rise;
  }
}

// grad_box (x1, y1, x2, y2) of RoI k: per bin, the output gradient times the
// derivatives of the bin's mean for its four edges, summed over channels and
// bins in order, then carried to the box by precise_edge_chain.
template <typename T>
void rois_grad_item(PreciseRoiPool, const Maps<T>& f, const Pooled<T>& grad_out, const T* box,
                    int64_t n, const PreciseParams<T>& p, int64_t k, T* grad_box) {
  for (int j = 0; j < 4; ++j) grad_box[j] = 0;
  if (n < 0 || n >= f.N) return;
  const PreciseBox<T> b = precise_box(box, p.scale, p.pooled_h, p.pooled_w);
  std::vector<CellWeights<T>> xs(p.pooled_w);
  std::vector<EdgeWeights<T>> x_edges(p.pooled_w);
  for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
    xs[pw].compute(b.start_x, b.bin_w, pw, f.W);
    x_edges[pw].compute(xs[pw], b.bin_w, f.W);
  }
  CellWeights<T> ys;
  EdgeWeights<T> y_edges;
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    ys.compute(b.start_y, b.bin_h, ph, f.H);
    y_edges.compute(ys, b.bin_h, f.H);
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      const CellWeights<T>& xw = xs[pw];
      if (ys.w.empty() || xw.w.empty()) continue;  // off the map or zero-size: no gradient
      T sum_top = 0, sum_bottom = 0, sum_left = 0, sum_right = 0;
      for (int64_t c = 0; c < f.C; ++c) {
        const T* plane = f.plane(n, c);
        T d_top = 0, d_bottom = 0, d_left = 0, d_right = 0, lo, hi;
        for (size_t j = 0; j < ys.w.size(); ++j) {  // rows: slopes along x
          slope_sums(plane + (ys.first + (int64_t)j) * f.s.h, f.s.w, f.W, x_edges[pw], &lo, &hi);
          d_left += ys.w[j] * lo;
          d_right += ys.w[j] * hi;
        }
        for (size_t i = 0; i < xw.w.size(); ++i) {  // columns: slopes along y
          slope_sums(plane + (xw.first + (int64_t)i) * f.s.w, f.s.h, f.H, y_edges, &lo, &hi);
          d_top += xw.w[i] * lo;
          d_bottom += xw.w[i] * hi;
        }
        const T g = grad_out.at(k, c, ph, pw);
        sum_top += g * d_top;
        sum_bottom += g * d_bottom;
        sum_left += g * d_left;
        sum_right += g * d_right;
      }
      T d_start, d_end;
      precise_edge_chain(sum_left, sum_right, pw, p.pooled_w, p.scale, &d_start, &d_end);
      grad_box[0] += d_start;
      grad_box[2] += d_end;
      precise_edge_chain(sum_top, sum_bottom, ph, p.pooled_h, p.scale, &d_start, &d_end);
      grad_box[1] += d_start;
      grad_box[3] += d_end;
    }
  }
}

}  // namespace cyroi
