// CUDA kernels of roi_align (modes "avg" and "max") and roi_pool, forward and
// backward, loaded by cyroi/_cuda.py through cupy.RawModule.
//
// Templates over the data type T and the accumulation type Acc, instantiated
// by name expression per dtype (float16 and bfloat16 accumulate in float).
// One thread per output element, in grid-stride loops with 64-bit indices.
// A pooled array (output, grad_output, argmax) is contiguous in NCHW or NHWC
// order (`channels_last`); feature maps and their gradients are any strided
// view, described by (N, C, H, W) extents and element strides.
#ifdef CYROI_FP16
#include <cuda_fp16.h>
#endif
#ifdef CYROI_BF16
#include <cuda_bf16.h>
#endif
#include "roi_elements.h"

namespace cyroi {

__device__ __forceinline__ int64_t first_index() {
  return (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t index_stride() { return (int64_t)blockDim.x * gridDim.x; }

// Default backward: float atomics, fast, order (and so rounding) varies.
template <typename Acc> struct AtomicSink {
  Acc* grad;
  __device__ void add(int64_t offset, Acc v) { atomicAdd(grad + offset, v); }
};

// deterministic=True: fixed-point counts, see roi_elements.h.
template <typename Acc> struct FixedPointSink {
  unsigned long long* counts;
  Acc* non_finite;
  double scale;
  __device__ void add(int64_t offset, Acc v) {
    if (is_finite((double)v)) {
      atomicAdd(counts + offset, (unsigned long long)to_fixed_point((double)v, scale));
    } else {
      atomicAdd(non_finite + offset, v);
    }
  }
};

// Runs scatter(sink) with the sink the call asked for: fixed-point when
// `counts` is given, atomics on `grad` otherwise.
template <typename Acc, typename Scatter>
__device__ void scatter_into(Acc* grad, unsigned long long* counts, const int* max_exponent,
                             int64_t bins, const Scatter& scatter) {
  if (counts) {
    FixedPointSink<Acc> sink = {counts, grad, fixed_point_scale(*max_exponent, bins)};
    scatter(sink);
  } else {
    AtomicSink<Acc> sink = {grad};
    scatter(sink);
  }
}

// An argmax: int32, or int64 where wide_argmax (roi_pool: maps of more than
// 2^31 - 1 pixels, cyroi._checks.pool_argmax_dtype; roi_align: adaptive or
// huge sample grids, align_argmax_dtype).
__device__ inline int64_t argmax_at(const void* argmax, int wide_argmax, int64_t i) {
  return wide_argmax ? ((const int64_t*)argmax)[i] : (int64_t)((const int*)argmax)[i];
}

__device__ inline void set_argmax(void* argmax, int wide_argmax, int64_t i, int64_t where) {
  if (wide_argmax)
    ((int64_t*)argmax)[i] = where;
  else
    ((int*)argmax)[i] = (int)where;
}

template <typename T, typename Acc>
__global__ void roi_align_forward(const T* features, int64_t N, int64_t C, int64_t H, int64_t W,
                                  int64_t sn, int64_t sc, int64_t sh, int64_t sw,
                                  const Acc* boxes, const int64_t* batch, int64_t K,
                                  int64_t PH, int64_t PW, Acc scale, int64_t sampling_ratio,
                                  int aligned, int max_mode, int channels_last, T* out,
                                  void* argmax, int wide_argmax) {
  const View4 f = {N, C, H, W, sn, sc, sh, sw};
  const AlignSpec<Acc> s = {scale, PH, PW, sampling_ratio, aligned != 0, max_mode != 0};
  const int64_t total = K * C * PH * PW;
  for (int64_t i = first_index(); i < total; i += index_stride()) {
    int64_t where;
    const PooledIndex e = pooled_index(i, C, PH, PW, channels_last != 0);
    out[i] = (T)roi_align_element<T, Acc>(features, f, boxes, batch, s, e, &where);
    if (argmax) set_argmax(argmax, wide_argmax, i, where);
  }
}

// grad: the Acc gradient buffer (or the non-finite part of fixed-point sums).
template <typename T, typename Acc>
__global__ void roi_align_backward(const T* grad_output, const void* argmax, int wide_argmax,
                                   const Acc* boxes, const int64_t* batch, int64_t K,
                                   int64_t PH, int64_t PW, Acc scale, int64_t sampling_ratio,
                                   int aligned, int max_mode, int channels_last, int64_t N,
                                   int64_t C, int64_t H, int64_t W, int64_t sn, int64_t sc,
                                   int64_t sh, int64_t sw, Acc* grad, unsigned long long* counts,
                                   const int* max_exponent) {
  const View4 v = {N, C, H, W, sn, sc, sh, sw};
  const AlignSpec<Acc> s = {scale, PH, PW, sampling_ratio, aligned != 0, max_mode != 0};
  const int64_t total = K * C * PH * PW;
  for (int64_t i = first_index(); i < total; i += index_stride()) {
    const PooledIndex e = pooled_index(i, C, PH, PW, channels_last != 0);
    const Acc g = (Acc)grad_output[i];
    const int64_t sample = argmax ? argmax_at(argmax, wide_argmax, i) : -1;
    scatter_into(grad, counts, max_exponent, K * PH * PW, [&](auto& sink) {
      roi_align_scatter(g, sample, v, boxes, batch, s, e, sink);
    });
  }
}

template <typename T, typename Acc>
__global__ void roi_pool_forward(const T* features, int64_t N, int64_t C, int64_t H, int64_t W,
                                 int64_t sn, int64_t sc, int64_t sh, int64_t sw,
                                 const Acc* boxes, const int64_t* batch, int64_t K, int64_t PH,
                                 int64_t PW, Acc scale, int channels_last, T* out,
                                 void* argmax, int wide_argmax) {
  const View4 f = {N, C, H, W, sn, sc, sh, sw};
  const int64_t total = K * C * PH * PW;
  for (int64_t i = first_index(); i < total; i += index_stride()) {
    int64_t where;
    const PooledIndex e = pooled_index(i, C, PH, PW, channels_last != 0);
    out[i] = (T)roi_pool_element<T, Acc>(features, f, boxes, batch, scale, PH, PW, e, &where);
    set_argmax(argmax, wide_argmax, i, where);
  }
}

template <typename T, typename Acc>
__global__ void roi_pool_backward(const T* grad_output, const void* argmax, int wide_argmax,
                                  const int64_t* batch, int64_t K, int64_t PH, int64_t PW,
                                  int channels_last, int64_t N, int64_t C, int64_t H, int64_t W,
                                  int64_t sn, int64_t sc, int64_t sh, int64_t sw, Acc* grad,
                                  unsigned long long* counts, const int* max_exponent) {
  const View4 v = {N, C, H, W, sn, sc, sh, sw};
  const int64_t total = K * C * PH * PW;
  for (int64_t i = first_index(); i < total; i += index_stride()) {
    const PooledIndex e = pooled_index(i, C, PH, PW, channels_last != 0);
    const Acc g = (Acc)grad_output[i];
    const int64_t where = argmax_at(argmax, wide_argmax, i);
    scatter_into(grad, counts, max_exponent, K * PH * PW, [&](auto& sink) {
      roi_pool_scatter(g, where, v, batch, e, sink);
    });
  }
}

// Largest magnitude exponent of the finite values (for fixed_point_scale);
// `max_exponent` starts at kNoExponent. A maximum does not depend on order.
template <typename T, typename Acc>
__global__ void max_exponent_of(const T* values, int64_t total, int* max_exponent) {
  int largest = kNoExponent;
  for (int64_t i = first_index(); i < total; i += index_stride()) {
    largest = max_of(largest, magnitude_exponent((double)(Acc)values[i]));
  }
  if (largest != kNoExponent) atomicMax(max_exponent, largest);
}

// out = fixed-point count / scale + non-finite part, in the output dtype.
template <typename T, typename Acc>
__global__ void fixed_point_to_values(const unsigned long long* counts, const Acc* non_finite,
                                      const int* max_exponent, int64_t bins, int64_t total,
                                      T* out) {
  const double scale = fixed_point_scale(*max_exponent, bins);
  for (int64_t i = first_index(); i < total; i += index_stride()) {
    out[i] = (T)((Acc)((double)(long long)counts[i] / scale) + non_finite[i]);
  }
}

// The Acc gradient buffer of 16-bit dtypes, rounded to the output dtype.
template <typename T, typename Acc>
__global__ void cast_values(const Acc* values, int64_t total, T* out) {
  for (int64_t i = first_index(); i < total; i += index_stride()) out[i] = (T)values[i];
}

}  // namespace cyroi

// The rest of the RoI family, on the helpers above.
#include "family_ops.cuh"
