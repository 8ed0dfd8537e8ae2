// What the single-run trainer (libtorch_trainer.cc) and the fused-gang trainer
// (fused_trainer.cc) share: optimiser construction, normalisation, and the
// checkpoint format. Internal to the worker's trainer library.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/run_config.h"
#include "common/status.h"
#include "worker/dataset.h"
#include "worker/resnet.h"

namespace resweep::trainer_internal {

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const OptimizerConfig& o,
                                                       std::vector<torch::Tensor> params);
void SetLearningRate(torch::optim::Optimizer& optimizer, double lr);

// Normalisation statistics from the training images actually used.
struct Normalizer {
  torch::Tensor mean;  // broadcastable to [B,C,H,W], in [0,1] pixel units
  torch::Tensor std;

  torch::Tensor Apply(const torch::Tensor& uint8_batch) const {
    auto x = uint8_batch.to(torch::kFloat32).div_(255.0);
    if (mean.defined()) x.sub_(mean);
    if (std.defined()) x.div_(std);
    return x;
  }
};

// From the training images actually used: "per-channel", "per-pixel-mean" or "none".
Normalizer MakeNormalizer(const std::string& mode, const torch::Tensor& train_images);

// Where in an epoch a checkpoint was taken: the first batch not yet trained and the
// running sums of the epoch so far (zero at an epoch boundary).
struct EpochPosition {
  int64_t batch_start = 0;
  torch::Tensor loss_sum;  // float64 scalar
  torch::Tensor wrong;     // int64 scalar
};

// A run's resume point in the one checkpoint format every trainer reads and writes:
// weights and BN statistics, optimiser state, the generator as it was at the start of
// the epoch in progress, `epoch` epochs done, `iteration` steps in all, and `position`.
std::string SaveTrainingState(ResNet& model, torch::optim::Optimizer& optimizer,
                              const torch::Tensor& epoch_generator_state, int epoch,
                              int64_t iteration, const EpochPosition& position);
// Loads it onto `device`; DATA_LOSS when the payload is not a usable checkpoint of
// `epoch`, a device error as CheckpointLoadError says.
Status LoadTrainingState(const std::string& payload, int epoch, torch::Device device, ResNet& model,
                         torch::optim::Optimizer& optimizer, at::Generator& generator,
                         int64_t* iteration, EpochPosition* position);

double Seconds(std::chrono::steady_clock::time_point since);

// A LibTorch error as the status a trainer returns: out of device memory is
// RESOURCE_EXHAUSTED (the host's fault), anything else INTERNAL.
Status LibTorchError(const c10::Error& e);

// What every trainer prepares before its first step: the data set (within its limits)
// on the device in uint8, the normaliser of its training images, and the network's
// shape; the process-wide cuDNN switches of train.deterministic are set on a GPU.
struct RunData {
  torch::Tensor train_x, train_y, test_x, test_y;
  Normalizer norm;
  ResNetOptions model;
};
// Errors: an unknown block, a data set that cannot be loaded.
StatusOr<RunData> PrepareRun(const RunConfig& config, DatasetCache* cache,
                             const torch::Device& device);

}  // namespace resweep::trainer_internal
