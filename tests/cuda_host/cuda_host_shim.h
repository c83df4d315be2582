// Just enough CUDA for g++ to compile cyroi/kernels/roi_ops.cu for the host.
//
// The grid has one thread, so every grid-stride loop visits the whole index
// space in index order, and atomics are plain read-modify-writes. Backward
// then adds in the same order as tests/reference.py, and float results must
// match it bit for bit.
#pragma once
#include <math.h>
#include <stdint.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct HostDim3 {
  unsigned int x, y, z;
};
static const HostDim3 threadIdx = {0, 0, 0}, blockIdx = {0, 0, 0};
static const HostDim3 blockDim = {1, 1, 1}, gridDim = {1, 1, 1};

template <typename T> T atomicAdd(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}

inline int atomicMax(int* address, int value) {
  const int old = *address;
  if (value > old) *address = value;
  return old;
}
