// CPU loops of roi_align (modes "avg" and "max"), forward and backward.
//
// Work runs on channel blocks (cpu_common.h). For each RoI and bin, the
// samples are listed once per block, in the SPEC's row-major order with
// their taps, and every channel of the block runs over that list: the
// channel loop is innermost, branch-free and vectorised, and each channel
// sums its samples in the same order as a scalar loop would.
#pragma once
#include "../cyroi/kernels/roi_math.h"
#include "cpu_common.h"

#include <limits>

namespace cyroi {

template <typename T> struct AlignParams {
  T scale;
  int64_t pooled_h, pooled_w, sampling_ratio;
  bool aligned, max_mode;
};

// The in-map samples of every bin of one RoI along one axis. Bin p's samples
// inside [-1, size] are the index range [first[p], first[p] + count(p)), with
// taps[begin[p] + j] belonging to sample first[p] + j; the others read 0.
template <typename T> struct AxisGrid {
  std::vector<AxisTap<T>> taps;
  std::vector<int64_t> begin, first;

  void compute(T start, T bin, int64_t pooled, int64_t grid, int64_t size) {
    first.clear();
    begin.assign(1, 0);
    for (int64_t p = 0; p < pooled; ++p) {
      int64_t lo, hi, first_inside = 0, inside = 0;
      candidate_samples(start, bin, p, grid, size, &lo, &hi);
      // Room for every candidate, filled through a pointer: push_back's
      // stores could alias the vectors' own bookkeeping, and reloading it
      // took two fifths of this loop's time (443 against 269 ns per
      // mask_head RoI). A hopeless window (2^31 samples on the map) fails
      // at once instead of growing through memory first. The vector only
      // grows (begin.back() taps are in use): shrinking it made every RoI
      // clear its room again.
      const size_t at = (size_t)begin.back(), room = at + (size_t)(hi - lo);
      if (taps.size() < room) taps.resize(room);
      AxisTap<T>* t = taps.data() + at;
      for (int64_t i = lo; i < hi; ++i)
        if (axis_tap(sample_coord(start, bin, p, i, grid), size, t + inside))
          if (inside++ == 0) first_inside = i;
      first.push_back(first_inside);
      begin.push_back((int64_t)at + inside);
    }
  }
  int64_t count(int64_t p) const { return begin[p + 1] - begin[p]; }
  const AxisTap<T>* of(int64_t p) const { return taps.data() + begin[p]; }

  // The tap of sample i of bin p (any i: a sample outside the listed range is
  // tested afresh); false if it reads 0.
  bool tap(int64_t p, int64_t i, T start, T bin, int64_t grid, int64_t size, AxisTap<T>* t) const {
    if (i >= first[p] && i < first[p] + count(p)) {
      *t = of(p)[i - first[p]];
      return true;
    }
    return axis_tap(sample_coord(start, bin, p, i, grid), size, t);
  }
};

// One RoI's bin geometry and its in-map samples along both axes.
template <typename T> struct RoiSamples {
  AlignBox<T> box;
  AxisGrid<T> ys, xs;

  void compute(const T* coords, const AlignParams<T>& p, int64_t height, int64_t width) {
    box = align_box(coords, p.scale, p.aligned, p.pooled_h, p.pooled_w, p.sampling_ratio);
    ys.compute(box.start_y, box.bin_h, p.pooled_h, box.grid_h, height);
    xs.compute(box.start_x, box.bin_w, p.pooled_w, box.grid_w, width);
  }
  // More in-map samples than any one bin has.
  double largest_bin() const {
    int64_t most_y = 0, most_x = 0;
    for (size_t p = 0; p + 1 < ys.begin.size(); ++p) most_y = std::max(most_y, ys.count(p));
    for (size_t p = 0; p + 1 < xs.begin.size(); ++p) most_x = std::max(most_x, xs.count(p));
    return (double)most_y * (double)most_x;
  }
};

// A run of consecutive samples of one bin, with their taps in a channel
// block and their indices iy * grid_w + ix in the bin's grid.
template <typename T> struct SampleBatch {
  static constexpr int64_t kCapacity = 64;
  Taps<T> taps[kCapacity];
  int64_t index[kCapacity];
  int64_t size;
};

// Bin (ph, pw)'s in-map samples: ny rows by nx columns, ordinal s = jy * nx + ix
// in row-major (the SPEC's) order.
template <typename T> struct BinSamples {
  const AxisTap<T>* ty;
  const AxisTap<T>* tx;
  int64_t ny, nx, first_y, first_x, grid_w;

  BinSamples(const RoiSamples<T>& r, int64_t ph, int64_t pw)
      : ty(r.ys.of(ph)), tx(r.xs.of(pw)), ny(r.ys.count(ph)), nx(r.xs.count(pw)),
        first_y(r.ys.first[ph]), first_x(r.xs.first[pw]), grid_w(r.box.grid_w) {}

  int64_t size() const { return ny * nx; }
  // The grid index of the sample in row jy, column ix of the bin's listing.
  int64_t index_at(int64_t jy, int64_t ix) const { return (first_y + jy) * grid_w + first_x + ix; }
  int64_t index(int64_t s) const { return index_at(s / nx, s % nx); }

  // Fills `b` with samples [s, s + b.size), as many as fit.
  void fill(int64_t s, int64_t stride_h, int64_t stride_w, SampleBatch<T>& b) const {
    b.size = std::min(SampleBatch<T>::kCapacity, size() - s);
    int64_t jy = s == 0 ? 0 : s / nx, ix = s == 0 ? 0 : s % nx;
    for (int64_t j = 0; j < b.size; ++j) {
      b.taps[j] = combine_taps(ty[jy], tx[ix], stride_h, stride_w);
      b.index[j] = index_at(jy, ix);
      if (++ix == nx) {
        ix = 0;
        ++jy;
      }
    }
  }
};

template <typename T> struct AlignScratch {
  RoiSamples<T> roi;
  SampleBatch<T> batch;
  std::vector<T> acc, staged;
  LineVector<T> block;
  std::vector<LaneIndex<T>> ordinal, places, loaded;
  std::vector<int64_t> firsts, totals;
  std::vector<int64_t> wide_ordinal;  // float bins of more than 2^31 samples

  // Sizes every buffer the bin loops of `roi` use on `channels` channels
  // (with_places: load_places's).
  void prepare(int64_t channels, int64_t bins, bool with_staged, bool with_places = false) {
    acc.resize(channels);
    ordinal.resize(channels);
    if (sizeof(LaneIndex<T>) < 8 && roi.largest_bin() > (double)INT32_MAX)
      wide_ordinal.resize(channels);
    if (with_staged) staged.resize(bins * channels);
    if (with_places) {
      places.resize(bins * channels);
      loaded.resize(bins * channels);
      firsts.resize(bins);
      totals.resize(bins);
    }
  }
};

// A: the argmax's integer type, int32_t or int64_t (cyroi._checks.align_argmax_dtype).
template <typename T, typename A> struct AlignForwardScratch : AlignScratch<T> {
  std::vector<A> staged_where;
};

// ---------------------------------------------------------------- forward

#ifdef CYROI_LINES
// tap_value of one sample on channels [c, c + V / sizeof(T)) of a dense block.
template <typename T, int V>
CYROI_ALWAYS_INLINE typename Line<T, V>::type line_tap_value(const T* data, const Taps<T>& t) {
  return t.weight[0] * load_line<T, V>(data + t.offset[0]) +
         t.weight[1] * load_line<T, V>(data + t.offset[1]) +
         t.weight[2] * load_line<T, V>(data + t.offset[2]) +
         t.weight[3] * load_line<T, V>(data + t.offset[3]);
}

// out[c] = the average of the bin's samples, summed in order, for channels
// [c0, c0 + L lines of V bytes) of a dense block and adjacent outputs, and
// those of Q quarter cache lines from channels quarter[0..Q) (LineSpan):
// the sums stay in registers across the samples (through memory, each
// sample waits on the last one's store) and go out averaged (through a
// buffer, its loads wait on the stores: frcnn_head 0.94x, float64
// 0.83-0.89x the time), and each sample's taps are made as it comes
// (listing them first, as the other loops do, costs their stores and loads
// on narrow blocks).
template <typename T, int V, int L, int Q = 0>
CYROI_ALWAYS_INLINE void bin_averages_lines(const ChannelBlock<const T>& in,
                                            const BinSamples<T>& bin, const Divisor<T>& count,
                                            int64_t c0, T* out,
                                            const int64_t* quarter = nullptr) {
  constexpr int64_t lanes = Line<T, V>::lanes;
  typename Line<T, V>::type sum[L > 0 ? L : 1];
  typename Line<T, 16>::type part[Q > 0 ? Q : 1];
  for (int l = 0; l < L; ++l) sum[l] = typename Line<T, V>::type{};
  for (int q = 0; q < Q; ++q) part[q] = typename Line<T, 16>::type{};
  for (int64_t jy = 0; jy < bin.ny; ++jy)
    for (int64_t ix = 0; ix < bin.nx; ++ix) {
      const Taps<T> t = combine_taps(bin.ty[jy], bin.tx[ix], in.sh, in.sw);
      for (int l = 0; l < L; ++l) sum[l] += line_tap_value<T, V>(in.data + c0 + l * lanes, t);
      for (int q = 0; q < Q; ++q) part[q] += line_tap_value<T, 16>(in.data + quarter[q], t);
    }
  for (int l = 0; l < L; ++l)
    store_line<T, V>(out + c0 + l * lanes,
                     count.exact_inverse ? sum[l] * count.inverse : sum[l] / count.value);
  for (int q = 0; q < Q; ++q)
    store_line<T, 16>(out + quarter[q],
                      count.exact_inverse ? part[q] * count.inverse : part[q] / count.value);
}

// The bin's first maximum, in order, for channels [c0, c0 + L lines) of a
// dense block, as bin_averages_lines runs: best[c] and where[c], the winner's
// index in the bin's grid. The bin has samples.
template <typename T, int V, int L>
CYROI_ALWAYS_INLINE void bin_maxima_lines(const ChannelBlock<const T>& in,
                                          const BinSamples<T>& bin, int64_t c0, T* best,
                                          LaneIndex<T>* where) {
  constexpr int64_t lanes = Line<T, V>::lanes;
  const Taps<T> first = combine_taps(bin.ty[0], bin.tx[0], in.sh, in.sw);
  GreaterLines<T, V, L> lines;
  for (int l = 0; l < L; ++l)
    lines.start(l, line_tap_value<T, V>(in.data + c0 + l * lanes, first),
                (LaneIndex<T>)bin.index_at(0, 0));
  for (int64_t jy = 0; jy < bin.ny; ++jy)
    for (int64_t ix = jy == 0 ? 1 : 0; ix < bin.nx; ++ix) {
      const Taps<T> t = combine_taps(bin.ty[jy], bin.tx[ix], in.sh, in.sw);
      for (int l = 0; l < L; ++l)
        lines.keep(l, line_tap_value<T, V>(in.data + c0 + l * lanes, t),
                   (LaneIndex<T>)bin.index_at(jy, ix));
    }
  lines.store(best + c0, where + c0);
}
#endif

// acc[c] += v(sample) for the bin's samples in order, channels [c0, width),
// each sample's taps made as it comes.
template <typename T, bool Dense>
CYROI_ALWAYS_INLINE void add_samples(const ChannelBlock<const T>& in, const BinSamples<T>& bin,
                                     int64_t c0, T* acc) {
  const int64_t sc = Dense ? 1 : in.sc, width = in.width;
  for (int64_t jy = 0; jy < bin.ny; ++jy)
    for (int64_t ix = 0; ix < bin.nx; ++ix) {
      const Taps<T> t = combine_taps(bin.ty[jy], bin.tx[ix], in.sh, in.sw);
      for (int64_t c = c0; c < width; ++c) acc[c] += tap_value<T, T>(in.data + c * sc, t);
    }
}

// Running first maximum, channels [c0, width): a later sample wins only if
// strictly greater.
template <typename T, typename Ordinal, bool Dense>
CYROI_ALWAYS_INLINE void max_samples(const ChannelBlock<const T>& in, const SampleBatch<T>& b,
                                     int64_t j0, int64_t s0, int64_t c0, T* best,
                                     Ordinal* ordinal) {
  const int64_t sc = Dense ? 1 : in.sc, width = in.width;
  for (int64_t j = j0; j < b.size; ++j) {
    const Taps<T> t = b.taps[j];
    const Ordinal s = (Ordinal)(s0 + j);
    for (int64_t c = c0; c < width; ++c)
      keep_greater(tap_value<T, T>(in.data + c * sc, t), s, best[c], ordinal[c]);
  }
}

template <int V, typename T, bool Dense>
CYROI_ALWAYS_INLINE void average_bin(const ChannelBlock<const T>& in, const BinSamples<T>& bin,
                                     const Divisor<T>& count, const LineSpan<T>& span,
                                     AlignScratch<T>& s, T* out, int64_t out_sc) {
  const int64_t width = in.width;
  T* acc = s.acc.data();
  int64_t c0 = 0;
#ifdef CYROI_LINES
  const auto lines = [&](int64_t c, auto chunk) CYROI_INLINE_LAMBDA {
    bin_averages_lines<T, V, chunk()>(in, bin, count, c, out);
  };
  if (Dense && out_sc == 1 && span.split) {
    for_lines_exactly<T, V>(span.begin, span.end, lines);
    // A walk of their own: taken along with the last lines' walk they
    // cost 1.13x the time of a block on a line, against 1.05x (frcnn_head).
    bin_averages_lines<T, V, 0, 4>(in, bin, count, 0, out, span.quarter);
    return;
  }
  if (Dense && out_sc == 1) c0 = for_each_lines<T, V>(0, width, lines);
#endif
  if (c0 == width) return;
  for (int64_t c = c0; c < width; ++c) acc[c] = 0;
  add_samples<T, Dense>(in, bin, c0, acc);
  if (count.exact_inverse)
    for (int64_t c = c0; c < width; ++c) out[c * out_sc] = acc[c] * count.inverse;
  else
    for (int64_t c = c0; c < width; ++c) out[c * out_sc] = acc[c] / count.value;
}

// mode "max": the first maximum over the bin's samples, where the samples
// outside the map read 0 and the first of them stands for all.
template <int V, typename T, typename Ordinal, bool Dense, typename A>
CYROI_ALWAYS_INLINE void max_bin(const ChannelBlock<const T>& in, const BinSamples<T>& bin,
                                 const AlignBox<T>& box, Ordinal* ordinal, AlignScratch<T>& s,
                                 T* out, int64_t out_sc, A* where_out, int64_t where_sc) {
  const int64_t width = in.width, sc = Dense ? 1 : in.sc;
  const int64_t total = bin.size();
  T* best = s.acc.data();
  // Channels [0, c0) end with their winners' grid indices in `ordinal`, the
  // others with their places in the bin's list of samples.
  int64_t c0 = 0;
#ifdef CYROI_LINES
  constexpr int widest = kWidestChunk<V, 2>;  // a value and an index per lane
  if (Dense && total > 0 && std::is_same<Ordinal, LaneIndex<T>>::value &&
      (double)box.grid_h * (double)box.grid_w <=
          (double)std::numeric_limits<LaneIndex<T>>::max())
    c0 = for_each_lines<T, V, widest>(0, width, [&](int64_t c, auto lines) CYROI_INLINE_LAMBDA {
      bin_maxima_lines<T, V, lines()>(in, bin, c, best, (LaneIndex<T>*)ordinal);
    });
#endif
  for (int64_t first = 0; c0 < width && first < total; first += s.batch.size) {
    bin.fill(first, in.sh, in.sw, s.batch);
    int64_t j0 = 0;
    if (first == 0) {
      for (int64_t c = c0; c < width; ++c) {
        best[c] = tap_value<T, T>(in.data + c * sc, s.batch.taps[0]);
        ordinal[c] = 0;
      }
      j0 = 1;
    }
    max_samples<T, Ordinal, Dense>(in, s.batch, j0, first, c0, best, ordinal);
  }
  const bool listed = total <= SampleBatch<T>::kCapacity;  // s.batch holds every index
  const auto winner = [&](int64_t c) -> int64_t {
    return c < c0 ? (int64_t)ordinal[c]
           : listed ? s.batch.index[ordinal[c]]
                    : bin.index(ordinal[c]);
  };
  const int64_t outside = first_outside_sample(bin.first_y, bin.first_y + bin.ny, bin.first_x,
                                               bin.first_x + bin.nx, box.grid_h, box.grid_w);
  if (outside < 0 && total > 0) {  // every sample inside: the running maximum stands
    for (int64_t c = 0; c < width; ++c) out[c * out_sc] = best[c];
    if (where_out)
      for (int64_t c = 0; c < width; ++c) where_out[c * where_sc] = (A)winner(c);
    return;
  }
  for (int64_t c = 0; c < width; ++c) {
    int64_t where = total == 0 ? -1 : winner(c);
    T value = where < 0 ? (T)0 : best[c];
    if (outside >= 0 && (where < 0 || (T)0 > value || ((T)0 == value && outside < where))) {
      value = 0;
      where = outside;
    }
    out[c * out_sc] = value;
    if (where_out) where_out[c * where_sc] = (A)where;
  }
}

// The bins of one RoI on a channel block, with `s` prepared
// (align_roi_forward), compiled for target V.
template <int V, typename T, typename A, bool Dense>
CYROI_ALWAYS_INLINE void align_bins_forward(const ChannelBlock<const T>& in,
                                            const AlignParams<T>& p, int64_t k, int64_t c0,
                                            const Pooled<T>& out, const Pooled<A>& argmax,
                                            AlignForwardScratch<T, A>& s, const Prefetch& next) {
  const int64_t channels = in.width;
  const bool staged = staged_forward(out, channels);
  const Divisor<T> count(s.roi.box.count);
  const LineSpan<T> span(in);
  const int64_t out_sc = staged ? 1 : out.s.c, argmax_sc = staged ? 1 : argmax.s.c;
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      next.part(ph * p.pooled_w + pw, p.pooled_h * p.pooled_w);
      const BinSamples<T> bin(s.roi, ph, pw);
      const int64_t at = (ph * p.pooled_w + pw) * channels;
      T* o = staged ? s.staged.data() + at : &out.at(k, c0, ph, pw);
      A* a = !argmax.data ? nullptr
             : staged     ? s.staged_where.data() + at
                          : &argmax.at(k, c0, ph, pw);
      if (!p.max_mode)
        average_bin<V, T, Dense>(in, bin, count, span, s, o, out_sc);
      else if (sizeof(LaneIndex<T>) == 8 || bin.size() <= INT32_MAX)
        max_bin<V, T, LaneIndex<T>, Dense>(in, bin, s.roi.box, s.ordinal.data(), s, o, out_sc,
                                           a, argmax_sc);
      else
        max_bin<V, T, int64_t, Dense>(in, bin, s.roi.box, s.wide_ordinal.data(), s, o, out_sc,
                                      a, argmax_sc);
    }
  }
  if (staged) store_bins(s.staged.data(), channels, out, k, c0);
  if (staged && argmax.data) store_bins(s.staged_where.data(), channels, argmax, k, c0);
}

