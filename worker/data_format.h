// Parsers of the data-set file formats, on bytes in memory: no LibTorch, no files,
// so they can be fuzzed alone. Errors name `source` (the file) and the problem.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace resweep {

// An n-dimensional uint8 array.
struct ByteArray {
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // row-major, product(shape) bytes
};

// One CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes. Any whole
// number (>= 1) of records; every label must be 0..9.
struct CifarRecords {
  ByteArray images;  // [N, 3, 32, 32]
  std::vector<uint8_t> labels;
};
StatusOr<CifarRecords> ParseCifar10Batch(std::string_view bytes, const std::string& source);

// A gzip stream (one or more members), inflated; refuses output beyond max_bytes.
StatusOr<std::string> Gunzip(std::string_view gz, const std::string& source,
                             size_t max_bytes = size_t{1} << 31);

// An IDX array of unsigned bytes: magic 0x00000801 (1-d) or 0x00000803 (3-d), big
// endian dimensions, then exactly product(dims) bytes.
StatusOr<ByteArray> ParseIdx(std::string_view bytes, const std::string& source);

// The first label not in [0, classes), as "<source>: record R has label L, outside ..".
Status CheckLabelRange(const std::vector<uint8_t>& labels, int classes, const std::string& source);

}  // namespace resweep
