// Any bytes as a (gzipped) IDX file: gzip data is inflated first, as the loader does.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "worker/data_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string inflated;
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
    auto raw = resweep::Gunzip(bytes, "fuzz.gz", size_t{1} << 24);
    if (!raw.ok()) return 0;
    inflated = std::move(*raw);
    bytes = inflated;
  }
  auto array = resweep::ParseIdx(bytes, "fuzz.gz");
  if (array.ok()) {
    uint64_t count = 1;
    for (int64_t d : array->shape) count *= static_cast<uint64_t>(d);
    if (count != array->data.size()) std::abort();
  }
  return 0;
}