template <typename T, typename A, bool Dense>
void align_roi_forward(const ChannelBlock<const T>& in, const T* box, const AlignParams<T>& p,
                       int64_t height, int64_t width, int64_t k, int64_t c0,
                       const Pooled<T>& out, const Pooled<A>& argmax,
                       AlignForwardScratch<T, A>& s, int64_t next_k = -1) {
  s.roi.compute(box, p, height, width);
  const int64_t bins = p.pooled_h * p.pooled_w;
  const bool staged = staged_forward(out, in.width);
  s.prepare(in.width, bins, staged);
  if (staged && argmax.data) s.staged_where.resize(bins * in.width);
  const Prefetch next = next_written(out, next_k, c0, in.width);
  on_simd([&](auto simd) CYROI_INLINE_LAMBDA {
    align_bins_forward<simd(), T, A, Dense>(in, p, k, c0, out, argmax, s, next);
  });
}

// Feature reads per channel a call makes, roughly: what the channels-last
// copy and the thread count are weighed against.
template <typename T>
double align_reads_per_channel(const T* boxes, int64_t rois, const AlignParams<T>& p,
                               int64_t height, int64_t width) {
  double reads = 0;
  for (int64_t k = 0; k < rois; ++k) {
    const AlignBox<T> b =
        align_box(boxes + 4 * k, p.scale, p.aligned, p.pooled_h, p.pooled_w, p.sampling_ratio);
    const double ny = (double)p.pooled_h * (double)b.grid_h;
    const double nx = (double)p.pooled_w * (double)b.grid_w;
    const double span_y = fabs((double)b.bin_h) * (double)p.pooled_h;
    const double span_x = fabs((double)b.bin_w) * (double)p.pooled_w;
    reads += 4.0 * (span_y > height + 2 ? ny * (height + 2) / span_y : ny) *
             (span_x > width + 2 ? nx * (width + 2) / span_x : nx);
  }
  return reads;
}

