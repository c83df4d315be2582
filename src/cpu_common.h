// Shapes, strides, channel blocks and the OpenMP work loop shared by the CPU
// loops.
//
// Every loop runs over channel blocks: one image's channels [c0, c0 + width)
// seen as an (H, W, width) window. Inside a block the loop over channels is
// the innermost one and runs over adjacent elements whenever it can (NHWC
// input, or an NCHW block first copied channels-last), so the C compiler
// vectorises it; the per-sample geometry is computed once per block.
// Vectorising changes no result: every channel still sees the same operations
// in the same order (the build keeps -ffp-contract=off: no fused multiply-add).
#pragma once
#include <math.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>

#include <algorithm>
#include <exception>
#include <new>
#ifdef __SSE2__
#include <emmintrin.h>
#include <xmmintrin.h>
#endif
#include <type_traits>
#include <vector>

#if defined(__GNUC__)
#define CYROI_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define CYROI_ALWAYS_INLINE inline
#endif

namespace cyroi {

// Element strides of a 4-D array, named by axis so NCHW, NHWC and any
// strided view share one loop.
struct Strides4 {
  int64_t n, c, h, w;
};

// One image batch of feature maps (or of their gradient).
template <typename T> struct Maps {
  T* data;
  int64_t N, C, H, W;
  Strides4 s;
  T* plane(int64_t n, int64_t c) const { return data + n * s.n + c * s.c; }
};

// A pooled output (or its gradient, or an argmax): (K, C, PH, PW) by strides.
template <typename T> struct Pooled {
  T* data;
  int64_t K, C, PH, PW;
  Strides4 s;  // n = the RoI axis
  T& at(int64_t k, int64_t c, int64_t ph, int64_t pw) const {
    return data[k * s.n + c * s.c + ph * s.h + pw * s.w];
  }
};

// Channels [c0, c0 + width) of one image as an (H, W, width) window. Dense
// blocks (sc == 1) are what the vectorised loops are for.
template <typename T> struct ChannelBlock {
  T* data;
  int64_t sh, sw, sc, width;
};

// Channels in one 64-byte cache line (one AVX-512 register, two AVX2 or
// four SSE2 registers): channel blocks come in multiples of it.
template <typename T> struct Lanes {
  static constexpr int64_t value = 64 / sizeof(T);
};

// Memory on 64-byte boundaries, for the channels-last blocks the SIMD loops
// read in lines: malloc gives 16-byte boundaries, and where a block's start
// fell between lines every line read straddled two (frcnn_head's roi_align
// forward, separate processes: 2.74-2.75 ms against 3.34-3.38 at 2 threads,
// where one thread's bins took 1.2-1.3x the other's; 5.6-6.0 against
// 6.9-7.0 ms at 1 thread). Which block was misaligned depended on the heap's
// state, which two builds in one process share: bench/ab.py --processes 6
// read 0.83x at 2 threads where its paired mode read 1.01-1.05.
template <typename T> struct LineAligned {
  using value_type = T;
  LineAligned() = default;
  template <typename U> LineAligned(const LineAligned<U>&) {}
  T* allocate(size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <typename U> bool operator==(const LineAligned<U>&) const { return true; }
  template <typename U> bool operator!=(const LineAligned<U>&) const { return false; }
};
template <typename T> using LineVector = std::vector<T, LineAligned<T>>;

// The hot loops (the bin loops of roi_align and roi_pool) are compiled once
// per SIMD target and picked at run time by the CPU: with V, the bytes of
// one of its vector registers, as a template argument (Simd<V>), so each
// target holds its channels in lines of its own registers' width. (GCC's
// target_clones compiles one body for all targets: its 64-byte lines took
// memory round trips on AVX2, which has no register that wide, and
// roi_pool's forward ran 10x slower there than on AVX-512.) The sanitizer
// build compiles only the target this CPU picks (CYROI_ONE_SIMD: 64, 32 or
// 16), a third of the compile time. No exception may leave these loops
// (GCC aborts instead of unwinding through them): they allocate nothing,
// their callers prepare every buffer.
template <int V> using Simd = std::integral_constant<int, V>;

#if defined(__GNUC__) && defined(__x86_64__) && !defined(CYROI_ONE_SIMD)
// The widest target this CPU (and its operating system) supports, or a
// narrower one that the environment variable CYROI_SIMD_BYTES asks for
// (32 or 16: the tests run every target the CPU has against the reference).
inline int simd_bytes() {
  static const int bytes = [] {
    const int widest = __builtin_cpu_supports("avx512f") ? 64
                       : __builtin_cpu_supports("avx2")  ? 32
                                                         : 16;
    const char* cap = getenv("CYROI_SIMD_BYTES");
    const int asked = cap ? atoi(cap) : 64;
    return std::min(widest, asked >= 64 ? 64 : asked >= 32 ? 32 : 16);
  }();
  return bytes;
}
#elif defined(CYROI_ONE_SIMD)
inline int simd_bytes() { return CYROI_ONE_SIMD; }
#else
inline int simd_bytes() { return 16; }
#endif

#if defined(__GNUC__) && defined(__x86_64__)
template <typename Run> __attribute__((target("avx512f"))) void run_avx512(const Run& run) {
  run(Simd<64>());
}
template <typename Run> __attribute__((target("avx2"))) void run_avx2(const Run& run) {
  run(Simd<32>());
}
#endif

// run(Simd<V>()) compiled for, and run on, target simd_bytes(). `run` must
// be inlined (CYROI_INLINE_LAMBDA), and so must everything it calls that
// is to use the target's instructions: a function left out of line is
// compiled for the baseline target (a lambda left so made mode "max"'s bins
// take 9x the time).
template <typename Run> void on_simd(const Run& run) {
#if defined(__GNUC__) && defined(__x86_64__)
#if !defined(CYROI_ONE_SIMD) || CYROI_ONE_SIMD == 64
  if (simd_bytes() == 64) return run_avx512(run);
#endif
#if !defined(CYROI_ONE_SIMD) || CYROI_ONE_SIMD == 32
  if (simd_bytes() == 32) return run_avx2(run);
#endif
#endif
#if !defined(CYROI_ONE_SIMD) || CYROI_ONE_SIMD == 16
  run(Simd<16>());
#endif
}

#ifdef __GNUC__
#define CYROI_LINES 1
#define CYROI_INLINE_LAMBDA __attribute__((always_inline))
// One line of V bytes of values as a GCC vector, one register of the
// target compiled for, whose arithmetic rounds as the scalar expression it
// stands for does (-ffp-contract=off: no fusing). V 16 is also a quarter of
// a cache line, for the channels of a block that start part-way into one
// (LineSpan). Other compilers run the scalar loops beside every use.
// Lines only pass between always-inlined helpers, never through a call.
#pragma GCC diagnostic ignored "-Wpsabi"
template <typename T, int V> struct Line {
  typedef T type __attribute__((vector_size(V)));
  static constexpr int64_t lanes = V / sizeof(T);
};
template <typename T, int V>
CYROI_ALWAYS_INLINE typename Line<T, V>::type load_line(const T* p) {
  typename Line<T, V>::type v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <typename T, int V>
CYROI_ALWAYS_INLINE void store_line(T* p, typename Line<T, V>::type v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// The most lines a loop holds at once on target V, each line taking
// `registers` of its vector registers: half of them (AVX-512 has 32, AVX2
// and SSE2 16), and eight lines at most. Eight lines of sums and their
// operands fill but do not overflow AVX-512's registers; a wider chunk
// reloads each tap less often (frcnn_head NHWC on AVX-512: 4 lines took
// 1.05x the time of 8; on AVX2, 4 lines of sums took 1.03-1.12x the time of
// 8, and 8 lines of running maxima, two registers each, 1.03-1.19x that of
// 4; mode "max" backward's lines of gradients and winners, 1.12-1.14x with
// 4 lines, are held as sums are).
template <int V, int Registers = 1>
constexpr int kWidestChunk = std::min(8, (V == 64 ? 16 : 8) / Registers);

// Runs run(c0, lines) over the whole lines of channels [c0, width) of a
// dense block, in chunks of L lines, then L / 2, ... 1 (lines: a
// std::integral_constant<int, chunk>), and returns where the channels left
// over (less than a line) begin.
template <typename T, int V, int L = kWidestChunk<V>, typename Run>
CYROI_ALWAYS_INLINE int64_t for_each_lines(int64_t c0, int64_t width, Run&& run) {
  constexpr int64_t lanes = Line<T, V>::lanes;
  for (; c0 + L * lanes <= width; c0 += L * lanes) run(c0, std::integral_constant<int, L>());
  if constexpr (L > 1)
    return for_each_lines<T, V, L / 2>(c0, width, run);
  else
    return c0;
}

// run(c0, lines) for the chunk of exactly `lines` lines, L > lines.
template <int L, typename Run>
CYROI_ALWAYS_INLINE void run_lines_left(int64_t c0, int64_t lines, Run& run) {
  if constexpr (L > 1) {
    if (lines == L - 1) return run(c0, std::integral_constant<int, L - 1>());
    run_lines_left<L - 1>(c0, lines, run);
  }
}

// Runs run(c0, lines) over the whole lines of channels [c0, end), a whole
// number of them, in the widest chunks and one chunk of what is left: a
// walk over the bin's samples per chunk, fewer than for_each_lines's
// halving (LineSpan's blocks have a cache line less than a power of two).
template <typename T, int V, typename Run>
CYROI_ALWAYS_INLINE void for_lines_exactly(int64_t c0, int64_t end, Run&& run) {
  constexpr int64_t lanes = Line<T, V>::lanes;
  constexpr int L = kWidestChunk<V>;
  for (; c0 + L * lanes <= end; c0 += L * lanes) run(c0, std::integral_constant<int, L>());
  run_lines_left<L>(c0, (end - c0) / lanes, run);
}
#else
#define CYROI_INLINE_LAMBDA
#endif

// Where a dense block's 64-byte lines fall, when every pixel's channels
// start the same whole number of quarter lines past one (NumPy puts large
// arrays 16 bytes past a line, and an NHWC map of such an array is read in
// place): channels [begin, end) in whole lines, and the rest as four
// quarters, the first ones before begin and the others from end. A line
// read across two cache lines costs about two: frcnn_head's NHWC roi_align
// forward took 0.84x the time on a copy of its map on a line boundary,
// mask_head's 0.88x. `split` is false where the block needs no peeling or
// cannot have it; then its lines start at channel 0.
template <typename T> struct LineSpan {
  static constexpr int64_t kQuarter = 16 / sizeof(T);
  bool split = false;
  int64_t begin = 0, end = 0, quarter[4] = {};

  explicit LineSpan(const ChannelBlock<const T>& in) {
    constexpr int64_t lanes = Lanes<T>::value, line_bytes = 64;
    const int64_t skew = (int64_t)((uintptr_t)in.data % line_bytes);
    const auto on_lines = [](int64_t stride) {
      return stride * (int64_t)sizeof(T) % line_bytes == 0;
    };
    if (in.sc != 1 || skew == 0 || skew % 16 != 0 || !on_lines(in.sh) || !on_lines(in.sw) ||
        in.width % lanes != 0 || in.width < 2 * lanes)
      return;
    split = true;
    const int64_t leading = (line_bytes - skew) / 16;  // quarters before the first line
    begin = leading * kQuarter;
    end = in.width - lanes + begin;
    for (int64_t q = 0; q < 4; ++q)
      quarter[q] = q < leading ? q * kQuarter : end + (q - leading) * kQuarter;
  }
};

// A divisor and, when it is a power of two, its exact inverse: then x / d
// and x * (1 / d) are the same number (both round the same exact quotient),
// and a multiply vectorises far better than a divide.
template <typename T> struct Divisor {
  T value, inverse;
  bool exact_inverse;
  explicit Divisor(T d) : value(d), inverse((T)1 / d) {
    int exponent;
    exact_inverse = d > 0 && frexp((double)d, &exponent) == 0.5;
  }
};

// Integer type as wide as T, for argmax lanes that blend beside T lanes.
template <typename T>
using LaneIndex = typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type;

// One step of a running first maximum: `where` moves to `index` only if
// `value` is strictly greater. Written as an unconditional max and bit
// blend: the plain conditional form compiles to masked stores behind an
// unpredictable branch.
template <typename T, typename Index>
CYROI_ALWAYS_INLINE void keep_greater(T value, Index index, T& best, Index& where) {
  const T top = best;
  const Index at = where, take = -(Index)(value > top);
  best = value > top ? value : top;
  where = at ^ ((at ^ index) & take);
}

#ifdef CYROI_LINES
// keep_greater on L lines of V bytes, held in registers from construction
// (from best and where, or from start() for each line) to store().
// GCC warns that start() reads the vector it writes whole: a false alarm,
// once for each vector of each instance.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <typename T, int V, int L> struct GreaterLines {
  using Values = typename Line<T, V>::type;
  using Indices = typename Line<LaneIndex<T>, V>::type;
  static constexpr int64_t lanes = Line<T, V>::lanes;
  Values top[L];
  Indices at[L];

  GreaterLines() = default;
  CYROI_ALWAYS_INLINE GreaterLines(const T* best, const LaneIndex<T>* where) {
    for (int l = 0; l < L; ++l) {
      top[l] = load_line<T, V>(best + l * lanes);
      at[l] = load_line<LaneIndex<T>, V>(where + l * lanes);
    }
  }
  CYROI_ALWAYS_INLINE void start(int l, Values value, LaneIndex<T> index) {
    top[l] = value;
    at[l] = Indices{} + index;
  }
  CYROI_ALWAYS_INLINE void keep(int l, Values value, LaneIndex<T> index) {
    const Indices take = value > top[l];  // all ones where it wins
    top[l] = take ? value : top[l];
    at[l] = at[l] ^ ((at[l] ^ index) & take);
  }
  CYROI_ALWAYS_INLINE void store(T* best, LaneIndex<T>* where) const {
    for (int l = 0; l < L; ++l) {
      store_line<T, V>(best + l * lanes, top[l]);
      store_line<LaneIndex<T>, V>(where + l * lanes, at[l]);
    }
  }
};
#pragma GCC diagnostic pop
#endif

// The RoIs visited by backward, grouped by image in a fixed order:
// image n owns order[begin[n] : begin[n + 1]].
struct RoisByImage {
  const int64_t* order;
  const int64_t* begin;
};

// The valid RoIs of each image in RoI order (a stable counting sort), the
// fixed visiting order that makes backward sums the same for any thread
// count.
struct ImageGroups {
  std::vector<int64_t> order, begin;

  ImageGroups(const int64_t* batch, int64_t rois, int64_t images) : begin(images + 1, 0) {
    for (int64_t k = 0; k < rois; ++k)
      if (batch[k] >= 0 && batch[k] < images) ++begin[batch[k] + 1];
    for (int64_t n = 0; n < images; ++n) begin[n + 1] += begin[n];
    order.resize(begin[images]);
    std::vector<int64_t> next(begin.begin(), begin.end() - 1);
    for (int64_t k = 0; k < rois; ++k)
      if (batch[k] >= 0 && batch[k] < images) order[next[batch[k]]++] = k;
  }
  // The RoI after order[r] among image n's, or -1.
  int64_t after(int64_t n, int64_t r) const { return r + 1 < begin[n + 1] ? order[r + 1] : -1; }

  // Reorders each image's RoIs along a Z-order curve of their box centres
  // in map pixels (stable), for forward, whose RoIs are independent: one
  // RoI's neighbour comes next and finds the map lines they share in cache
  // (bench workloads at 1 thread, NHWC roi_align: 0.91-0.96x the time of
  // RoI order).
  // Backward keeps RoI order: its sums are the reference's.
  template <typename T> void by_position(const T* boxes, double scale) {
    if (order.size() < 3) return;  // small calls skip the buffers
    std::vector<uint32_t> key(order.size());
    for (size_t r = 0; r < order.size(); ++r) {
      const T* b = boxes + 4 * order[r];
      key[r] = z_order(cell((b[0] + b[2]) * 0.5 * scale), cell((b[1] + b[3]) * 0.5 * scale));
    }
    std::vector<size_t> index(order.size());
    for (size_t r = 0; r < index.size(); ++r) index[r] = r;
    for (size_t n = 0; n + 1 < begin.size(); ++n)
      std::stable_sort(index.begin() + begin[n], index.begin() + begin[n + 1],
                       [&](size_t a, size_t b) { return key[a] < key[b]; });
    std::vector<int64_t> sorted(order.size());
    for (size_t r = 0; r < index.size(); ++r) sorted[r] = order[index[r]];
    order.swap(sorted);
  }

 private:
  // A coordinate's pixel as 16 bits: NaN and negatives at 0, the far ones at
  // the last cell (the order only groups neighbours; any order is correct).
  static uint32_t cell(double v) { return v >= 0 ? (uint32_t)std::min(v, 65535.0) : 0; }
  static uint32_t z_order(uint32_t x, uint32_t y) { return spread(x) | (spread(y) << 1); }
  static uint32_t spread(uint32_t v) {  // bit i of v to bit 2i
    v = (v | (v << 8)) & 0x00FF00FFu;
    v = (v | (v << 4)) & 0x0F0F0F0Fu;
    v = (v | (v << 2)) & 0x33333333u;
    return (v | (v << 1)) & 0x55555555u;
  }
};

// How OpenMP hands out work items: static, or dynamic where items differ
// widely in cost. Every item owns its outputs, so neither changes a bit.
enum class Schedule { kStatic, kDynamic };

// Runs body(item, scratch) for item in [0, items) on a team of `team` OpenMP
// threads; each thread owns one Scratch. An exception (std::bad_alloc) cannot
// leave an OpenMP region: the first one is kept and rethrown after it.
template <typename Scratch, typename Body>
void run_items(int64_t items, int64_t team, Schedule schedule, Body body) {
  std::exception_ptr failure;
  const auto guarded = [&](int64_t item, Scratch& scratch) {
    try {
      body(item, scratch);
    } catch (...) {
#pragma omp critical(cyroi_failure)
      if (!failure) failure = std::current_exception();
    }
  };
#pragma omp parallel num_threads((int)team)
  {
    Scratch scratch;
    if (schedule == Schedule::kDynamic) {
#pragma omp for schedule(dynamic)
      for (int64_t item = 0; item < items; ++item) guarded(item, scratch);
    } else {
#pragma omp for schedule(static)
      for (int64_t item = 0; item < items; ++item) guarded(item, scratch);
    }
  }
  if (failure) std::rethrow_exception(failure);
}

// run_items on up to `threads` threads, except that work below
// `serial_work` (in the caller's units) runs on the calling thread: waking a
// team costs more than a tiny call. Items go to threads as they come free:
// on a machine shared with other work one thread falls behind, and a fixed
// share waits for it (2 threads, busy spells: mask_head roi_align forward
// 0.90-0.99x the time of static shares, backward 0.90-0.97x, frcnn_head
// roi_pool backward 0.83-0.92x; quiet spells: 0.96-1.01x).
template <typename Scratch, typename Body>
void for_each_item(int64_t items, int threads, double work, Body body) {
  const double serial_work = 2e5;
  const int64_t team =
      work < serial_work ? 1 : std::max<int64_t>(1, std::min<int64_t>(threads, items));
  if (team == 1) {
    Scratch scratch;
    for (int64_t item = 0; item < items; ++item) body(item, scratch);
    return;
  }
  run_items<Scratch>(items, team, Schedule::kDynamic, body);
}

// Channels per block: a multiple of the SIMD chunk, at most `widest`, and
// small enough to give every thread an item when `groups` independent item
// groups (RoIs; 1 for a group that all threads share) are fewer than
// threads; the blocks of a group then come in multiples of the blocks that
// takes, so threads get equal shares.
// Wider blocks beat more items: a block's per-sample geometry serves more
// channels, and an NHWC block of every channel is dense in place.
template <typename T>
int64_t channel_block(int64_t channels, int64_t groups, int threads, int64_t widest) {
  const int64_t lanes = Lanes<T>::value;
  const int64_t wanted = (threads + groups - 1) / std::max<int64_t>(groups, 1);
  const int64_t fewest = (channels + widest - 1) / std::max<int64_t>(widest, 1);
  const int64_t blocks = std::max<int64_t>(1, (fewest + wanted - 1) / wanted * wanted);
  int64_t width = (channels + blocks - 1) / blocks;
  width = (width + lanes - 1) / lanes * lanes;
  return std::max<int64_t>(1, std::min({width, widest, channels}));
}

// Tiles of a matrix transpose on target V: whole rows are read and written
// and shuffled in registers, so both sides move in runs. SSE2 (every x86-64)
// moves 16-byte rows; AVX2 32-byte ones, in tiles four times the size and
// half the stores per element: NCHW results put in order for streaming
// (store_bins) took 0.55x the time, and many_rois's roi_pool forward
// 0.92x (1 thread) and 0.96-0.97x (2 threads), frcnn_head's float64
// roi_align forward 0.95x.
template <typename T, int V> struct Tile {
  static constexpr int64_t size = 1;
  static void move(const T* src, int64_t, T* dst, int64_t) { *dst = *src; }
};
#ifdef __SSE2__
template <> struct Tile<float, 16> {
  static constexpr int64_t size = 4;
  CYROI_ALWAYS_INLINE static void move(const float* src, int64_t ss, float* dst, int64_t ds) {
    __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + ss);
    __m128 r2 = _mm_loadu_ps(src + 2 * ss), r3 = _mm_loadu_ps(src + 3 * ss);
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    _mm_storeu_ps(dst, r0);
    _mm_storeu_ps(dst + ds, r1);
    _mm_storeu_ps(dst + 2 * ds, r2);
    _mm_storeu_ps(dst + 3 * ds, r3);
  }
};
template <> struct Tile<double, 16> {
  static constexpr int64_t size = 2;
  CYROI_ALWAYS_INLINE static void move(const double* src, int64_t ss, double* dst, int64_t ds) {
    const __m128d r0 = _mm_loadu_pd(src), r1 = _mm_loadu_pd(src + ss);
    _mm_storeu_pd(dst, _mm_unpacklo_pd(r0, r1));
    _mm_storeu_pd(dst + ds, _mm_unpackhi_pd(r0, r1));
  }
};
#endif
#ifdef CYROI_LINES
// In GCC vectors, not AVX2 intrinsics: the tiles are inlined into the
// loops compiled for AVX2 (on_simd), and intrinsics would need every
// function between to be compiled for it.
template <> struct Tile<float, 32> {
  static constexpr int64_t size = 8;
  typedef Line<float, 32>::type Row;
  typedef int32_t Mask __attribute__((vector_size(32)));
  CYROI_ALWAYS_INLINE static void move(const float* src, int64_t ss, float* dst, int64_t ds) {
    Row r[8], pairs[8], quads[8];
    for (int i = 0; i < 8; ++i) r[i] = load_line<float, 32>(src + i * ss);
    // Rows interleaved in pairs, then pairs of pairs (as AVX2's unpack and
    // shuffle do, within each 128-bit half): quads[4 * h + i] holds
    // columns i and 4 + i (its two halves) of rows 4h to 4h + 3.
    for (int i = 0; i < 4; ++i) {
      pairs[2 * i] = __builtin_shuffle(r[2 * i], r[2 * i + 1], Mask{0, 8, 1, 9, 4, 12, 5, 13});
      pairs[2 * i + 1] =
          __builtin_shuffle(r[2 * i], r[2 * i + 1], Mask{2, 10, 3, 11, 6, 14, 7, 15});
    }
    for (int h = 0; h < 2; ++h)
      for (int i = 0; i < 2; ++i) {
        const Row a = pairs[4 * h + i], b = pairs[4 * h + 2 + i];
        quads[4 * h + 2 * i] = __builtin_shuffle(a, b, Mask{0, 1, 8, 9, 4, 5, 12, 13});
        quads[4 * h + 2 * i + 1] = __builtin_shuffle(a, b, Mask{2, 3, 10, 11, 6, 7, 14, 15});
      }
    for (int i = 0; i < 4; ++i) {
      const Row low = __builtin_shuffle(quads[i], quads[4 + i], Mask{0, 1, 2, 3, 8, 9, 10, 11});
      const Row high = __builtin_shuffle(quads[i], quads[4 + i], Mask{4, 5, 6, 7, 12, 13, 14, 15});
      store_line<float, 32>(dst + i * ds, low);
      store_line<float, 32>(dst + (4 + i) * ds, high);
    }
  }
};
template <> struct Tile<double, 32> {
  static constexpr int64_t size = 4;
  typedef Line<double, 32>::type Row;
  typedef int64_t Mask __attribute__((vector_size(32)));
  CYROI_ALWAYS_INLINE static void move(const double* src, int64_t ss, double* dst, int64_t ds) {
    Row r[4];
    for (int i = 0; i < 4; ++i) r[i] = load_line<double, 32>(src + i * ss);
    const Row t0 = __builtin_shuffle(r[0], r[1], Mask{0, 4, 2, 6});
    const Row t1 = __builtin_shuffle(r[0], r[1], Mask{1, 5, 3, 7});
    const Row t2 = __builtin_shuffle(r[2], r[3], Mask{0, 4, 2, 6});
    const Row t3 = __builtin_shuffle(r[2], r[3], Mask{1, 5, 3, 7});
    store_line<double, 32>(dst, __builtin_shuffle(t0, t2, Mask{0, 1, 4, 5}));
    store_line<double, 32>(dst + ds, __builtin_shuffle(t1, t3, Mask{0, 1, 4, 5}));
    store_line<double, 32>(dst + 2 * ds, __builtin_shuffle(t0, t2, Mask{2, 3, 6, 7}));
    store_line<double, 32>(dst + 3 * ds, __builtin_shuffle(t1, t3, Mask{2, 3, 6, 7}));
  }
};
#endif
// Integers go through the tiles of the floating-point type of their width
// (bits moved, no arithmetic) where there are such tiles; else as they are.
template <typename T>
using FloatOfWidth =
    std::conditional_t<std::is_same<T, int32_t>::value, float,
                       std::conditional_t<std::is_same<T, int64_t>::value, double, T>>;
template <typename T, int V>
using TiledAs = std::conditional_t<(Tile<FloatOfWidth<T>, V>::size > 1), FloatOfWidth<T>, T>;

// How far ahead along its source rows a wide transpose asks for lines
// (copy_channels_last: each row is a plane of the map, streamed from
// memory once; the copy of mask_head's map alone took 0.75-0.8x the time,
// its roi_align forward 0.93-0.96x, roi_pool 0.87-0.92x; 1 KB ahead and
// more took longer than none). The lines are asked for as non-temporal
// (read once, they should not take the cache's room from the copy the loops
// read next: mask_head's roi_align forward took 0.96-0.97x the time of
// ordinary prefetches; 512 bytes ahead 1.03x).
static const int64_t kRowPrefetchBytes = 256;

// dst[j * ds + i] = src[i * ss + j] for i < rows, j < cols, in target V's
// tiles, walking the longer side in the outer loop so the short side's rows
// stay in L1 between tiles; what whole tiles leave goes by the next
// narrower target's. With prefetch_rows, a transpose wider than it is tall
// asks for each source row's line kRowPrefetchBytes ahead as it reaches a
// new one, non-temporal.
template <typename T, int V>
CYROI_ALWAYS_INLINE void transpose_tiles(const T* src, int64_t ss, int64_t rows, int64_t cols,
                                         T* dst, int64_t ds, bool prefetch_rows) {
  using M = TiledAs<T, V>;
  using Tiles = Tile<M, V>;
  const int64_t n = Tiles::size, full_rows = rows / n * n, full_cols = cols / n * n;
  if (rows >= cols) {
    for (int64_t i = 0; i < full_rows; i += n)
      for (int64_t j = 0; j < full_cols; j += n)
        Tiles::move((const M*)(src + i * ss + j), ss, (M*)(dst + j * ds + i), ds);
  } else {
    for (int64_t j = 0; j < full_cols; j += n) {
#if defined(__GNUC__)
      // Integer addresses: the lines asked for may lie past the rows' end.
      if (prefetch_rows && j % Lanes<T>::value == 0)
        for (int64_t i = 0; i < rows; ++i) {
          const uintptr_t ahead = (uintptr_t)(src + i * ss + j) + kRowPrefetchBytes;
          __builtin_prefetch((const void*)ahead, 0, 0);  // to read, non-temporal
        }
#endif
      for (int64_t i = 0; i < full_rows; i += n)
        Tiles::move((const M*)(src + i * ss + j), ss, (M*)(dst + j * ds + i), ds);
    }
  }
  if constexpr (V > 16) {
    transpose_tiles<T, V / 2>(src + full_rows * ss, ss, rows - full_rows, cols, dst + full_rows,
                              ds, false);
    transpose_tiles<T, V / 2>(src + full_cols, ss, full_rows, cols - full_cols,
                              dst + full_cols * ds, ds, false);
  } else {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = i < full_rows ? full_cols : 0; j < cols; ++j)
        dst[j * ds + i] = src[i * ss + j];
  }
}

// How transpose runs: whether it asks for its source rows' lines ahead
// (transpose_tiles' prefetch_rows), and on which tiles.
enum class RowPrefetch { kNone, kAhead };
enum class TileWidth { kWidest, k16Bytes };

// transpose_tiles on the widest tiles this CPU has (AVX-512 runs AVX2's), or
// on 16-byte ones.
template <typename T>
void transpose(const T* src, int64_t ss, int64_t rows, int64_t cols, T* dst, int64_t ds,
               RowPrefetch prefetch = RowPrefetch::kNone, TileWidth tiles = TileWidth::kWidest) {
  const bool prefetch_rows = prefetch == RowPrefetch::kAhead;
  if (tiles == TileWidth::k16Bytes)
    return transpose_tiles<T, 16>(src, ss, rows, cols, dst, ds, prefetch_rows);
  on_simd([&](auto simd) CYROI_INLINE_LAMBDA {
    transpose_tiles<T, std::min(simd(), 32)>(src, ss, rows, cols, dst, ds, prefetch_rows);
  });
}

// Bytes of a channels-last copy made (or stored) in one stretch of pixels,
// Lanes<T> planes at a time: more planes at once are more read (or write)
// streams than the hardware prefetcher follows, and the stretch stays in L2
// until its other planes come in (mask_head's 200 x 272 map, 32 channels,
// 2 images, 1 thread: 10 ms against 13.5 ms as 32 streams at once).
static const int64_t kStretchBytes = 512 << 10;

// Runs move(p, c, stretch, planes) over a channels-last block of `width`
// channels of a map of `pixels` pixels: pixels [p, p + stretch), planes
// [c, c + planes), for the block's copy or its store.
template <typename T, typename Move>
void for_each_stretch(int64_t pixels, int64_t width, Move move) {
  const int64_t lanes = Lanes<T>::value;
  const int64_t stretch = std::max<int64_t>(Tile<TiledAs<T, 16>, 16>::size,
                                            kStretchBytes / (width * (int64_t)sizeof(T)));
  for (int64_t p = 0; p < pixels; p += stretch)
    for (int64_t c = 0; c < width; c += lanes)
      move(p, c, std::min(stretch, pixels - p), std::min(lanes, width - c));
}

// Copies channels [c0, c0 + width) of image n into `block` as (H, W, width).
template <typename T>
void copy_channels_last(const Maps<T>& f, int64_t n, int64_t c0, int64_t width, T* block) {
  const T* src = f.plane(n, c0);
  if (f.s.w == 1 && f.s.h == f.W) {
    const auto move = [&](int64_t p, int64_t c, int64_t stretch, int64_t planes) {
      transpose(src + c * f.s.c + p, f.s.c, planes, stretch, block + p * width + c, width,
                RowPrefetch::kAhead);
    };
    return for_each_stretch<T>(f.H * f.W, width, move);
  }
  for (int64_t h = 0; h < f.H; ++h)
    for (int64_t w = 0; w < f.W; ++w)
      for (int64_t c = 0; c < width; ++c)
        block[(h * f.W + w) * width + c] = src[c * f.s.c + h * f.s.h + w * f.s.w];
}

// The inverse of copy_channels_last.
template <typename T>
void store_channels_last(const T* block, int64_t width, const Maps<T>& f, int64_t n, int64_t c0) {
  T* dst = f.plane(n, c0);
  if (f.s.w == 1 && f.s.h == f.W) {
    const auto move = [&](int64_t p, int64_t c, int64_t stretch, int64_t planes) {
      transpose(block + p * width + c, width, stretch, planes, dst + c * f.s.c + p, f.s.c);
    };
    return for_each_stretch<T>(f.H * f.W, width, move);
  }
  if (f.s.c == 1) {
    for (int64_t h = 0; h < f.H; ++h)
      for (int64_t w = 0; w < f.W; ++w)
        memcpy(dst + h * f.s.h + w * f.s.w, block + (h * f.W + w) * width, width * sizeof(T));
    return;
  }
  for (int64_t h = 0; h < f.H; ++h)
    for (int64_t c = 0; c < width; ++c)
      for (int64_t w = 0; w < f.W; ++w)
        dst[c * f.s.c + h * f.s.h + w * f.s.w] = block[(h * f.W + w) * width + c];
}

// Whether a RoI's results for `width` channels go through a channels-last
// staging buffer (see store_bins): when the pooled array's channels are not
// adjacent.
template <typename T> bool staged_results(const Pooled<T>& pooled, int64_t width) {
  return pooled.s.c != 1 && width > 1;
}

// NCHW results larger than this in all are written with non-temporal
// stores: ordinary stores first read every line of a result far larger than
// the caches, only for it to be evicted again (many_rois: 100 MB). Not NHWC
// results, which the bin loops store straight from registers: staging them
// for non-temporal stores took 1.0-1.18x the time (AVX2, mask_head and
// many_rois, 1 and 2 threads).
static const int64_t kStreamedBytes = 32 << 20;

template <typename T> bool streamed_results(const Pooled<T>& pooled) {
  return pooled.s.c != 1 &&
         (double)pooled.K * (double)pooled.C * (double)(pooled.PH * pooled.PW) * sizeof(T) >
             (double)kStreamedBytes;
}

// Whether forward stages a RoI's results before store_bins writes them.
template <typename T> bool staged_forward(const Pooled<T>& pooled, int64_t width) {
  return staged_results(pooled, width) || streamed_results(pooled);
}

// dst[:n] = src[:n] by non-temporal stores from the first 16-byte boundary
// on; stream_fence() orders them before the results are handed over.
template <typename T> void stream_copy(T* dst, const T* src, int64_t n) {
  char* to = (char*)dst;
  const char* from = (const char*)src;
  int64_t bytes = n * (int64_t)sizeof(T);
#ifdef __SSE2__
  const int64_t head = std::min<int64_t>(bytes, (16 - ((uintptr_t)to & 15)) & 15);
  memcpy(to, from, head);
  for (to += head, from += head, bytes -= head; bytes >= 16; to += 16, from += 16, bytes -= 16)
    _mm_stream_si128((__m128i*)to, _mm_loadu_si128((const __m128i*)from));
#endif
  memcpy(to, from, bytes);
}

inline void stream_fence() {
#ifdef __SSE2__
  _mm_sfence();
#endif
}

// Bytes of the buffer in which store_bins puts streamed NCHW results in
// order: small enough to stay in L1.
static const int64_t kOrderedBytes = 16 << 10;

// A RoI's results staged channels-last as (PH * PW, width), and
// out[k, c0 : c0 + width]: NCHW results are staged so the bin loops run over
// adjacent channels, and moved to or from the pooled array by transposes.
template <typename T>
void store_bins(const T* staged, int64_t width, const Pooled<T>& out, int64_t k, int64_t c0) {
  T* dst = &out.at(k, c0, 0, 0);
  const int64_t bins = out.PH * out.PW, lanes = Lanes<T>::value;
  // Whole lines of channels where it can: whole tiles, chunks of whole
  // lines of results.
  int64_t chunk = kOrderedBytes / (int64_t)sizeof(T) / bins;
  if (chunk >= lanes) chunk = chunk / lanes * lanes;
  const bool stream = streamed_results(out);
  if (stream && chunk > 0 && out.s.c == bins && out.s.w == 1 && out.s.h == out.PW) {
    alignas(64) T ordered[kOrderedBytes / sizeof(T)];
    for (int64_t c = 0; c < width; c += chunk) {
      const int64_t n = std::min(chunk, width - c);
      transpose(staged + c, width, bins, n, ordered, bins);
      stream_copy(dst + c * bins, ordered, n * bins);
    }
    return stream_fence();
  }
  if (out.s.w == 1 && out.s.h == out.PW)
    // Straight into the pooled array: 16-byte tiles (AVX2's, whose stores
    // cross a cache line more often at the results' pitch, took 1.02-1.07x
    // the time on frcnn_head).
    return transpose(staged, width, out.PH * out.PW, width, dst, out.s.c, RowPrefetch::kNone,
                     TileWidth::k16Bytes);
  for (int64_t c = 0; c < width; ++c)
    for (int64_t ph = 0; ph < out.PH; ++ph)
      for (int64_t pw = 0; pw < out.PW; ++pw)
        dst[c * out.s.c + ph * out.s.h + pw * out.s.w] = staged[(ph * out.PW + pw) * width + c];
}

// The lines of pooled[k, c0 : c0 + width], requested a part at a time into
// L2, to be read (backward asks for the next RoI's output gradients while
// it scatters the current one: many_rois, mask_head 0.87-0.9x the time;
// the argmax as well, roi_pool's and roi_align's as wide as its lanes) or
// written (forward readies the next RoI's NCHW results, frcnn_head 0.9x).
struct Prefetch {
  const char* begin = nullptr;
  int64_t lines = 0;
  bool write;

