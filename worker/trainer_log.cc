#include "worker/trainer_log.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace resweep {

namespace {
void StderrSink(TrainerLogLevel level, const std::string& message) {
  if (level == TrainerLogLevel::kDebug) return;
  std::fprintf(stderr, "[trainer] %s\n", message.c_str());
}
TrainerLogSink g_sink = &StderrSink;
thread_local LogTail* t_capture = nullptr;

const char* LevelName(TrainerLogLevel level) {
  switch (level) {
    case TrainerLogLevel::kDebug:
      return "debug";
    case TrainerLogLevel::kInfo:
      return "info";
    case TrainerLogLevel::kWarn:
      return "warning";
    case TrainerLogLevel::kError:
      return "error";
  }
  return "?";
}

// Local time as the worker's log shows it: 2026-11-27 09:15:59.387.
std::string Now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const int ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm local{};
  localtime_r(&seconds, &local);
  char text[40];
  const size_t n = std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &local);
  std::snprintf(text + n, sizeof(text) - n, ".%03d", ms);
  return text;
}
}  // namespace

void SetTrainerLogSink(TrainerLogSink sink) { g_sink = sink ? sink : &StderrSink; }

void TrainerLog(TrainerLogLevel level, const std::string& message) {
  g_sink(level, message);
  if (t_capture) t_capture->Add(Now() + " [" + LevelName(level) + "] " + message);
}

ScopedTrainerLogCapture::ScopedTrainerLogCapture(LogTail* tail) : previous_(t_capture) {
  t_capture = tail;
}

ScopedTrainerLogCapture::~ScopedTrainerLogCapture() { t_capture = previous_; }

}  // namespace resweep