// A int32_t only where every sample index fits (a fixed sampling_ratio).
template <typename T, typename A>
void roi_align_forward(const Maps<T>& f, const T* boxes, const int64_t* batch, int64_t rois,
                       const AlignParams<T>& p, const Pooled<T>& out, const Pooled<A>& argmax,
                       int threads) {
  const double reads = align_reads_per_channel(boxes, rois, p, f.H, f.W);
  ImageGroups groups(batch, rois, f.N);
  groups.by_position(boxes, (double)p.scale);
  forward_blocks<T, AlignForwardScratch<T, A>>(
      f, batch, rois, groups, worth_channels_last(f, reads), threads, reads * (double)f.C, out,
      argmax,
      [&](const ChannelBlock<const T>& in, int64_t k, int64_t next, int64_t c0,
          AlignForwardScratch<T, A>& s) {
        if (in.sc == 1 || in.width == 1)
          align_roi_forward<T, A, true>(in, boxes + 4 * k, p, f.H, f.W, k, c0, out, argmax, s,
                                        next);
        else
          align_roi_forward<T, A, false>(in, boxes + 4 * k, p, f.H, f.W, k, c0, out, argmax, s,
                                         next);
      });
}

// One (RoI, channel block) work item reading the features in place: the
// entry for loops that choose their own items (multiscale_roi_align).
template <typename T>
void roi_align_forward_item(const Maps<T>& f, const T* box, int64_t n, const AlignParams<T>& p,
                            int64_t k, int64_t c0, int64_t c1, const Pooled<T>& out,
                            const Pooled<int64_t>& argmax) {
  if (n < 0 || n >= f.N) return write_empty_rois(out, argmax, k, c0, c1 - c0);
  AlignForwardScratch<T, int64_t> s;
  const ChannelBlock<const T> in{f.plane(n, c0), f.s.h, f.s.w, f.s.c, c1 - c0};
  if (in.sc == 1 || in.width == 1)
    align_roi_forward<T, int64_t, true>(in, box, p, f.H, f.W, k, c0, out, argmax, s);
  else
    align_roi_forward<T, int64_t, false>(in, box, p, f.H, f.W, k, c0, out, argmax, s);
}

