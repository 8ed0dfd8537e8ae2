// The CIFAR ResNet family of He et al. (6n+2 layers) with the five residual block
// designs of docs/protocol.md and shortcut options A and B.
//
// Block formulas (x = input, s(x) = shortcut, conv = 3x3 conv):
//   reference:             y = ReLU(BN(conv(ReLU(BN(conv(x))))) + s(x))
//   bn-after-add:          y = ReLU(BN(conv(ReLU(BN(conv(x)))) + s(x)))
//   no-relu:               y = BN(conv(ReLU(BN(conv(x))))) + s(x)
//   no-relu-bn-after-add:  y = BN(conv(ReLU(BN(conv(x)))) + s(x))
//   preact:                y = s(x) + conv(ReLU(BN(conv(ReLU(BN(x))))))
// Shortcut A: identity; where the shape changes, stride-2 subsampling plus zero
// channels (no parameters). Shortcut B: 1x1 stride-2 conv + BN where the shape
// changes, identity elsewhere.
#pragma once

#include <functional>
#include <string>

#include <torch/torch.h>

#include "common/status.h"

namespace resweep {

enum class BlockKind { kReference, kBnAfterAdd, kNoRelu, kNoReluBnAfterAdd, kPreact };
StatusOr<BlockKind> ParseBlockKind(const std::string& name);

struct ResNetOptions {
  BlockKind block = BlockKind::kReference;
  int depth_n = 3;
  bool projection_shortcut = false;  // option B
  int64_t in_channels = 3;
  int64_t classes = 10;
  int64_t base_width = 16;
};

// The output of one residual block of design `kind` (the formulas above) from its
// input, its layers and its shortcut (called once, where the formula adds it). Shared
// by ResNet and the fused network (worker/fused_resnet.h), whose layers are grouped.
torch::Tensor ResidualBlockFormula(BlockKind kind, const torch::Tensor& x, torch::nn::Conv2d& conv1,
                                   torch::nn::BatchNorm2d& bn1, torch::nn::Conv2d& conv2,
                                   torch::nn::BatchNorm2d& bn2,
                                   const std::function<torch::Tensor()>& shortcut);

// The network's residual blocks in order, as (input width, output width, stride):
// three stages of depth_n blocks, widths base_width x 1, 2, 4, each later stage
// starting with a stride-2 block. Returns the last stage's width (the classifier's
// input). Shared by ResNet and the fused network.
int64_t ForEachBlockShape(
    const ResNetOptions& options,
    const std::function<void(int64_t in, int64_t out, int64_t stride)>& block);

// Option A's spatial part of a shortcut: every `stride`-th row and column of x (NCHW
// shape, any memory format); x itself for stride 1. Shared by ResNet and the fused
// network, which then zero-pad channels each their own way.
torch::Tensor SubsampleForShortcut(const torch::Tensor& x, int64_t stride);

class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int64_t in, int64_t out, int64_t stride, BlockKind kind, bool projection);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor Shortcut(const torch::Tensor& x);

  BlockKind kind_;
  int64_t in_, out_, stride_;
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::Conv2d projection_{nullptr};  // option B where the shape changes
  torch::nn::BatchNorm2d projection_bn_{nullptr};
};
TORCH_MODULE(ResidualBlock);

class ResNetImpl : public torch::nn::Module {
 public:
  explicit ResNetImpl(const ResNetOptions& options);
  torch::Tensor forward(torch::Tensor x);

  // He-normal (fan-out) convolutions, BN weight 1 / bias 0, linear uniform(+-1/sqrt(fan_in))
  // with zero bias, all drawn from `generator` so a seed fixes the initial weights.
  void Initialize(at::Generator generator);
  int64_t ParameterCount() const;

 private:
  ResNetOptions options_;
  torch::nn::Conv2d stem_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};  // absent for preact (BN lives in the blocks)
  torch::nn::Sequential stages_;
  torch::nn::BatchNorm2d final_bn_{nullptr};  // preact only: BN-ReLU before pooling
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(ResNet);

}  // namespace resweep
