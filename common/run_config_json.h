// RunConfig <-> JSON: the form the coordinator stores and leases to workers.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/run_config.h"
#include "common/status.h"

namespace resweep {

// Canonical JSON: every field, keys sorted. Equal configs give equal strings.
nlohmann::json RunConfigToJson(const RunConfig& config);
std::string RunConfigToCanonicalJson(const RunConfig& config);

// Parses what RunConfigToJson wrote. Missing fields keep their defaults.
StatusOr<RunConfig> RunConfigFromJson(const std::string& json_text);

}  // namespace resweep
