// Helpers shared by the Scheduler's translation units (scheduler*.cc); not part of
// its interface.
#pragma once

#include <string>

#include "common/status.h"
#include "coordinator/store.h"

namespace resweep::scheduler_internal {

// `chars` random lowercase hex digits.
std::string RandomHex(int chars);
// `text` cut to at most `max_bytes` (never inside a UTF-8 sequence), saying how much
// was cut.
std::string CapText(const std::string& text, size_t max_bytes);
// INVALID_ARGUMENT naming the first metric that is not finite or out of its range.
Status ValidateMetrics(const EpochRecord& e);
// A worker's slots: one per registered device.
int SlotCount(const WorkerRecord& worker);

}  // namespace resweep::scheduler_internal
