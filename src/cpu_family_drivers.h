// The parallel loops of the RoI family's CPU ops beyond roi_align and
// roi_pool. Each op's header (cpu_ps_roi.h, cpu_rotated.h, ...) defines its
// work items as overloads of forward_item, backward_item and rois_grad_item
// picked by an empty tag type (PsRoiAlign, RoiAlignRotated, ...); the loops
// here spread those items over OpenMP threads, one loop for every op.
#pragma once
#include "cpu_common.h"

namespace cyroi {

// The family's items keep their tables in locals: no per-thread scratch.
struct NoScratch {};

// Every item gets a thread, up to `threads` (the family's items are whole
// RoIs or planes, never too small to share out), except in a call of fewer
// than kSerialElements pooled elements: there waking a team costs more than
// the work, and far more when the other cores are busy.
static const int64_t kSerialElements = 4096;

template <typename T> int64_t team_for(int64_t items, int threads, const Pooled<T>& pooled) {
  if (pooled.K * pooled.C * pooled.PH * pooled.PW < kSerialElements) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(threads, items));
}

// Work item `item` of a loop over (group, channel block) pairs: channels
// [begin(item), end(item)) of group group(item), groups being RoIs or images.
struct ChannelBlocks {
  int64_t channels, width, count;
  ChannelBlocks(int64_t channels, int64_t width)
      : channels(channels), width(width), count((channels + width - 1) / width) {}
  int64_t group(int64_t item) const { return item / count; }
  int64_t begin(int64_t item) const { return item % count * width; }
  int64_t end(int64_t item) const { return std::min(begin(item) + width, channels); }
};

// Forward: items are (RoI, channel block) pairs; RoI k's box starts at
// boxes + k * box_stride.
template <typename Op, typename T, typename Params>
void forward_items(Op op, const Maps<T>& f, const T* boxes, int64_t box_stride,
                   const int64_t* batch, int64_t rois, const Params& p, const Pooled<T>& out,
                   int64_t channel_block, int threads) {
  const ChannelBlocks blocks(out.C, channel_block);
  const int64_t items = rois * blocks.count;
  run_items<NoScratch>(items, team_for(items, threads, out), Schedule::kStatic,
                       [&](int64_t item, NoScratch&) {
                         const int64_t k = blocks.group(item);
                         forward_item(op, f, boxes + k * box_stride, batch[k], p, k,
                                      blocks.begin(item), blocks.end(item), out);
                       });
}

// Backward for features: items are (image, channel block) pairs, each
// adding the image's RoIs (rois) in a fixed order into planes it owns.
template <typename Op, typename T, typename Params>
void backward_items(Op op, const Maps<T>& grad, const Pooled<T>& grad_out, const T* boxes,
                    const RoisByImage& rois, const Params& p, int64_t channel_block,
                    int threads) {
  const ChannelBlocks blocks(grad_out.C, channel_block);
  const int64_t items = grad.N * blocks.count;
  run_items<NoScratch>(items, team_for(items, threads, grad_out), Schedule::kStatic,
                       [&](int64_t item, NoScratch&) {
                         backward_item(op, grad, grad_out, boxes, rois, p, blocks.group(item),
                                       blocks.begin(item), blocks.end(item));
                       });
}

// Gradient for box coordinates: one item per RoI, all its channels in order;
// row k of grad_boxes (box_stride apart, as in boxes) is RoI k's.
template <typename Op, typename T, typename Params>
void rois_grad_items(Op op, const Maps<T>& f, const Pooled<T>& grad_out, const T* boxes,
                     int64_t box_stride, const int64_t* batch, int64_t rois, const Params& p,
                     T* grad_boxes, int64_t grad_stride, int threads) {
  run_items<NoScratch>(rois, team_for(rois, threads, grad_out), Schedule::kStatic,
                       [&](int64_t k, NoScratch&) {
                         rois_grad_item(op, f, grad_out, boxes + k * box_stride, batch[k], p, k,
                                        grad_boxes + k * grad_stride);
                       });
}

}  // namespace cyroi
