// CPU loops of multiscale_roi_align: roi_align's work items, each on the
// pyramid level of its RoI. Forward is (RoI, channel block) in one parallel
// loop over all RoIs (visited level by level, for cache locality); backward
// is (level, image, channel block), visiting the RoIs of that level and
// image in a fixed order. The same bits for any thread count, no atomics.
#pragma once
#include "../cyroi/kernels/fpn_math.h"
#include "cpu_roi_align.h"

namespace cyroi {

template <typename T> struct FpnParams {
  T canonical_scale, canonical_level;
  int64_t k_min, k_max;
};

template <typename T> int64_t fpn_level_of(const T* box, const FpnParams<T>& fpn) {
  return fpn_level(box, fpn.canonical_scale, fpn.canonical_level, fpn.k_min, fpn.k_max);
}

// maps[i] and params[i] (its spatial_scale) describe pyramid level i; RoI k
// is on level `level` (fpn_level_of).
template <typename T>
void multiscale_roi_align_forward_item(const Maps<T>* maps, const AlignParams<T>* params,
                                       int64_t level, const T* box, int64_t n, int64_t k,
                                       int64_t c0, int64_t c1, const Pooled<T>& out) {
  roi_align_forward_item(maps[level], box, n, params[level], k, c0, c1, out, Pooled<int64_t>{});
}

// rois groups the RoIs by (level, image): group level * N + n.
template <typename T>
void multiscale_roi_align_backward_item(const Maps<T>* grads, const AlignParams<T>* params,
                                        const Pooled<T>& grad_out, const T* boxes,
                                        const RoisByImage& rois, int64_t level, int64_t n,
                                        int64_t c0, int64_t c1) {
  const RoisByImage of_level = {rois.order, rois.begin + level * grads[level].N};
  roi_align_backward_item(grads[level], grad_out, boxes, of_level, params[level],
                          Pooled<int64_t>{}, n, c0, c1);
}

}  // namespace cyroi
