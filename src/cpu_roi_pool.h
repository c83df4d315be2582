// CPU loops of roi_pool (Fast R-CNN max pooling), forward and backward, on
// channel blocks (cpu_common.h): forward runs the channels of a block side
// by side over each bin, branch-free.
#pragma once
#include "../cyroi/kernels/roi_math.h"
#include "cpu_common.h"

namespace cyroi {

template <typename T> struct PoolParams {
  T scale;
  int64_t pooled_h, pooled_w;
};

// A: the argmax's integer type, int32_t (torchvision's) or int64_t (maps of
// more than 2^31 - 1 pixels; cyroi._checks.pool_argmax_dtype).
template <typename T, typename A> struct PoolScratch {
  std::vector<T> best, staged;
  LineVector<T> block;
  std::vector<A> staged_where;
  std::vector<LaneIndex<T>> where;
  std::vector<int64_t> wide_where;  // float maps of more than 2^31 pixels
};

#ifdef CYROI_LINES
// max_of_bin's running maximum after the bin's first element, for channels
// [c0, c0 + L lines) of a dense block, held in registers across the bin.
// Its lines start from best and where as max_of_bin wrote them: starting them
// from the first pixel's line instead (as roi_align's bins do) took 1.13-1.25x
// the time on frcnn_head, for no cause found.
template <typename T, int V, int L>
CYROI_ALWAYS_INLINE void max_of_bin_lines(const ChannelBlock<const T>& in, int64_t h0,
                                          int64_t h1, int64_t w0, int64_t w1, int64_t map_w,
                                          int64_t c0, T* best, LaneIndex<T>* where) {
  GreaterLines<T, V, L> lines(best + c0, where + c0);
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t w = h == h0 ? w0 + 1 : w0; w < w1; ++w) {
      const T* pixel = in.data + h * in.sh + w * in.sw + c0;
      for (int l = 0; l < L; ++l)
        lines.keep(l, load_line<T, V>(pixel + l * lines.lanes), (LaneIndex<T>)(h * map_w + w));
    }
  }
  lines.store(best + c0, where + c0);
}
#endif

// First maximum of the (non-empty) bin [h0, h1) x [w0, w1) per channel, in
// row-major order: a later element wins only if strictly greater;
// where = h * W + w.
template <int V, typename T, typename Index, bool Dense>
CYROI_ALWAYS_INLINE void max_of_bin(const ChannelBlock<const T>& in, int64_t h0, int64_t h1,
                                    int64_t w0, int64_t w1, int64_t map_w, T* best,
                                    Index* where) {
  const int64_t sc = Dense ? 1 : in.sc, width = in.width;
  const T* first = in.data + h0 * in.sh + w0 * in.sw;
  for (int64_t c = 0; c < width; ++c) {
    best[c] = first[c * sc];
    where[c] = (Index)(h0 * map_w + w0);
  }
  int64_t c0 = 0;
#ifdef CYROI_LINES
  constexpr int widest = kWidestChunk<V, 2>;  // a value and an index per lane
  if (Dense && std::is_same<Index, LaneIndex<T>>::value)
    c0 = for_each_lines<T, V, widest>(0, width, [&](int64_t c, auto lines) CYROI_INLINE_LAMBDA {
      max_of_bin_lines<T, V, lines()>(in, h0, h1, w0, w1, map_w, c, best, (LaneIndex<T>*)where);
    });
#endif
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t w = h == h0 ? w0 + 1 : w0; w < w1; ++w) {
      const T* pixel = in.data + h * in.sh + w * in.sw;
      const Index flat = (Index)(h * map_w + w);
      for (int64_t c = c0; c < width; ++c) keep_greater(pixel[c * sc], flat, best[c], where[c]);
    }
  }
}

// The bins of one RoI on a channel block, with `s` sized (pool_roi_forward),
// compiled for target V.
template <int V, typename T, typename A, typename Index, bool Dense>
CYROI_ALWAYS_INLINE void pool_bins_forward(const ChannelBlock<const T>& in, const T* box,
                                           const PoolParams<T>& p, int64_t height,
                                           int64_t width, int64_t k, int64_t c0,
                                           const Pooled<T>& out, const Pooled<A>& argmax,
                                           PoolScratch<T, A>& s, Index* where,
                                           const Prefetch& next) {
  const PoolBox<T> b = pool_box(box, p.scale, p.pooled_h, p.pooled_w, (int64_t)1);
  const int64_t channels = in.width;
  const bool staged = staged_forward(out, channels);
  const int64_t out_sc = staged ? 1 : out.s.c, argmax_sc = staged ? 1 : argmax.s.c;
  T* best = s.best.data();
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    int64_t h0, h1;
    pool_bin(b.bin_h, b.start_y, ph, height, &h0, &h1);
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      next.part(ph * p.pooled_w + pw, p.pooled_h * p.pooled_w);
      int64_t w0, w1;
      pool_bin(b.bin_w, b.start_x, pw, width, &w0, &w1);
      const int64_t at = (ph * p.pooled_w + pw) * channels;
      T* o = staged ? s.staged.data() + at : &out.at(k, c0, ph, pw);
      A* a = !argmax.data ? nullptr
                   : staged     ? s.staged_where.data() + at
                                : &argmax.at(k, c0, ph, pw);
      const bool empty = h1 <= h0 || w1 <= w0;
      if (!empty) max_of_bin<V, T, Index, Dense>(in, h0, h1, w0, w1, width, best, where);
      for (int64_t c = 0; c < channels; ++c) o[c * out_sc] = empty ? (T)0 : best[c];
      if (a)
        for (int64_t c = 0; c < channels; ++c) a[c * argmax_sc] = empty ? (A)-1 : (A)where[c];
    }
  }
  if (staged) store_bins(s.staged.data(), channels, out, k, c0);
  if (staged && argmax.data) store_bins(s.staged_where.data(), channels, argmax, k, c0);
}

