// CPU loops of multiscale_roi_align: roi_align's work items, each on the
// pyramid level of its RoI. Forward is (RoI, channel block) in one parallel
// loop over all RoIs (visited level by level, for cache locality); backward
// is (level, image, channel block), visiting the RoIs of that level and
// image in a fixed order. The same bits for any thread count, no atomics.
#pragma once
#include "../cyroi/kernels/fpn_math.h"
#include "cpu_family_drivers.h"
#include "cpu_roi_align.h"

namespace cyroi {

template <typename T> struct FpnParams {
  T canonical_scale, canonical_level;
  int64_t k_min, k_max;
};

template <typename T> int64_t fpn_level_of(const T* box, const FpnParams<T>& fpn) {
  return fpn_level(box, fpn.canonical_scale, fpn.canonical_level, fpn.k_min, fpn.k_max);
}

// Forward: items are (RoI, channel block) pairs, the RoIs taken in `order`
// (by level, for cache locality). maps[i] and params[i] (its spatial_scale)
// describe pyramid level i; RoI k is on level levels[k] (fpn_level_of).
template <typename T>
void multiscale_forward_items(const Maps<T>* maps, const AlignParams<T>* params,
                              const int64_t* levels, const int64_t* order, const T* boxes,
                              int64_t box_stride, const int64_t* batch, int64_t rois,
                              const Pooled<T>& out, int64_t channel_block, int threads) {
  const ChannelBlocks blocks(out.C, channel_block);
  const int64_t items = rois * blocks.count;
  run_items<NoScratch>(items, team_for(items, threads, out), Schedule::kStatic,
                       [&](int64_t item, NoScratch&) {
                         const int64_t k = order[blocks.group(item)], level = levels[k];
                         roi_align_forward_item(maps[level], boxes + k * box_stride, batch[k],
                                                params[level], k, blocks.begin(item),
                                                blocks.end(item), out, Pooled<int64_t>{});
                       });
}

// Backward: items are (level, image, channel block) triples; rois groups the
// RoIs by (level, image): group level * N + n. Items differ in cost (level 0
// is the largest), so threads take them as they free up; each still owns its
// planes, so the bits do not change.
template <typename T>
void multiscale_backward_items(const Maps<T>* grads, const AlignParams<T>* params, int64_t levels,
                               const Pooled<T>& grad_out, const T* boxes, const RoisByImage& rois,
                               int64_t channel_block, int threads) {
  const ChannelBlocks blocks(grad_out.C, channel_block);
  const int64_t images = grads[0].N, items = levels * images * blocks.count;
  run_items<NoScratch>(items, team_for(items, threads, grad_out), Schedule::kDynamic,
                       [&](int64_t item, NoScratch&) {
                         const int64_t group = blocks.group(item), level = group / images;
                         const RoisByImage of_level = {rois.order, rois.begin + level * images};
                         roi_align_backward_item(grads[level], grad_out, boxes, of_level,
                                                 params[level], Pooled<int64_t>{}, group % images,
                                                 blocks.begin(item), blocks.end(item));
                       });
}

}  // namespace cyroi