// --------------------------------------------------------------- backward

#ifdef CYROI_LINES
// dst += share(l, weight) for each tap of one sample, in tap order, on
// channels [c0, c0 + L lines of V bytes) of a dense block.
template <typename T, int V, int L, typename Share>
CYROI_ALWAYS_INLINE void add_to_taps_lines(T* data, const Taps<T>& t, int64_t c0, Share&& share) {
  constexpr int64_t lanes = Line<T, V>::lanes;
  for (int q = 0; q < 4; ++q) {
    T* dst = data + t.offset[q] + c0;
    for (int l = 0; l < L; ++l)
      store_line<T, V>(dst + l * lanes, load_line<T, V>(dst + l * lanes) + share(l, t.weight[q]));
  }
}

// scatter_samples over a whole bin, channels [c0, c0 + L lines) of a dense
// block: the output gradients stay in registers (the scalar loop reloads
// them for every tap, as the taps' stores might alias them).
template <typename T, int V, int L, bool ExactInverse>
CYROI_ALWAYS_INLINE void scatter_bin_lines(const ChannelBlock<T>& out, const BinSamples<T>& bin,
                                           const T* g, const Divisor<T>& count, int64_t c0) {
  constexpr int64_t lanes = Line<T, V>::lanes;
  typename Line<T, V>::type grad[L];
  for (int l = 0; l < L; ++l) grad[l] = load_line<T, V>(g + c0 + l * lanes);
  const auto share = [&](int l, T weight) CYROI_INLINE_LAMBDA {
    const typename Line<T, V>::type part = grad[l] * weight;
    return ExactInverse ? part * count.inverse : part / count.value;
  };
  for (int64_t jy = 0; jy < bin.ny; ++jy)
    for (int64_t ix = 0; ix < bin.nx; ++ix)
      add_to_taps_lines<T, V, L>(out.data, combine_taps(bin.ty[jy], bin.tx[ix], out.sh, out.sw),
                                 c0, share);
}
#endif