template <typename T, typename A, typename Index, bool Dense>
void pool_roi_forward(const ChannelBlock<const T>& in, const T* box, const PoolParams<T>& p,
                      int64_t height, int64_t width, int64_t k, int64_t c0, const Pooled<T>& out,
                      const Pooled<A>& argmax, PoolScratch<T, A>& s,
                      std::vector<Index>& where, const Prefetch& next) {
  const int64_t channels = in.width, bins = p.pooled_h * p.pooled_w;
  s.best.resize(channels);
  where.resize(channels);
  const bool staged = staged_forward(out, channels);
  if (staged) s.staged.resize(bins * channels);
  if (staged && argmax.data) s.staged_where.resize(bins * channels);
  on_simd([&](auto simd) CYROI_INLINE_LAMBDA {
    pool_bins_forward<simd(), T, A, Index, Dense>(in, box, p, height, width, k, c0, out, argmax,
                                                  s, where.data(), next);
  });
}

// Feature reads per channel, roughly: the RoIs' areas clipped to the map.
template <typename T>
double pool_reads_per_channel(const T* boxes, int64_t rois, const PoolParams<T>& p,
                              int64_t height, int64_t width) {
  double reads = 0;
  for (int64_t k = 0; k < rois; ++k) {
    const PoolBox<T> b = pool_box(boxes + 4 * k, p.scale, p.pooled_h, p.pooled_w, (int64_t)1);
    reads += std::min((double)b.bin_h * (double)p.pooled_h + 1.0, (double)height) *
             std::min((double)b.bin_w * (double)p.pooled_w + 1.0, (double)width);
  }
  return reads;
}

template <typename T, typename A>
void roi_pool_forward(const Maps<T>& f, const T* boxes, const int64_t* batch, int64_t rois,
                      const PoolParams<T>& p, const Pooled<T>& out, const Pooled<A>& argmax,
                      int threads) {
  const double reads = pool_reads_per_channel(boxes, rois, p, f.H, f.W);
  const bool narrow = sizeof(LaneIndex<T>) == 8 || f.H * f.W <= INT32_MAX;
  ImageGroups groups(batch, rois, f.N);
  groups.by_position(boxes, (double)p.scale);
  forward_blocks<T, PoolScratch<T, A>>(
      f, batch, rois, groups, worth_channels_last(f, reads), threads, reads * (double)f.C, out,
      argmax,
      [&](const ChannelBlock<const T>& in, int64_t k, int64_t next, int64_t c0,
          PoolScratch<T, A>& s) {
        const T* box = boxes + 4 * k;
        const Prefetch next_out = next_written(out, next, c0, in.width);
        const bool dense = in.sc == 1 || in.width == 1;
        if (!narrow && dense)
          pool_roi_forward<T, A, int64_t, true>(in, box, p, f.H, f.W, k, c0, out, argmax, s,
                                                s.wide_where, next_out);
        else if (!narrow)
          pool_roi_forward<T, A, int64_t, false>(in, box, p, f.H, f.W, k, c0, out, argmax, s,
                                                 s.wide_where, next_out);
        else if (dense)
          pool_roi_forward<T, A, LaneIndex<T>, true>(in, box, p, f.H, f.W, k, c0, out, argmax,
                                                     s, s.where, next_out);
        else
          pool_roi_forward<T, A, LaneIndex<T>, false>(in, box, p, f.H, f.W, k, c0, out, argmax,
                                                      s, s.where, next_out);
      });
}

// Largest gradient plane pool_roi_backward scatters into two channels at a
// time (many_rois float64, 80 KB planes: 0.93x the time of one at a time).
static const int64_t kPairedPlaneBytes = 128 << 10;

