// Position-sensitive RoI ops (R-FCN): which input channel an output bin reads.
#pragma once
#include "roi_math.h"

namespace cyroi {

// Output bin (c, ph, pw) reads input channel (c * PH + ph) * PW + pw: each
// output channel owns PH * PW consecutive input channels, one per bin.
CYROI_HD int64_t ps_input_channel(int64_t c, int64_t ph, int64_t pw, int64_t pooled_h,
                                  int64_t pooled_w) {
  return (c * pooled_h + ph) * pooled_w + pw;
}

// ps_roi_pool's integer bin, clipped to [0, size - 1] as torchvision's
// forward does (the last row and column are never read).
template <typename T>
CYROI_HD void ps_pool_bin(T bin, int64_t start, int64_t p, int64_t size, int64_t* lo, int64_t* hi) {
  pool_bin(bin, start, p, size - 1, lo, hi);
}

// Mean of an integer bin of `count` elements given their sum; 0 when empty.
template <typename T> CYROI_HD T ps_pool_mean(T sum, int64_t count) {
  return count > 0 ? sum / (T)count : (T)0;
}

}  // namespace cyroi
