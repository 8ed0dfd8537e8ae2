// Trains the runs of one cell, which differ only in their seed, as one fused network
// (worker/fused_resnet.h): a gang. Each member keeps what it would have alone: its
// initial weights, data order and augmentation draws (all from its own seed), its
// optimiser state, its epoch reports, its checkpoints (in the single-run format, so a
// member can go on alone and a lone run's checkpoint can join a gang) and its result.
// Its curve is what it would have been alone up to floating-point reassociation. A
// member that diverges or is stopped leaves the gang; the others go on.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "worker/dataset.h"
#include "worker/trainer.h"

namespace resweep {

struct GangMember {
  int64_t seed = 0;
  ResumePoint resume;  // every member of a gang resumes from the same epoch
  RunContext* context = nullptr;
  // Called on the training thread as soon as this member leaves the gang while the
  // others may train on (it diverged, was stopped, or a report or checkpoint of it
  // was refused), with the result Train will return for it, so that its run ends
  // now rather than when the gang does. Optional.
  std::function<void(const StatusOr<TrainOutcome>&)> on_left;
};

class GangTrainer {
 public:
  // `cache` must outlive the trainer.
  GangTrainer(torch::Device device, DatasetCache* cache);

  // Trains every member of `members` (1 or more, one config that SeedFusable
  // accepts, else every member fails with its reason) to config.train.epochs.
  // One result per member, in order, each what Trainer::Train would return for that
  // run alone; never throws.
  std::vector<StatusOr<TrainOutcome>> Train(const RunConfig& config,
                                            const std::vector<GangMember>& members);

 private:
  torch::Device device_;
  DatasetCache* cache_;
};

}  // namespace resweep