// Adds g[c] * weight / count to each tap of each sample of the batch, in
// sample then tap order, channels [c0, width).
template <typename T, bool Dense, bool ExactInverse>
CYROI_ALWAYS_INLINE void scatter_samples(const ChannelBlock<T>& out, const SampleBatch<T>& b,
                                         const T* g, const Divisor<T>& count, int64_t c0) {
  const int64_t sc = Dense ? 1 : out.sc, width = out.width;
  for (int64_t j = 0; j < b.size; ++j) {
    for (int q = 0; q < 4; ++q) {
      T* dst = out.data + b.taps[j].offset[q];
      const T weight = b.taps[j].weight[q];
      for (int64_t c = c0; c < width; ++c) {
        if (ExactInverse)
          dst[c * sc] += g[c] * weight * count.inverse;
        else
          dst[c * sc] += g[c] * weight / count.value;
      }
    }
  }
}

#ifdef CYROI_LINES
// scatter_winners' pass over every listed sample of a bin (whole grid rows,
// the first with place `first`) on channels [c0, c0 + L lines) of a dense
// block: each sample's share, g where it won and +0 elsewhere, is chosen
// once for its four taps.
template <typename T, int V, int L>
CYROI_ALWAYS_INLINE void scatter_winner_lines(const ChannelBlock<T>& out,
                                              const BinSamples<T>& bin,
                                              const LaneIndex<T>* places, int64_t first,
                                              const T* g, int64_t c0) {
  constexpr int64_t lanes = Line<T, V>::lanes;
  typename Line<T, V>::type grad[L], won[L];
  typename Line<LaneIndex<T>, V>::type where[L];
  for (int l = 0; l < L; ++l) {
    grad[l] = load_line<T, V>(g + c0 + l * lanes);
    where[l] = load_line<LaneIndex<T>, V>(places + c0 + l * lanes);
  }
  LaneIndex<T> place = (LaneIndex<T>)first;
  for (int64_t jy = 0; jy < bin.ny; ++jy)
    for (int64_t ix = 0; ix < bin.nx; ++ix, ++place) {
      for (int l = 0; l < L; ++l)
        won[l] = where[l] == place ? grad[l] : typename Line<T, V>::type{};
      add_to_taps_lines<T, V, L>(out.data, combine_taps(bin.ty[jy], bin.tx[ix], out.sh, out.sw),
                                 c0, [&](int l, T weight) CYROI_INLINE_LAMBDA {
                                   return won[l] * weight;
                                 });
    }
}
#endif

