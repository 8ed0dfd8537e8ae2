#include "worker/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace resweep {

double LearningRateAt(const OptimizerConfig& optimizer, const ScheduleConfig& schedule,
                      int64_t iteration, int64_t iterations_per_epoch, int64_t total_epochs) {
  const double base = optimizer.lr;
  if (iteration < schedule.warmup_iterations) {
    if (schedule.warmup_kind == "linear") {
      const double t = static_cast<double>(iteration) / schedule.warmup_iterations;
      return schedule.warmup_lr + (base - schedule.warmup_lr) * t;
    }
    return schedule.warmup_lr;
  }
  if (schedule.kind == "constant") return base;
  if (schedule.kind == "cosine") {
    const double total = static_cast<double>(
        std::max<int64_t>(1, total_epochs * iterations_per_epoch - schedule.warmup_iterations));
    const double t = std::min(1.0, (iteration - schedule.warmup_iterations) / total);
    return schedule.min_lr + 0.5 * (base - schedule.min_lr) * (1.0 + std::cos(M_PI * t));
  }
  // step: one factor of gamma per milestone passed. Epoch milestones count epochs
  // completed: milestone 80 means epochs 81.. (0-based epoch index >= 80) are decayed.
  const int64_t position = schedule.milestone_unit == "iteration"
                               ? iteration
                               : iteration / std::max<int64_t>(1, iterations_per_epoch);
  int passed = 0;
  for (int64_t m : schedule.milestones) passed += position >= m ? 1 : 0;
  return base * std::pow(schedule.gamma, passed);
}

}  // namespace resweep
