// Logging for the trainer library, which builds without spdlog (the trainer-only
// build against any LibTorch). The worker routes it into spdlog; by default it
// goes to stderr.
#pragma once

#include <sstream>
#include <string>

namespace resweep {

enum class TrainerLogLevel { kDebug, kInfo, kWarn, kError };
using TrainerLogSink = void (*)(TrainerLogLevel level, const std::string& message);

// Not thread-safe against concurrent logging: set it once at start-up.
void SetTrainerLogSink(TrainerLogSink sink);
void TrainerLog(TrainerLogLevel level, const std::string& message);

// TrainerLogf(level, a, b, c): the arguments streamed together.
template <typename... Args>
void TrainerLogf(TrainerLogLevel level, const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  TrainerLog(level, out.str());
}

}  // namespace resweep
