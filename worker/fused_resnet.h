// F CIFAR ResNets of one shape (the seeds of one grid cell) as one network, so a GPU
// runs one large kernel where it would run F small ones (horizontal fusion, as in
// HFTA, MLSys 2021).
//
// Layout: member f owns channels [f*C, (f+1)*C) of every activation. Convolutions
// are grouped (groups = F), so no member sees another's channels; batch norm over the
// stacked channels keeps per-channel, hence per-member, statistics; the classifier is
// a batched matrix product with one weight matrix per member. The input is the F
// members' batches stacked on the channel axis ([B, F*C_in, H, W]: each member its
// own images), the output [B, F, classes]. With the loss the sum of the members'
// losses, member f's gradients are those of its own loss alone, so each member trains
// as it would alone, up to floating-point reassociation.
//
// Parameter and buffer names are those of ResNet, each tensor the members' tensors
// concatenated on dimension 0 (the classifier's stacked on a new dimension 0), so
// members move in and out by name (LoadMember / StoreMember).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "worker/resnet.h"

namespace resweep {

class FusedResidualBlockImpl : public torch::nn::Module {
 public:
  FusedResidualBlockImpl(int64_t members, int64_t in, int64_t out, int64_t stride, BlockKind kind,
                         bool projection);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor Shortcut(const torch::Tensor& x);

  int64_t members_;
  BlockKind kind_;
  int64_t in_, out_, stride_;
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::Conv2d projection_{nullptr};
  torch::nn::BatchNorm2d projection_bn_{nullptr};
};
TORCH_MODULE(FusedResidualBlock);

class FusedResNetImpl : public torch::nn::Module {
 public:
  FusedResNetImpl(const ResNetOptions& options, int64_t members);

  // x: [B, members*in_channels, H, W]; returns logits [B, members, classes].
  torch::Tensor forward(torch::Tensor x);

  int64_t members() const { return members_; }
  const ResNetOptions& options() const { return options_; }

  // Copies `member`'s weights, BN statistics and step counters in as member `f`, or
  // out of member `f` into `member` (same options). Throws c10::Error on a shape
  // mismatch.
  void LoadMember(int64_t f, ResNet& member);
  void StoreMember(int64_t f, ResNet& member);

  // The part of the fused parameter or buffer `name` that belongs to member f (a view;
  // a scalar buffer, the BN step counter, is shared).
  torch::Tensor MemberSlice(const std::string& name, const torch::Tensor& fused, int64_t f) const;
  // The inverse: the fused tensor `name` from the members' tensors, member 0 first (for
  // state kept beside the parameters, such as momentum buffers).
  torch::Tensor JoinMembers(const std::string& name, const std::vector<torch::Tensor>& parts) const;

 private:
  // Calls `visit` with member f's slice of each fused tensor and the member's tensor
  // of the same name, after checking that names and shapes match.
  void ForEachMemberTensor(
      int64_t f, ResNet& member,
      const std::function<void(torch::Tensor& slice, torch::Tensor& theirs)>& visit);

  ResNetOptions options_;
  int64_t members_;
  torch::nn::Conv2d stem_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  torch::nn::Sequential stages_;
  torch::nn::BatchNorm2d final_bn_{nullptr};
  torch::Tensor fc_weight_;  // [members, classes, channels]
  torch::Tensor fc_bias_;    // [members, classes]
};
TORCH_MODULE(FusedResNet);

// Stacks the members' batches on the channel axis: F tensors [B,C,H,W] -> [B,F*C,H,W].
torch::Tensor StackMemberInputs(const std::vector<torch::Tensor>& inputs);

}  // namespace resweep
