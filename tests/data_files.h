// Writers for small data files in the official formats, for tests and benchmarks.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace resweep::testing {

// A CIFAR-10 binary batch of `n` records. Record i has label (i + label_offset) % 10
// and pixel bytes (i * 7 + p) % 256 for byte p of its 3072: R plane, G, B.
inline std::string CifarBatch(int n, int label_offset = 0) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out.push_back(static_cast<char>((i + label_offset) % 10));
    for (int p = 0; p < 3072; ++p) out.push_back(static_cast<char>((i * 7 + p) % 256));
  }
  return out;
}

// A learnable CIFAR-format batch: each class is a distinct colour with noise.
inline std::string LearnableCifarBatch(int n, uint32_t seed) {
  std::string out;
  uint32_t state = seed * 2654435761u + 1;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return state >> 24;
  };
  for (int i = 0; i < n; ++i) {
    const int label = static_cast<int>(next() % 10);
    out.push_back(static_cast<char>(label));
    for (int c = 0; c < 3; ++c) {
      const int base = ((label >> c) & 1) * 160 + (label % 3) * 30;
      for (int p = 0; p < 1024; ++p) out.push_back(static_cast<char>(base + next() % 60));
    }
  }
  return out;
}

// Writes data_batch_1..5.bin (train_per_file each) and test_batch.bin into dir.
inline void WriteCifarDir(const std::string& dir, int train_per_file, int test, bool learnable) {
  for (int b = 1; b <= 5; ++b) {
    WriteFile(dir + "/data_batch_" + std::to_string(b) + ".bin",
              learnable ? LearnableCifarBatch(train_per_file, b) : CifarBatch(train_per_file, b));
  }
  WriteFile(dir + "/test_batch.bin", learnable ? LearnableCifarBatch(test, 99) : CifarBatch(test));
}

inline void WriteGz(const std::string& path, const std::string& data) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, data.data(), static_cast<unsigned>(data.size()));
  gzclose(f);
}

inline std::string Be32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

// IDX images [n, rows, cols] with pixel (i + r * cols + c) % 256, and labels i % 10.
inline std::string IdxImages(int n, int rows, int cols) {
  std::string out = Be32(0x803) + Be32(n) + Be32(rows) + Be32(cols);
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < rows * cols; ++p) out.push_back(static_cast<char>((i + p) % 256));
  }
  return out;
}
inline std::string IdxLabels(int n, int modulo = 10) {
  std::string out = Be32(0x801) + Be32(n);
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>(i % modulo));
  return out;
}

}  // namespace resweep::testing
