// Trains the runs of one cell, which differ only in their seed, as one fused network
// (worker/fused_resnet.h): a gang. Each member keeps what it would have alone: its
// initial weights, data order and augmentation draws (all from its own seed), its
// optimiser state, its epoch reports, its checkpoints (in the single-run format, so a
// member can go on alone and a lone run's checkpoint can join a gang) and its result.
// Its curve is what it would have been alone up to floating-point reassociation. A
// member that diverges or is stopped leaves the gang; the others go on.
#pragma once

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
};

class GangTrainer {
 public:
  // `cache` must outlive the trainer.
  GangTrainer(torch::Device device, DatasetCache* cache);

  // OK when `config` can be trained as a gang; otherwise why not (its runs are then
  // trained one by one): SGD only (the members' optimiser state is split and joined
  // by parameter), no fp16 loss scaling and no gradient clipping (both couple the
  // members through one scale or one norm).
  static Status CanFuse(const RunConfig& config);

  // Trains every member of `members` (1 or more, one config) to config.train.epochs.
  // One result per member, in order, each what Trainer::Train would return for that
  // run alone; never throws.
  std::vector<StatusOr<TrainOutcome>> Train(const RunConfig& config,
                                            const std::vector<GangMember>& members);

 private:
  torch::Device device_;
  DatasetCache* cache_;
};

}  // namespace resweep