// mode "max": the gradient goes to the taps of each channel's winning sample.
//
// Adjacent channels (Dense) run as the average does, over every listed
// sample of the bin, adding g * weight where the sample won and 0 * weight
// = +0 elsewhere. Adding +0 changes no bit: the gradient starts at +0 and
// sums started at +0 never reach -0. `places` holds each channel's winner as
// a place in that list (load_places), or, where the argmax has the lanes'
// width (A is LaneIndex<T>), the winner itself: then its place is its index
// less that of the bin's first sample. Or `places` is null: then, and in
// bins whose in-map samples are not whole grid rows, each channel follows its
// winner.
template <int V, typename T, bool Dense, typename A>
CYROI_ALWAYS_INLINE void scatter_winners(const ChannelBlock<T>& out, const RoiSamples<T>& r,
                                         int64_t ph, int64_t pw, const LaneIndex<T>* places,
                                         const A* winner, int64_t winner_sc, const T* g,
                                         int64_t height, int64_t width, AlignScratch<T>& s) {
  const AlignBox<T>& b = r.box;
  const int64_t sc = Dense ? 1 : out.sc, channels = out.width;
  const BinSamples<T> bin(r, ph, pw);
  const int64_t total = bin.size();
  constexpr bool winners = std::is_same<A, LaneIndex<T>>::value;
  const int64_t first = winners ? bin.first_y * b.grid_w + bin.first_x : 0;
  if (Dense && places && total > 0 && total <= SampleBatch<T>::kCapacity &&
      bin.nx == b.grid_w && first + total - 1 <= std::numeric_limits<LaneIndex<T>>::max()) {
    int64_t c0 = 0;
#ifdef CYROI_LINES
    c0 = for_each_lines<T, V>(0, channels, [&](int64_t c, auto lines) CYROI_INLINE_LAMBDA {
      scatter_winner_lines<T, V, lines()>(out, bin, places, first, g, c);
    });
    if (c0 == channels) return;
#endif
    bin.fill(0, out.sh, out.sw, s.batch);
    for (int64_t j = 0; j < total; ++j) {
      const LaneIndex<T> place = (LaneIndex<T>)(first + j);
      for (int q = 0; q < 4; ++q) {
        T* dst = out.data + s.batch.taps[j].offset[q];
        const T weight = s.batch.taps[j].weight[q];
        for (int64_t c = c0; c < channels; ++c)
          dst[c] += (places[c] == place ? g[c] : (T)0) * weight;
      }
    }
    return;
  }
  for (int64_t c = 0; c < channels; ++c) {
    const int64_t sample = winner[c * winner_sc];
    if (sample < 0 || b.grid_w <= 0 || sample / b.grid_w >= b.grid_h) continue;
    AxisTap<T> ty, tx;
    if (!r.ys.tap(ph, sample / b.grid_w, b.start_y, b.bin_h, b.grid_h, height, &ty) ||
        !r.xs.tap(pw, sample % b.grid_w, b.start_x, b.bin_w, b.grid_w, width, &tx))
      continue;
    const Taps<T> t = combine_taps(ty, tx, out.sh, out.sw);
    T* plane = out.data + c * sc;
    for (int q = 0; q < 4; ++q) plane[t.offset[q]] += g[c] * t.weight[q];
  }
}

