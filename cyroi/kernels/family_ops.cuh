// CUDA kernels of ps_roi_align, ps_roi_pool, roi_align_rotated,
// precise_roi_pool, multiscale_roi_align (forward and backward for
// features) and the gradients for box coordinates (roi_align avg,
// roi_align_rotated, precise_roi_pool), pasted into roi_ops.cu (they share
// its grid-stride helpers and gradient sinks). Conventions as there: pooled
// arrays are contiguous in NCHW or NHWC order, feature maps and gradients
// any strided view; `channels` is the pooled array's channel count
// (C / (PH * PW) for the ps ops).
#pragma once
#include "box_grad_elements.h"
#include "family_elements.h"

namespace cyroi {

// out[i] = element(e) over every pooled element.
template <typename T, typename Element>
__device__ void each_pooled_element(int64_t K, int64_t channels, int64_t PH, int64_t PW,
                                    int channels_last, T* out, const Element& element) {
  const int64_t total = K * channels * PH * PW;
  for (int64_t i = first_index(); i < total; i += index_stride()) {
    out[i] = (T)element(pooled_index(i, channels, PH, PW, channels_last != 0));
  }
}

// visit(g, e) for every pooled element e and its gradient g.
template <typename T, typename Acc, typename Visit>
__device__ void each_pooled_gradient_value(const T* grad_output, int64_t K, int64_t channels,
                                           int64_t PH, int64_t PW, int channels_last,
                                           const Visit& visit) {
  const int64_t total = K * channels * PH * PW;
  for (int64_t i = first_index(); i < total; i += index_stride()) {
    visit((Acc)grad_output[i], pooled_index(i, channels, PH, PW, channels_last != 0));
  }
}

// scatter(g, e, sink) for every pooled element, into the gradient buffers
// of roi_ops.cu's backward kernels.
template <typename T, typename Acc, typename Scatter>
__device__ void each_pooled_gradient(const T* grad_output, int64_t K, int64_t channels,
                                     int64_t PH, int64_t PW, int channels_last, Acc* grad,
                                     unsigned long long* counts, const int* max_exponent,
                                     const Scatter& scatter) {
  each_pooled_gradient_value<T, Acc>(
      grad_output, K, channels, PH, PW, channels_last, [&](Acc g, const PooledIndex& e) {
        scatter_into(grad, counts, max_exponent, K * PH * PW,
                     [&](auto& sink) { scatter(g, e, sink); });
      });
}

// Argument lists shared by the kernels below.
#define CYROI_FEATURES                                                                    \
  const T *features, int64_t N, int64_t C, int64_t H, int64_t W, int64_t sn, int64_t sc, \
      int64_t sh, int64_t sw
#define CYROI_POOLED                                                                    \
  const Acc *boxes, const int64_t *batch, int64_t K, int64_t channels, int64_t PH,     \
      int64_t PW, int channels_last
#define CYROI_GRADIENT                                                                  \
  int64_t N, int64_t C, int64_t H, int64_t W, int64_t sn, int64_t sc, int64_t sh,       \
      int64_t sw, Acc *grad, unsigned long long *counts, const int *max_exponent

// ps_roi_align is roi_align "avg" with the half-pixel offset and no minimum
// size, each bin on its own input channel.
template <typename T, typename Acc>
__global__ void ps_roi_align_forward(CYROI_FEATURES, CYROI_POOLED, Acc scale,
                                     int64_t sampling_ratio, T* out) {
  const View4 f = {N, C, H, W, sn, sc, sh, sw};
  const AlignSpec<Acc> s = {scale, PH, PW, sampling_ratio, true, false};
  each_pooled_element(K, channels, PH, PW, channels_last, out, [&](const PooledIndex& e) {
    int64_t unused;
    return roi_align_element<T, Acc>(features, f, boxes, batch, s, ps_input_index(e, PH, PW),
                                     &unused);
  });
}

template <typename T, typename Acc>
__global__ void ps_roi_align_backward(const T* grad_output, CYROI_POOLED, Acc scale,
                                      int64_t sampling_ratio, CYROI_GRADIENT) {
  const View4 v = {N, C, H, W, sn, sc, sh, sw};
  const AlignSpec<Acc> s = {scale, PH, PW, sampling_ratio, true, false};
  each_pooled_gradient(grad_output, K, channels, PH, PW, channels_last, grad, counts,
                       max_exponent, [&](Acc g, const PooledIndex& e, auto& sink) {
                         roi_align_scatter(g, (int64_t)-1, v, boxes, batch, s,
                                           ps_input_index(e, PH, PW), sink);
                       });
}

template <typename T, typename Acc>
__global__ void ps_roi_pool_forward(CYROI_FEATURES, CYROI_POOLED, Acc scale, T* out) {
  const View4 f = {N, C, H, W, sn, sc, sh, sw};
  each_pooled_element(K, channels, PH, PW, channels_last, out, [&](const PooledIndex& e) {
    return ps_roi_pool_element<T, Acc>(features, f, boxes, batch, scale, PH, PW,
                                       ps_input_index(e, PH, PW));
  });
}

template <typename T, typename Acc>
__global__ void ps_roi_pool_backward(const T* grad_output, CYROI_POOLED, Acc scale,
                                     CYROI_GRADIENT) {
  const View4 v = {N, C, H, W, sn, sc, sh, sw};
  each_pooled_gradient(grad_output, K, channels, PH, PW, channels_last, grad, counts,
                       max_exponent, [&](Acc g, const PooledIndex& e, auto& sink) {
                         ps_roi_pool_scatter(g, v, boxes, batch, scale, PH, PW,
                                             ps_input_index(e, PH, PW), sink);
                       });
}

template <typename T, typename Acc>
__global__ void roi_align_rotated_forward(CYROI_FEATURES, CYROI_POOLED, Acc scale,
                                          int64_t sampling_ratio, int aligned, int clockwise,
                                          T* out) {
  const View4 f = {N, C, H, W, sn, sc, sh, sw};
  const RotatedSpec<Acc> s = {scale, PH, PW, sampling_ratio, aligned != 0, clockwise != 0};
  each_pooled_element(K, channels, PH, PW, channels_last, out, [&](const PooledIndex& e) {
    return roi_align_rotated_element<T, Acc>(features, f, boxes, batch, s, e);
  });
}

template <typename T, typename Acc>
__global__ void roi_align_rotated_backward(const T* grad_output, CYROI_POOLED, Acc scale,
                                           int64_t sampling_ratio, int aligned, int clockwise,
                                           CYROI_GRADIENT) {
  const View4 v = {N, C, H, W, sn, sc, sh, sw};
  const RotatedSpec<Acc> s = {scale, PH, PW, sampling_ratio, aligned != 0, clockwise != 0};
  each_pooled_gradient(grad_output, K, channels, PH, PW, channels_last, grad, counts,
                       max_exponent, [&](Acc g, const PooledIndex& e, auto& sink) {
                         roi_align_rotated_scatter(g, v, boxes, batch, s, e, sink);
                       });
}

template <typename T, typename Acc>
__global__ void precise_roi_pool_forward(CYROI_FEATURES, CYROI_POOLED, Acc scale, T* out) {
  const View4 f = {N, C, H, W, sn, sc, sh, sw};
  each_pooled_element(K, channels, PH, PW, channels_last, out, [&](const PooledIndex& e) {
    return precise_roi_pool_element<T, Acc>(features, f, boxes, batch, scale, PH, PW, e);
  });
}

template <typename T, typename Acc>
__global__ void precise_roi_pool_backward(const T* grad_output, CYROI_POOLED, Acc scale,
                                          CYROI_GRADIENT) {
  const View4 v = {N, C, H, W, sn, sc, sh, sw};
  each_pooled_gradient(grad_output, K, channels, PH, PW, channels_last, grad, counts,
                       max_exponent, [&](Acc g, const PooledIndex& e, auto& sink) {
                         precise_roi_pool_scatter(g, v, boxes, batch, scale, PH, PW, e, sink);
                       });
}

// Box-coordinate gradients: one thread per bin (k, ph, pw) writes its
// `values` partial derivatives to parts[((k * PH + ph) * PW + pw) * values];
// the driver sums each RoI's bins. grad_output is contiguous, `channels`
// its channel count (the features' C).
template <typename Acc, typename Bin>
__device__ void each_box_grad_bin(const View4& f, int64_t K, int64_t channels, int64_t PH,
                                  int64_t PW, int channels_last, int values, Acc* parts,
                                  const Bin& bin) {
  const int64_t total = K * PH * PW;
  for (int64_t i = first_index(); i < total; i += index_stride()) {
    const BinGradient bg = {&f, channels, PH, PW, i / (PH * PW), (i / PW) % PH, i % PW,
                            channels_last != 0};
    bin(bg, parts + i * values);
  }
}

template <typename T, typename Acc>
__global__ void roi_align_box_grad(CYROI_FEATURES, const T* grad_output, CYROI_POOLED,
                                   Acc scale, int64_t sampling_ratio, int aligned, Acc* parts) {
  const View4 f = {N, C, H, W, sn, sc, sh, sw};
  const AlignSpec<Acc> s = {scale, PH, PW, sampling_ratio, aligned != 0, false};
  each_box_grad_bin(f, K, channels, PH, PW, channels_last, 4, parts,
                    [&](const BinGradient& bg, Acc* part) {
                      roi_align_box_grad_bin(features, grad_output, bg, boxes, batch, s, part);
                    });
}

template <typename T, typename Acc>
__global__ void roi_align_rotated_box_grad(CYROI_FEATURES, const T* grad_output, CYROI_POOLED,
                                           Acc scale, int64_t sampling_ratio, int aligned,
                                           int clockwise, Acc* parts) {
  const View4 f = {N, C, H, W, sn, sc, sh, sw};
  const RotatedSpec<Acc> s = {scale, PH, PW, sampling_ratio, aligned != 0, clockwise != 0};
  each_box_grad_bin(f, K, channels, PH, PW, channels_last, 5, parts,
                    [&](const BinGradient& bg, Acc* part) {
                      roi_align_rotated_box_grad_bin(features, grad_output, bg, boxes, batch, s,
                                                     part);
                    });
}

template <typename T, typename Acc>
__global__ void precise_roi_pool_box_grad(CYROI_FEATURES, const T* grad_output, CYROI_POOLED,
                                          Acc scale, Acc* parts) {
  const View4 f = {N, C, H, W, sn, sc, sh, sw};
  each_box_grad_bin(f, K, channels, PH, PW, channels_last, 4, parts,
                    [&](const BinGradient& bg, Acc* part) {
                      precise_roi_pool_box_grad_bin(features, grad_output, bg, boxes, batch,
                                                    scale, part);
                    });
}

// multiscale_roi_align: each RoI is pooled by roi_align (mode "avg") from
// the pyramid level fpn_level picks for it, all levels in one launch. The
// levels' arrays come as tables indexed by level: their addresses (uint64,
// as the driver takes them from the arrays), their View4s (8 int64 a level:
// N, C, H, W, then element strides) and their spatial scales.
#define CYROI_PYRAMID                                                        \
  const int64_t *level_views, const Acc *level_scales, Acc canonical_scale, \
      Acc canonical_level, int64_t k_min, int64_t k_max

template <typename Acc> struct Pyramid {
  const int64_t* views;
  const Acc* scales;
  Acc canonical_scale, canonical_level;
  int64_t k_min, k_max;
  AlignSpec<Acc> align;  // of every level; spec(level) sets the scale

  // The level of RoI k.
  __device__ int64_t level_of(const Acc* boxes, int64_t k) const {
    return fpn_level(boxes + 4 * k, canonical_scale, canonical_level, k_min, k_max);
  }
  __device__ View4 view(int64_t level) const {
    const int64_t* v = views + 8 * level;
    return {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
  }
  __device__ AlignSpec<Acc> spec(int64_t level) const {
    AlignSpec<Acc> s = align;
    s.scale = scales[level];
    return s;
  }
};

// The Pyramid of a kernel's CYROI_PYRAMID, PH, PW, sampling_ratio and
// aligned arguments.
#define CYROI_PYRAMID_FROM_ARGS                                             \
  {level_views, level_scales, canonical_scale, canonical_level, k_min, k_max, \
   {(Acc)0, PH, PW, sampling_ratio, aligned != 0, false}}

template <typename T, typename Acc>
__global__ void multiscale_roi_align_forward(const unsigned long long* level_features,
                                             CYROI_POOLED, int64_t sampling_ratio, int aligned,
                                             CYROI_PYRAMID, T* out) {
  const Pyramid<Acc> p = CYROI_PYRAMID_FROM_ARGS;
  each_pooled_element(K, channels, PH, PW, channels_last, out, [&](const PooledIndex& e) {
    const int64_t level = p.level_of(boxes, e.k);
    int64_t unused;
    return roi_align_element<T, Acc>((const T*)level_features[level], p.view(level), boxes,
                                     batch, p.spec(level), e, &unused);
  });
}

// level_grads and level_counts: each level's gradient buffers (Acc and, for
// deterministic=True, fixed-point counts; level_counts is null otherwise).
// All levels share the fixed-point scale: one grad_output, K * PH * PW bins.
template <typename T, typename Acc>
__global__ void multiscale_roi_align_backward(const T* grad_output, CYROI_POOLED,
                                              int64_t sampling_ratio, int aligned,
                                              CYROI_PYRAMID,
                                              const unsigned long long* level_grads,
                                              const unsigned long long* level_counts,
                                              const int* max_exponent) {
  const Pyramid<Acc> p = CYROI_PYRAMID_FROM_ARGS;
  each_pooled_gradient_value<T, Acc>(
      grad_output, K, channels, PH, PW, channels_last, [&](Acc g, const PooledIndex& e) {
        const int64_t level = p.level_of(boxes, e.k);
        const View4 v = p.view(level);
        const AlignSpec<Acc> s = p.spec(level);
        auto* counts = level_counts ? (unsigned long long*)level_counts[level] : nullptr;
        scatter_into((Acc*)level_grads[level], counts, max_exponent, K * PH * PW,
                     [&](auto& sink) {
                       roi_align_scatter(g, (int64_t)-1, v, boxes, batch, s, e, sink);
                     });
      });
}

#undef CYROI_FEATURES
#undef CYROI_POOLED
#undef CYROI_GRADIENT
#undef CYROI_PYRAMID
#undef CYROI_PYRAMID_FROM_ARGS

}  // namespace cyroi
