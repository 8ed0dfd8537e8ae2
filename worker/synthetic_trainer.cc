#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include "common/hash.h"
#include "common/run_config_json.h"
#include "worker/trainer.h"

namespace resweep {

namespace {

uint64_t Mix(const RunConfig& config, int64_t seed, int epoch) {
  const std::string h = Sha256Hex(RunConfigToCanonicalJson(config) + "|" + std::to_string(seed) +
                                  "|" + std::to_string(epoch));
  return std::stoull(h.substr(0, 15), nullptr, 16);
}

class SyntheticTrainer : public Trainer {
 public:
  StatusOr<TrainOutcome> Train(const RunConfig& config, int64_t seed, const ResumePoint& resume,
                               RunContext* context) override {
    int start = 0;
    if (resume.epoch > 0) {
      // The synthetic state is just the epoch reached.
      if (resume.payload != "synthetic@" + std::to_string(resume.epoch)) {
        context->ResumeUnusable();
        return DataLossError("not a synthetic checkpoint of epoch " + std::to_string(resume.epoch));
      }
      start = resume.epoch;
    }
    const auto epoch_time = std::chrono::duration<double>(config.trainer.epoch_seconds);
    // A failing run fails half-way, the same way every time for a given seed.
    std::mt19937_64 fail_rng(Mix(config, seed, -1));
    const bool fails =
        std::uniform_real_distribution<double>(0, 1)(fail_rng) < config.trainer.fail_probability;
    TrainOutcome outcome;
    outcome.param_count = 1000 * config.layers();
    outcome.epochs_done = start;
    int checkpointed = start;
    // Stopped to move elsewhere: keep the epochs done (the synthetic state is only
    // the epoch reached, so this is as exact as a mid-epoch checkpoint).
    auto stop = [&]() -> Status {
      if (context->CheckpointOnStop() && config.train.checkpoint_every > 0 &&
          outcome.epochs_done > checkpointed) {
        RESWEEP_RETURN_IF_ERROR(
            context->OnCheckpoint(outcome.epochs_done, outcome.epochs_done,
                                  "synthetic@" + std::to_string(outcome.epochs_done)));
      }
      return CancelledError("stopped");
    };
    for (int epoch = start + 1; epoch <= config.train.epochs; ++epoch) {
      if (epoch == config.trainer.hang_at_epoch && start == 0) {
        // Stops making progress: no batches, no epoch; with hang_ignores_stop it never
        // returns at all (nor touches the context again), like a wedged device call.
        while (config.trainer.hang_ignores_stop || !context->ShouldStop()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return stop();
      }
      // An epoch lasts epoch_seconds (to the sleep's wake-up latency, once): ticks of
      // at most 20 ms sleep until a deadline, so their overshoots do not add up.
      const auto deadline =
          std::chrono::steady_clock::now() +
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(epoch_time);
      for (auto now = std::chrono::steady_clock::now(); now < deadline;
           now = std::chrono::steady_clock::now()) {
        if (context->ShouldStop()) return stop();
        std::this_thread::sleep_until(std::min(deadline, now + std::chrono::milliseconds(20)));
        context->OnBatch();  // a "batch" per tick
      }
      if (context->ShouldStop()) return stop();
      if (fails && epoch > config.train.epochs / 2) {
        // The run's own fault (like divergence), never the host's.
        return InvalidArgumentError("synthetic failure at epoch " + std::to_string(epoch));
      }
      RESWEEP_RETURN_IF_ERROR(context->OnEpoch(SyntheticEpoch(config, seed, epoch)));
      outcome.epochs_done = epoch;
      const int every = config.train.checkpoint_every;
      if (every > 0 && epoch % every == 0 && epoch < config.train.epochs) {
        RESWEEP_RETURN_IF_ERROR(
            context->OnCheckpoint(epoch, epoch, "synthetic@" + std::to_string(epoch)));
        checkpointed = epoch;
      }
    }
    return outcome;
  }
};

}  // namespace

EpochReport SyntheticEpoch(const RunConfig& config, int64_t seed, int epoch) {
  std::mt19937_64 rng(Mix(config, seed, epoch));
  std::normal_distribution<double> noise(0.0, 0.004);
  // Deeper nets end lower; every config converges along the same curve shape.
  const double floor = 0.05 + 0.06 / (1.0 + config.model.depth_n);
  const double progress = static_cast<double>(epoch) / config.train.epochs;
  EpochReport r;
  r.epoch = epoch;
  r.train_error = std::max(0.0, floor * 0.5 + 0.85 * std::exp(-6 * progress) + noise(rng));
  r.train_loss = 2.3 * std::exp(-5 * progress) + 0.05;
  r.test_error = std::max(0.0, floor + 0.8 * std::exp(-6 * progress) + noise(rng));
  r.test_loss = r.train_loss * 1.1;
  r.lr = config.train.optimizer.lr;
  r.seconds = config.trainer.epoch_seconds;
  r.images_per_sec = 0;
  return r;
}

std::unique_ptr<Trainer> MakeSyntheticTrainer() { return std::make_unique<SyntheticTrainer>(); }

}  // namespace resweep