// Each channel's winner in each bin of RoI k as scatter_winners' place: its
// index less the bin's first listed one when that lands among the bin's
// listed samples (at most SampleBatch's capacity), else -1. Reading the
// int64 argmax once into these narrower places halves what the bins then
// load (frcnn_head: the int64 argmax is twice the gradient's bytes). `s`
// prepared with_places.
template <typename T, typename A>
CYROI_ALWAYS_INLINE void load_places(const Pooled<A>& argmax, int64_t k, int64_t c0,
                                     int64_t channels, AlignScratch<T>& s) {
  const int64_t bins = argmax.PH * argmax.PW;
  for (int64_t ph = 0; ph < argmax.PH; ++ph)
    for (int64_t pw = 0; pw < argmax.PW; ++pw) {
      const BinSamples<T> bin(s.roi, ph, pw);
      const int64_t b = ph * argmax.PW + pw, total = bin.size();
      s.firsts[b] = bin.first_y * bin.grid_w + bin.first_x;
      s.totals[b] = total <= SampleBatch<T>::kCapacity ? total : 0;
    }
  const int64_t *firsts = s.firsts.data(), *totals = s.totals.data();
  // Unsigned: a hand-made argmax may hold any int64.
  const auto place = [&](int64_t winner, int64_t b) {
    const uint64_t at = (uint64_t)winner - (uint64_t)firsts[b];
    return at < (uint64_t)totals[b] ? (LaneIndex<T>)at : (LaneIndex<T>)-1;
  };
  LaneIndex<T>* places = s.places.data();
  if (argmax.s.w == 1 && argmax.s.h == argmax.PW) {  // each channel's bins adjacent
    LaneIndex<T>* loaded = s.loaded.data();
    const A* src = &argmax.at(k, c0, 0, 0);
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t b = 0; b < bins; ++b) loaded[c * bins + b] = place(src[c * argmax.s.c + b], b);
    return transpose(loaded, bins, channels, bins, places, channels);
  }
  for (int64_t ph = 0; ph < argmax.PH; ++ph)
    for (int64_t pw = 0; pw < argmax.PW; ++pw) {
      const int64_t b = ph * argmax.PW + pw;
      for (int64_t c = 0; c < channels; ++c)
        places[b * channels + c] = place(argmax.at(k, c0 + c, ph, pw), b);
    }
}

// The bins of one RoI into a gradient block, with `s` prepared and NCHW
// inputs staged channels-last, and mode "max" winners as `places` where
// align_roi_backward staged them, else null; compiled for target V.
template <int V, typename T, typename A, bool Dense>
CYROI_ALWAYS_INLINE void align_bins_backward(const ChannelBlock<T>& out,
                                             const AlignParams<T>& p, int64_t height,
                                             int64_t width, const Pooled<T>& grad_out,
                                             const Pooled<A>& argmax, int64_t k, int64_t c0,
                                             AlignScratch<T>& s, const LaneIndex<T>* places,
                                             const Prefetch& next,
                                             const Prefetch& next_winners) {
  const int64_t channels = out.width;
  const bool staged = staged_inputs(channels);
  const Divisor<T> count(s.roi.box.count);
  for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      const int64_t at = (ph * p.pooled_w + pw) * channels;
      next.part(ph * p.pooled_w + pw, p.pooled_h * p.pooled_w);
      next_winners.part(ph * p.pooled_w + pw, p.pooled_h * p.pooled_w);
      const T* g = s.staged.data() + at;
      if (!staged) {
        for (int64_t c = 0; c < channels; ++c) s.acc[c] = grad_out.at(k, c0 + c, ph, pw);
        g = s.acc.data();
      }
      if (p.max_mode) {
        scatter_winners<V, T, Dense>(out, s.roi, ph, pw, places ? places + at : nullptr,
                                     &argmax.at(k, c0, ph, pw), argmax.s.c, g, height, width,
                                     s);
        continue;
      }
      const BinSamples<T> bin(s.roi, ph, pw);
      int64_t c0 = 0;
#ifdef CYROI_LINES
      if (Dense)
        c0 = for_each_lines<T, V>(0, channels, [&](int64_t c, auto lines) CYROI_INLINE_LAMBDA {
          if (count.exact_inverse)
            scatter_bin_lines<T, V, lines(), true>(out, bin, g, count, c);
          else
            scatter_bin_lines<T, V, lines(), false>(out, bin, g, count, c);
        });
#endif
      for (int64_t first = 0; c0 < channels && first < bin.size(); first += s.batch.size) {
        bin.fill(first, out.sh, out.sw, s.batch);
        if (count.exact_inverse)
          scatter_samples<T, Dense, true>(out, s.batch, g, count, c0);
        else
          scatter_samples<T, Dense, false>(out, s.batch, g, count, c0);
      }
    }
  }
}

