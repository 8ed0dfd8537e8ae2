#pragma once

#include <string>

namespace resweep {

// Configures the default spdlog logger for a binary: "[time] [name] [level] msg" on
// stderr. `level` is trace|debug|info|warn|error|off; an unknown name keeps info.
void InitLogging(const std::string& program, const std::string& level);

}  // namespace resweep
