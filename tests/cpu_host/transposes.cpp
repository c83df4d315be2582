// Runs cyroi::transpose (src/cpu_common.h) on random shapes, strides and
// element types and counts the results that differ from a plain loop's:
// tests/test_transposes.py runs it on every SIMD target the CPU has.
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cpu_common.h"

template <typename T> int mismatches(std::mt19937_64& random, cyroi::TileWidth tiles) {
  int bad = 0;
  for (int shape = 0; shape < 400; ++shape) {
    // Up to 40 x 40: whole 8 x 8 and 4 x 4 tiles and every remainder.
    const int64_t rows = 1 + random() % 40, cols = 1 + random() % 40;
    const int64_t ss = cols + random() % 5, ds = rows + random() % 5;
    std::vector<T> src(rows * ss), got(cols * ds), want(cols * ds);
    for (T& v : src) v = (T)(random() >> 40);
    for (size_t i = 0; i < got.size(); ++i) got[i] = want[i] = (T)i;  // gaps stay as they are
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) want[j * ds + i] = src[i * ss + j];
    const auto prefetch = random() % 2 ? cyroi::RowPrefetch::kAhead : cyroi::RowPrefetch::kNone;
    cyroi::transpose(src.data(), ss, rows, cols, got.data(), ds, prefetch, tiles);
    bad += memcmp(got.data(), want.data(), got.size() * sizeof(T)) != 0;
  }
  return bad;
}

int main() {
  std::mt19937_64 random(2026);
  int bad = 0;
  for (auto tiles : {cyroi::TileWidth::kWidest, cyroi::TileWidth::k16Bytes})
    bad += mismatches<float>(random, tiles) + mismatches<double>(random, tiles) +
           mismatches<int32_t>(random, tiles) + mismatches<int64_t>(random, tiles) +
           mismatches<uint16_t>(random, tiles);
  printf("simd %d mismatches %d\n", cyroi::simd_bytes(), bad);
  return bad != 0;
}