template <typename T, typename A, bool Dense>
void align_roi_backward(const ChannelBlock<T>& out, const T* box, const AlignParams<T>& p,
                        int64_t height, int64_t width, const Pooled<T>& grad_out,
                        const Pooled<A>& argmax, int64_t k, int64_t c0, AlignScratch<T>& s,
                        int64_t next_k = -1) {
  s.roi.compute(box, p, height, width);
  const int64_t channels = out.width;
  const bool staged = staged_inputs(channels);
  const bool places = p.max_mode && Dense && staged;
  s.prepare(channels, p.pooled_h * p.pooled_w, staged, places);
  if (staged) load_bins(grad_out, k, c0, channels, s.staged.data());
  // An argmax as wide as the lanes is staged as it is, and the next RoI's is
  // asked for beside its output gradients (int32: mode "max" backward took
  // 0.84-0.93x the time; an int64 one asked for slowed it by 1.1x).
  constexpr bool lane_wide = std::is_same<A, LaneIndex<T>>::value;
  const bool winners = places && lane_wide;
  const Prefetch next(grad_out, next_k, c0, channels);
  const Prefetch next_winners(argmax, winners ? next_k : -1, c0, channels);
  on_simd([&](auto simd) CYROI_INLINE_LAMBDA {
    if constexpr (lane_wide) {
      if (places) load_bins(argmax, k, c0, channels, s.places.data());
    } else if (places) {
      load_places<T>(argmax, k, c0, channels, s);
    }
    align_bins_backward<simd(), T, A, Dense>(out, p, height, width, grad_out, argmax, k, c0, s,
                                             places ? s.places.data() : nullptr, next,
                                             next_winners);
  });
}

// Accumulates into grad: zeroed by the caller, or here with zero_first.
template <typename T, typename A>
void roi_align_backward(const Maps<T>& grad, const Pooled<T>& grad_out, const T* boxes,
                        const int64_t* batch, const AlignParams<T>& p, const Pooled<A>& argmax,
                        bool zero_first, int threads) {
  const int64_t rois = grad_out.K;
  const double reads = align_reads_per_channel(boxes, rois, p, grad.H, grad.W);
  const bool channels_last = worth_channels_last(grad, reads);
  backward_blocks<T, AlignScratch<T>>(
      grad, batch, rois, channels_last, zero_first, threads, reads * (double)grad.C,
      [&](const ChannelBlock<T>& out, int64_t k, int64_t next, int64_t c0, AlignScratch<T>& s) {
        if (out.sc == 1 || out.width == 1)
          align_roi_backward<T, A, true>(out, boxes + 4 * k, p, grad.H, grad.W, grad_out, argmax,
                                         k, c0, s, next);
        else
          align_roi_backward<T, A, false>(out, boxes + 4 * k, p, grad.H, grad.W, grad_out, argmax,
                                          k, c0, s, next);
      });
}

// The channels [c0, c1) of image n over the RoIs of `rois`, accumulated in
// place: the backward entry for loops that choose their own items.
template <typename T, typename A>
void roi_align_backward_item(const Maps<T>& grad, const Pooled<T>& grad_out, const T* boxes,
                             const RoisByImage& rois, const AlignParams<T>& p,
                             const Pooled<A>& argmax, int64_t n, int64_t c0, int64_t c1) {
  AlignScratch<T> s;
  const ChannelBlock<T> out{grad.plane(n, c0), grad.s.h, grad.s.w, grad.s.c, c1 - c0};
  for (int64_t r = rois.begin[n]; r < rois.begin[n + 1]; ++r) {
    const int64_t k = rois.order[r];
    if (out.sc == 1 || out.width == 1)
      align_roi_backward<T, A, true>(out, boxes + 4 * k, p, grad.H, grad.W, grad_out, argmax, k,
                                     c0, s);
    else
      align_roi_backward<T, A, false>(out, boxes + 4 * k, p, grad.H, grad.W, grad_out, argmax, k,
                                      c0, s);
  }
}

}  // namespace cyroi
