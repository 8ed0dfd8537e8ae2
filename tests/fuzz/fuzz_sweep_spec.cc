// Any bytes as a sweep file: the parser returns a spec or an error, never crashes,
// hangs or runs out of memory, and a spec it accepts is within the limits.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/sweep_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  resweep::SpecLimits limits;
  limits.max_runs = 512;  // keep each input cheap; the limits themselves are under test
  auto spec = resweep::ParseSweepSpec(text, "fuzz.yaml", limits);
  if (spec.ok()) {
    if (spec->runs.empty() || static_cast<int64_t>(spec->runs.size()) > limits.max_runs) {
      std::abort();
    }
  } else if (spec.status().message().find("fuzz.yaml") == std::string::npos) {
    std::abort();  // every error names the file
  }
  return 0;
}
