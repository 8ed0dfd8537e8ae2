#include "worker/trainer_log.h"

#include <cstdio>

namespace resweep {

namespace {
void StderrSink(TrainerLogLevel level, const std::string& message) {
  if (level == TrainerLogLevel::kDebug) return;
  std::fprintf(stderr, "[trainer] %s\n", message.c_str());
}
TrainerLogSink g_sink = &StderrSink;
}  // namespace

void SetTrainerLogSink(TrainerLogSink sink) { g_sink = sink ? sink : &StderrSink; }
void TrainerLog(TrainerLogLevel level, const std::string& message) { g_sink(level, message); }

}  // namespace resweep
