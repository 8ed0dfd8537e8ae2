// The real trainer: the CIFAR ResNet protocol of docs/protocol.md in
// LibTorch, on CPU or CUDA.
//
// Determinism: all randomness (initial weights, data order, crop offsets, flips)
// comes from one CPU generator seeded with the run seed, so on CPU the same config
// and seed give the same loss curve. The data set stays in uint8 on the device and
// each batch is normalised and augmented with batched tensor ops.
#pragma once

#include <memory>

#include <torch/torch.h>

#include "worker/dataset.h"
#include "worker/trainer.h"

namespace resweep {

// `cache` must outlive the trainer.
std::unique_ptr<Trainer> MakeLibTorchTrainer(torch::Device device, DatasetCache* cache);

// Batched pad-and-random-crop and horizontal flip. `images` float [B,C,H,W];
// `offsets` int64 [B,2] (row, col) in [0, 2*padding]; `flips` bool [B].
torch::Tensor AugmentBatch(const torch::Tensor& images, int64_t padding,
                           const torch::Tensor& offsets, const torch::Tensor& flips);

}  // namespace resweep
