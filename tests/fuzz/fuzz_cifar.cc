// Any bytes as a CIFAR-10 binary batch.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "worker/data_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto batch = resweep::ParseCifar10Batch(
      std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.bin");
  if (batch.ok()) {
    const size_t n = batch->labels.size();
    if (n * 3073 != size || batch->images.data.size() != n * 3072) std::abort();
    for (uint8_t label : batch->labels) {
      if (label > 9) std::abort();
    }
  }
  return 0;
}
