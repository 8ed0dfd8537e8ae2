// Trainers execute one run: the config and seed in, per-epoch metrics out.
//
// Two kinds: "libtorch" trains the ResNet for real (worker/libtorch_trainer.h);
// "synthetic" does no tensor work and derives its metrics from the config and seed,
// so orchestration can be tested and benchmarked at scale.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/run_config.h"
#include "common/status.h"

namespace resweep {

struct EpochReport {
  int epoch = 0;  // 1-based
  double train_loss = 0;
  double train_error = 0;
  double test_error = -1;  // -1 when not evaluated this epoch
  double test_loss = -1;
  double lr = 0;
  double seconds = 0;
  double images_per_sec = 0;
};

// What the worker gives a trainer to talk back through.
class RunContext {
 public:
  virtual ~RunContext() = default;
  // True once the run must end early (cancelled, lease lost, worker shutting down).
  // Trainers poll it at least once per batch.
  virtual bool ShouldStop() const = 0;
  // Records a finished epoch; a non-OK status ends the run with that status.
  virtual Status OnEpoch(const EpochReport& report) = 0;
  // Stores a resume point: the state after `epoch` epochs and `iteration` steps in
  // all (called after OnEpoch of that epoch every train.checkpoint_every epochs, and
  // mid-epoch when stopping with CheckpointOnStop()). Later checkpoints of a run have
  // a larger (epoch, iteration). A non-OK status ends the run.
  virtual Status OnCheckpoint(int epoch, int64_t iteration, const std::string& payload) = 0;
  // True when the run is stopped to be resumed elsewhere (the worker shuts down):
  // a trainer that sees ShouldStop() then saves its exact position first, if
  // checkpoints are on (train.checkpoint_every > 0).
  virtual bool CheckpointOnStop() const { return false; }
  // Called by a trainer, before it returns the error, when the resume payload it was
  // given cannot be used (not its format, another epoch, corrupt): the worker then
  // reports the checkpoint unusable, and the run's next attempt starts further back.
  // Any other failure, a DATA_LOSS from reading the dataset included, keeps the
  // checkpoint.
  virtual void ResumeUnusable() {}
  // Progress within an epoch (a batch done). The worker's progress deadline counts
  // from the newest of these and of OnEpoch: a trainer that calls neither for that
  // long is stopped and its run given back as a host fault. Cheap; any thread.
  virtual void OnBatch() {}
};

// Where a run starts: epoch 0 with no payload, or a checkpoint a trainer of the
// same kind wrote after `epoch` (possibly part-way into the next epoch).
struct ResumePoint {
  int epoch = 0;
  std::string payload;
};

struct TrainOutcome {
  int64_t param_count = 0;
  int epochs_done = 0;
};

class Trainer {
 public:
  virtual ~Trainer() = default;
  // Trains `config` with `seed` from `resume` to config.train.epochs. Returns
  // CANCELLED when stopped through the context; DATA_LOSS, after calling
  // context->ResumeUnusable(), when the resume payload is unusable; any other error
  // (or a DATA_LOSS without that call: a dataset file that fails to read) when the
  // run itself failed (bad data, divergence); never throws. Resumed, the reported epochs equal
  // those of an uninterrupted run (bit for bit on CPU).
  virtual StatusOr<TrainOutcome> Train(const RunConfig& config, int64_t seed,
                                       const ResumePoint& resume, RunContext* context) = 0;
};

std::unique_ptr<Trainer> MakeSyntheticTrainer();

// Deterministic metrics of the synthetic trainer, exposed for tests.
EpochReport SyntheticEpoch(const RunConfig& config, int64_t seed, int epoch);

}  // namespace resweep