// Adds each output gradient at its argmax into the gradient block; argmax
// values outside the plane (a hand-made argmax) are ignored, not followed.
// NCHW runs channel by channel over the bins, reading in place and asking
// for the next RoI's inputs as it goes (frcnn_head, many_rois: 0.8-0.9x the
// time); NHWC runs bin by bin over adjacent channels, asking for the next
// RoI's inputs as it goes too (frcnn_head, many_rois 0.67-0.74x, mask_head
// 0.88-0.92x), reading them in place (copying each RoI's first, to ask for
// all its lines at once, took 1.27x the time on frcnn_head, 1.04-1.12x on
// mask_head). Each element sums in RoI then bin order.
template <typename T, typename A>
void pool_roi_backward(const ChannelBlock<T>& out, int64_t height, int64_t width,
                       const Pooled<T>& grad_out, const Pooled<A>& argmax, int64_t k,
                       int64_t next, int64_t c0, PoolScratch<T, A>& s) {
  const int64_t plane_size = height * width, channels = out.width;
  const int64_t bins = grad_out.PH * grad_out.PW;
  const int64_t sh = out.sh, sw = out.sw;
  const bool flat_rows = sh == width * sw;  // element = where * sw
  // Unsigned: a hand-made argmax may hold any int64; locals, so that the
  // loop does not reload the block's fields after every store.
  auto add = [=](T* plane, int64_t where, T g) {
    if ((uint64_t)where >= (uint64_t)plane_size) return;
    plane[flat_rows ? where * sw : (where / width) * sh + (where % width) * sw] += g;
  };
  if (grad_out.s.c != 1) {
    const Prefetch next_grad(grad_out, next, c0, channels);
    const Prefetch next_argmax(argmax, next, c0, channels);
    // Two channels at a time where planes are small: a plane's adds to the
    // pixel that several bins share wait on each other, and the other
    // plane's adds fill the wait (frcnn_head 0.85x, many_rois 0.87x the
    // time); on planes as large as mask_head's (217 KB) it took 1.17x.
    const bool flat_bins = grad_out.s.w == 1 && grad_out.s.h == grad_out.PW &&
                           argmax.s.w == 1 && argmax.s.h == argmax.PW;
    int64_t c = 0;
    if (flat_bins && plane_size * (int64_t)sizeof(T) <= kPairedPlaneBytes)
      for (; c + 2 <= channels; c += 2) {
        for (int64_t j = c; j < c + 2; ++j) {
          next_grad.part(j, channels);
          next_argmax.part(j, channels);
        }
        T* plane = out.data + c * out.sc;
        const T* g = &grad_out.at(k, c0 + c, 0, 0);
        const A* a = &argmax.at(k, c0 + c, 0, 0);
        for (int64_t b = 0; b < bins; ++b) {
          add(plane, a[b], g[b]);
          add(plane + out.sc, a[argmax.s.c + b], g[grad_out.s.c + b]);
        }
      }
    for (; c < channels; ++c) {
      next_grad.part(c, channels);
      next_argmax.part(c, channels);
      T* plane = out.data + c * out.sc;
      const T* g = &grad_out.at(k, c0 + c, 0, 0);
      const A* a = &argmax.at(k, c0 + c, 0, 0);
      for (int64_t ph = 0; ph < grad_out.PH; ++ph)
        for (int64_t pw = 0; pw < grad_out.PW; ++pw)
          add(plane, a[ph * argmax.s.h + pw * argmax.s.w],
              g[ph * grad_out.s.h + pw * grad_out.s.w]);
    }
    return;
  }
  // The output gradients' channels are adjacent here; the argmax's may not be.
  if (argmax.s.c != 1) {
    s.staged_where.resize(bins * channels);
    load_bins(argmax, k, c0, channels, s.staged_where.data());
  }
  const Prefetch next_grad(grad_out, next, c0, channels);
  const Prefetch next_argmax(argmax, next, c0, channels);
  for (int64_t ph = 0; ph < grad_out.PH; ++ph)
    for (int64_t pw = 0; pw < grad_out.PW; ++pw) {
      const int64_t b = ph * grad_out.PW + pw;
      next_grad.part(b, bins);
      next_argmax.part(b, bins);
      const T* g = &grad_out.at(k, c0, ph, pw);
      const A* a = argmax.s.c == 1 ? &argmax.at(k, c0, ph, pw) : &s.staged_where[b * channels];
      for (int64_t c = 0; c < channels; ++c) add(out.data + c * out.sc, a[c], g[c]);
    }
}

template <typename T, typename A>
void roi_pool_backward(const Maps<T>& grad, const Pooled<T>& grad_out, const int64_t* batch,
                       const Pooled<A>& argmax, bool zero_first, int threads) {
  const double work = (double)grad_out.K * grad_out.C * grad_out.PH * grad_out.PW;
  backward_blocks<T, PoolScratch<T, A>>(
      grad, batch, grad_out.K, false, zero_first, threads, work,
      [&](const ChannelBlock<T>& out, int64_t k, int64_t next, int64_t c0,
          PoolScratch<T, A>& s) {
        pool_roi_backward(out, grad.H, grad.W, grad_out, argmax, k, next, c0, s);
      });
}

}  // namespace cyroi
