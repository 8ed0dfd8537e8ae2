// Logging for the trainer library, which builds without spdlog (the trainer-only
// build against any LibTorch). The worker routes it into spdlog; by default it
// goes to stderr.
#pragma once

#include <sstream>
#include <string>

#include "worker/log_tail.h"

namespace resweep {

enum class TrainerLogLevel { kDebug, kInfo, kWarn, kError };
using TrainerLogSink = void (*)(TrainerLogLevel level, const std::string& message);

// Not thread-safe against concurrent logging: set it once at start-up.
void SetTrainerLogSink(TrainerLogSink sink);
// Gives the line to the sink, and to the calling thread's capture if it has one.
void TrainerLog(TrainerLogLevel level, const std::string& message);

// While it lives, every trainer log line logged on the thread that made it (at
// every level, debug included) is also added to `tail`, as "<time> [<level>] <line>".
// This is how the worker attributes the process-global trainer log to the run a
// slot's thread trains: lines logged on other threads are not captured. Captures
// nest; the outer one resumes when the inner one ends.
class ScopedTrainerLogCapture {
 public:
  explicit ScopedTrainerLogCapture(LogTail* tail);
  ~ScopedTrainerLogCapture();
  ScopedTrainerLogCapture(const ScopedTrainerLogCapture&) = delete;
  ScopedTrainerLogCapture& operator=(const ScopedTrainerLogCapture&) = delete;

 private:
  LogTail* previous_;
};

// TrainerLogf(level, a, b, c): the arguments streamed together.
template <typename... Args>
void TrainerLogf(TrainerLogLevel level, const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  TrainerLog(level, out.str());
}

}  // namespace resweep
