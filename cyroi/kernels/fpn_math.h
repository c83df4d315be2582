// FPN level assignment of multiscale_roi_align (Feature Pyramid Networks,
// eq. 1, as torchvision's LevelMapper).
#pragma once
#include "roi_math.h"

namespace cyroi {

// Index (0 = the first level) of the pyramid level that pools a box
// (x1, y1, x2, y2): k = floor(canonical_level + log2(sqrt(area) /
// canonical_scale) + 1e-6) clamped to [k_min, k_max], less k_min. A box of
// negative area (NaN k) goes to k_min, as fmax does.
template <typename T>
CYROI_HD int64_t fpn_level(const T* box, T canonical_scale, T canonical_level, int64_t k_min,
                           int64_t k_max) {
  const T area = (box[2] - box[0]) * (box[3] - box[1]);
  const T k = floor(canonical_level + log2(sqrt(area) / canonical_scale) + (T)1e-6);
  return (int64_t)fmin(fmax(k, (T)k_min), (T)k_max) - k_min;
}

}  // namespace cyroi