  template <typename T>
  Prefetch(const Pooled<T>& p, int64_t k, int64_t c0, int64_t width, bool to_write = false)
      : write(to_write) {
    if (k < 0) return;
    const char* first = (const char*)&p.at(k, c0, 0, 0);
    const char* last = (const char*)&p.at(k, c0 + width - 1, p.PH - 1, p.PW - 1);
    if (last < first) return;
    begin = first;
    lines = (last - first) / 64 + 1;
  }
  void part(int64_t i, int64_t parts) const {
#if defined(__GNUC__)
    for (int64_t l = lines * i / parts; l < lines * (i + 1) / parts; ++l) {
      if (write)
        __builtin_prefetch(begin + 64 * l, 1, 2);
      else
        __builtin_prefetch(begin + 64 * l, 0, 2);
    }
#endif
  }
};

// The NCHW results of RoI next_k that forward readies while it computes the
// current RoI: only those written by plain stores from a staging buffer.
template <typename T>
Prefetch next_written(const Pooled<T>& out, int64_t next_k, int64_t c0, int64_t width) {
  const bool plain_staged = staged_results(out, width) && !streamed_results(out);
  return Prefetch(out, plain_staged ? next_k : -1, c0, width, true);
}

// Whether roi_align's backward loads a RoI's output gradients (and winners)
// for `width` channels up front into a channels-last buffer (load_bins):
// NCHW ones so the loops run over adjacent channels, NHWC ones so that all
// the RoI's lines are requested at once, not one bin at a time between
// scatters (read in place they took 1.07-1.09x the time; roi_pool's NHWC
// backward, with one add per input, reads them in place).
inline bool staged_inputs(int64_t width) { return width > 1; }

template <typename T>
void load_bins(const Pooled<T>& in, int64_t k, int64_t c0, int64_t width, T* staged) {
  const T* src = &in.at(k, c0, 0, 0);
  if (in.s.w == 1 && in.s.h == in.PW)
    return transpose(src, in.s.c, width, in.PH * in.PW, staged, width);
  if (in.s.c == 1) {
    for (int64_t ph = 0; ph < in.PH; ++ph)
      for (int64_t pw = 0; pw < in.PW; ++pw)
        memcpy(staged + (ph * in.PW + pw) * width, src + ph * in.s.h + pw * in.s.w,
               width * sizeof(T));
    return;
  }
  for (int64_t c = 0; c < width; ++c)
    for (int64_t ph = 0; ph < in.PH; ++ph)
      for (int64_t pw = 0; pw < in.PW; ++pw)
        staged[(ph * in.PW + pw) * width + c] = src[c * in.s.c + ph * in.s.h + pw * in.s.w];
}

// Largest channels-last copy a thread makes of an NCHW block; the largest
// gradient block a backward item scatters into in place (it stays in L2
// beside the output gradients streaming through: frcnn_head's roi_pool
// backward took 0.77-0.86x the time of 512 KB blocks on a 1 MB L2, 128 KB
// gained nothing more); the most channels one item handles (its
// accumulators stay in L1).
static const int64_t kCopyBytes = 8 << 20;
static const int64_t kScatterBytes = 256 << 10;
static const int64_t kWidestBlock = 256;

// Whether NCHW input should be copied channels-last, block by block: when
// channels are not adjacent, there are enough of them to fill SIMD lanes,
// and the loops read the map more often (`reads_per_channel`) than the copy
// costs.
template <typename T>
bool worth_channels_last(const Maps<T>& f, double reads_per_channel) {
  const int64_t plane_bytes = f.H * f.W * (int64_t)sizeof(T);
  return f.s.c != 1 && f.C >= Lanes<T>::value && plane_bytes <= kCopyBytes &&
         reads_per_channel >= 2.0 * (double)(f.N * f.H * f.W);
}

// Most channels of a block of `bytes` at most, in whole SIMD chunks.
template <typename T> int64_t block_width(const Maps<T>& f, int64_t bytes) {
  const int64_t lanes = Lanes<T>::value;
  const int64_t fit = bytes / (f.H * f.W * (int64_t)sizeof(T)) / lanes * lanes;
  return std::max(lanes, std::min(kWidestBlock, fit));
}

// A RoI of no image (batch index out of range) reads 0 in channels
// [c0, c0 + width), with argmax -1 where there is one.
template <typename T, typename A>
void write_empty_rois(const Pooled<T>& out, const Pooled<A>& argmax, int64_t k, int64_t c0,
                      int64_t width) {
  for (int64_t c = c0; c < c0 + width; ++c)
    for (int64_t ph = 0; ph < out.PH; ++ph)
      for (int64_t pw = 0; pw < out.PW; ++pw) {
        out.at(k, c, ph, pw) = 0;
        if (argmax.data) argmax.at(k, c, ph, pw) = -1;
      }
}

// Forward: every (RoI, channel block) pair once, RoIs in the order of
// `groups` (ImageGroups::by_position) and, last, those of no image. In
// place, items are those pairs; channels-last, items are (channel block,
// image) pairs that copy the block once and run all the image's RoIs on it.
// roi(in, k, next, c0, scratch) writes RoI k's outputs (in `out` and
// `argmax`) for channels [c0, c0 + in.width) of image batch[k]; next is the
// RoI the item visits after k (-1: none, or not known). A RoI whose batch
// index is out of range reads 0. Scratch has a `block` vector.
template <typename T, typename Scratch, typename A, typename RoiFn>
void forward_blocks(const Maps<T>& f, const int64_t* batch, int64_t rois,
                    const ImageGroups& groups, bool channels_last, int threads, double work,
                    const Pooled<T>& out, const Pooled<A>& argmax, RoiFn roi) {
  for (int64_t k = 0; k < rois; ++k)
    if (batch[k] < 0 || batch[k] >= f.N) write_empty_rois(out, argmax, k, 0, f.C);
  if (!channels_last) {
    const int64_t valid = (int64_t)groups.order.size();
    const int64_t width = channel_block<T>(f.C, valid, threads, kWidestBlock);
    const int64_t blocks = (f.C + width - 1) / width;
    for_each_item<Scratch>(valid * blocks, threads, work, [&](int64_t item, Scratch& s) {
      const int64_t k = groups.order[item / blocks], c0 = (item % blocks) * width;
      const ChannelBlock<const T> in{f.plane(batch[k], c0), f.s.h, f.s.w, f.s.c,
                                     std::min(width, f.C - c0)};
      roi(in, k, (int64_t)-1, c0, s);
    });
    return;
  }
  // Every image's channels are shared among all threads (groups 1): images
  // differ in their RoIs' number and sizes, and a thread that took whole
  // images would leave the others waiting (frcnn_head, 2 images at 2
  // threads: 0.87-0.94x the time of one 256-channel block per image).
  const int64_t widest = block_width<T>(f, kCopyBytes);
  const int64_t width = channel_block<T>(f.C, 1, threads, widest);
  const int64_t blocks = (f.C + width - 1) / width;
  for_each_item<Scratch>(f.N * blocks, threads, work, [&](int64_t item, Scratch& s) {
    const int64_t n = item % f.N, c0 = item / f.N * width, w = std::min(width, f.C - c0);
    s.block.resize(f.H * f.W * w);
    copy_channels_last(f, n, c0, w, s.block.data());
    const ChannelBlock<const T> in{s.block.data(), f.W * w, w, 1, w};
    for (int64_t r = groups.begin[n]; r < groups.begin[n + 1]; ++r)
      roi(in, groups.order[r], groups.after(n, r), c0, s);
  });
}

// Zeroes the block's channels at every pixel of a rows x columns map, in
// the order its memory runs: as one run where the block is all of an NHWC
// image (memset: at mask_head's 55 MB, non-temporal stores that skip
// reading the lines first, roi_align and roi_pool NHWC backward 0.84-0.92x
// the time on AVX2), pixel by pixel where its channels are adjacent, else
// plane by plane (an NCHW block zeroed pixel by pixel strode a plane per
// store: 11% of frcnn_head's roi_pool backward). All-zero bits are +0.
template <typename T> void zero_block(const ChannelBlock<T>& b, int64_t rows, int64_t columns) {
  if (b.sc == 1 && b.sw == b.width && b.sh == columns * b.width) {
    memset(b.data, 0, (size_t)(rows * columns * b.width) * sizeof(T));
    return;
  }
  if (b.sc == 1) {
    for (int64_t h = 0; h < rows; ++h)
      for (int64_t w = 0; w < columns; ++w)
        for (int64_t c = 0; c < b.width; ++c) b.data[h * b.sh + w * b.sw + c] = 0;
    return;
  }
  for (int64_t c = 0; c < b.width; ++c)
    for (int64_t h = 0; h < rows; ++h)
      for (int64_t w = 0; w < columns; ++w) b.data[c * b.sc + h * b.sh + w * b.sw] = 0;
}

// Backward: items are (channel block, image) pairs that add the gradients
// of the image's RoIs in RoI order, into the gradient itself or, channels-
// last, into a zeroed copy stored back at the end. grad starts zeroed, or
// with zero_first each item zeroes its own block: in parallel and just
// before the block is used, which beats the page faults of fresh zeroed
// memory. roi(out, k, next, c0, scratch) adds RoI k's share to channels
// [c0, c0 + width); next is the RoI the item visits after k (-1: none).
template <typename T, typename Scratch, typename RoiFn>
void backward_blocks(const Maps<T>& grad, const int64_t* batch, int64_t rois, bool channels_last,
                     bool zero_first, int threads, double work, RoiFn roi) {
  const ImageGroups groups(batch, rois, grad.N);
  // NHWC blocks are as wide as allowed: a RoI then updates whole runs of its
  // pixels' channels; NCHW planes are kept few enough to stay in L2.
  // Channels-last copies take up to half of kCopyBytes, or all of it where
  // half would leave fewer than 128 channels to share each sample's taps
  // (frcnn_head float64: 7 MB blocks took 1.1-1.2x the time of 3.5 MB ones).
  const int64_t copied = std::max(block_width<T>(grad, kCopyBytes / 2),
                                  std::min<int64_t>(128, block_width<T>(grad, kCopyBytes)));
  const int64_t widest = channels_last     ? copied
                         : grad.s.c == 1   ? kWidestBlock
                                           : block_width<T>(grad, kScatterBytes);
  // Threads share each image's channels as in forward_blocks, except on an
  // NHWC map in place with an image for each thread: fewer than all of its
  // channels take a dense copy (below; mask_head NHWC, 2 images: 2x the time).
  const bool in_place_nhwc = grad.s.c == 1 && !channels_last;
  const int64_t width = channel_block<T>(grad.C, in_place_nhwc ? grad.N : 1, threads, widest);
  const int64_t blocks = (grad.C + width - 1) / width;
  // A block of some of an NHWC map's channels is scattered into a dense copy
  // as well: in place its pixels lie C channels apart (many_rois at 2
  // threads, 128 of 256 channels: the copy took 0.79-0.85x the time).
  const bool dense_copy = channels_last || (grad.s.c == 1 && width < grad.C);
  for_each_item<Scratch>(grad.N * blocks, threads, work, [&](int64_t item, Scratch& s) {
    const int64_t n = item % grad.N, c0 = item / grad.N * width;
    const int64_t w = std::min(width, grad.C - c0);
    ChannelBlock<T> out{grad.plane(n, c0), grad.s.h, grad.s.w, grad.s.c, w};
    if (dense_copy) {
      s.block.assign(grad.H * grad.W * w, (T)0);
      out = ChannelBlock<T>{s.block.data(), grad.W * w, w, 1, w};
    } else if (zero_first) {
      zero_block(out, grad.H, grad.W);
    }
    for (int64_t r = groups.begin[n]; r < groups.begin[n + 1]; ++r)
      roi(out, groups.order[r], groups.after(n, r), c0, s);
    if (dense_copy) store_channels_last(s.block.data(), w, grad, n, c0);
  });
}

}  // namespace cyroi
