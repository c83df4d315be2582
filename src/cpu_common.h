// Shapes and strides passed from Cython to the CPU loops.
#pragma once
#include <stdint.h>

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

// The RoIs visited by backward, grouped by image in a fixed order:
// image n owns order[begin[n] : begin[n + 1]].
struct RoisByImage {
  const int64_t* order;
  const int64_t* begin;
};

}  // namespace cyroi
