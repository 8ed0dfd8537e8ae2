#pragma once

#include <cstdint>

#include "common/run_config.h"

namespace resweep {

// The learning rate for 0-based global `iteration`, given the base lr and the
// schedule (step at milestones in epochs or iterations, cosine, constant) with an
// optional warm-up of constant or linear kind over the first iterations.
double LearningRateAt(const OptimizerConfig& optimizer, const ScheduleConfig& schedule,
                      int64_t iteration, int64_t iterations_per_epoch, int64_t total_epochs);

}  // namespace resweep
