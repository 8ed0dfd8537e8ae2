#include "worker/fused_resnet.h"

#include <map>

namespace resweep {

namespace F = torch::nn::functional;

namespace {

torch::nn::Conv2d GroupedConv(int64_t members, int64_t in, int64_t out, int64_t kernel,
                              int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(members * in, members * out, kernel)
                               .stride(stride)
                               .padding(kernel / 2)
                               .groups(members)
                               .bias(false));
}

torch::nn::BatchNorm2d StackedBatchNorm(int64_t members, int64_t channels) {
  return torch::nn::BatchNorm2d(members * channels);
}

// The classifier's tensors stack the members on a new dimension 0; the rest
// concatenate them on dimension 0.
bool IsStackedTensor(const std::string& name) { return name == "fc.weight" || name == "fc.bias"; }

}  // namespace

FusedResidualBlockImpl::FusedResidualBlockImpl(int64_t members, int64_t in, int64_t out,
                                               int64_t stride, BlockKind kind, bool projection)
    : members_(members), kind_(kind), in_(in), out_(out), stride_(stride) {
  conv1_ = register_module("conv1", GroupedConv(members, in, out, 3, stride));
  conv2_ = register_module("conv2", GroupedConv(members, out, out, 3, 1));
  bn1_ = register_module("bn1", StackedBatchNorm(members, kind == BlockKind::kPreact ? in : out));
  bn2_ = register_module("bn2", StackedBatchNorm(members, out));
  if (projection && (stride != 1 || in != out)) {
    projection_ = register_module("projection", GroupedConv(members, in, out, 1, stride));
    projection_bn_ = register_module("projection_bn", StackedBatchNorm(members, out));
  }
}

torch::Tensor FusedResidualBlockImpl::Shortcut(const torch::Tensor& x) {
  if (stride_ == 1 && in_ == out_) return x;
  if (projection_) return projection_bn_(projection_(x));
  // Option A per member: subsample, then zero channels after each member's own.
  torch::Tensor s = SubsampleForShortcut(x, stride_);
  if (out_ > in_) {
    const int64_t b = s.size(0), h = s.size(2), w = s.size(3);
    s = F::pad(s.reshape({b, members_, in_, h, w}), F::PadFuncOptions({0, 0, 0, 0, 0, out_ - in_}))
            .reshape({b, members_ * out_, h, w});
    if (x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous()) {
      s = s.contiguous(at::MemoryFormat::ChannelsLast);
    }
  }
  return s;
}

// The same formulas as ResidualBlockImpl::forward, on the stacked channels.
torch::Tensor FusedResidualBlockImpl::forward(const torch::Tensor& x) {
  return ResidualBlockFormula(kind_, x, conv1_, bn1_, conv2_, bn2_, [&] { return Shortcut(x); });
}

FusedResNetImpl::FusedResNetImpl(const ResNetOptions& options, int64_t members)
    : options_(options), members_(members) {
  TORCH_CHECK(members >= 1, "a fused network needs at least one member");
  const int64_t w = options.base_width;
  stem_ = register_module("stem", GroupedConv(members, options.in_channels, w, 3, 1));
  const bool preact = options.block == BlockKind::kPreact;
  if (!preact) stem_bn_ = register_module("stem_bn", StackedBatchNorm(members, w));
  const int64_t in = ForEachBlockShape(options, [&](int64_t in, int64_t out, int64_t stride) {
    stages_->push_back(
        FusedResidualBlock(members, in, out, stride, options.block, options.projection_shortcut));
  });
  register_module("stages", stages_);
  if (preact) final_bn_ = register_module("final_bn", StackedBatchNorm(members, in));
  // Registered under ResNet's names ("fc.weight", "fc.bias") through a holder module.
  auto fc = register_module("fc", std::make_shared<torch::nn::Module>("FusedLinear"));
  fc_weight_ = fc->register_parameter("weight", torch::zeros({members, options.classes, in}));
  fc_bias_ = fc->register_parameter("bias", torch::zeros({members, options.classes}));
}

torch::Tensor FusedResNetImpl::forward(torch::Tensor x) {
  x = stem_(x);
  if (stem_bn_) x = stem_bn_(x).relu_();
  x = stages_->forward(x);
  if (final_bn_) x = final_bn_(x).relu_();
  const int64_t b = x.size(0);
  x = x.mean({2, 3}).view({b, members_, -1});  // global average pooling, per member
  // [F, B, C] x [F, C, K] -> [F, B, K], then [B, F, K].
  auto logits =
      torch::baddbmm(fc_bias_.unsqueeze(1), x.transpose(0, 1), fc_weight_.transpose(1, 2));
  return logits.transpose(0, 1);
}

torch::Tensor FusedResNetImpl::MemberSlice(const std::string& name, const torch::Tensor& fused,
                                           int64_t f) const {
  if (fused.dim() == 0) return fused;  // num_batches_tracked: one counter for all
  if (IsStackedTensor(name)) return fused.select(0, f);
  const int64_t per_member = fused.size(0) / members_;
  return fused.narrow(0, f * per_member, per_member);
}

torch::Tensor FusedResNetImpl::JoinMembers(const std::string& name,
                                           const std::vector<torch::Tensor>& parts) const {
  TORCH_CHECK(static_cast<int64_t>(parts.size()) == members_, "joining ", parts.size(),
              " tensors into ", members_, " members");
  return IsStackedTensor(name) ? torch::stack(parts) : torch::cat(parts);
}

namespace {

std::map<std::string, torch::Tensor> TensorsByName(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : m.named_parameters(/*recurse=*/true)) out[item.key()] = item.value();
  for (const auto& item : m.named_buffers(/*recurse=*/true)) out[item.key()] = item.value();
  return out;
}

}  // namespace

void FusedResNetImpl::ForEachMemberTensor(
    int64_t f, ResNet& member,
    const std::function<void(torch::Tensor& slice, torch::Tensor& theirs)>& visit) {
  TORCH_CHECK(f >= 0 && f < members_, "member ", f, " of ", members_);
  torch::NoGradGuard no_grad;
  auto mine = TensorsByName(*this);
  auto theirs = TensorsByName(*member);
  TORCH_CHECK(mine.size() == theirs.size(), "fused network has ", mine.size(), " tensors, member ",
              theirs.size());
  for (auto& [name, fused] : mine) {
    auto it = theirs.find(name);
    TORCH_CHECK(it != theirs.end(), "member has no tensor '", name, "'");
    auto slice = MemberSlice(name, fused, f);
    TORCH_CHECK(slice.sizes() == it->second.sizes(), "shape of '", name, "' differs");
    visit(slice, it->second);
  }
}

void FusedResNetImpl::LoadMember(int64_t f, ResNet& member) {
  ForEachMemberTensor(f, member,
                      [](torch::Tensor& slice, torch::Tensor& theirs) { slice.copy_(theirs); });
}

void FusedResNetImpl::StoreMember(int64_t f, ResNet& member) {
  ForEachMemberTensor(f, member,
                      [](torch::Tensor& slice, torch::Tensor& theirs) { theirs.copy_(slice); });
}

torch::Tensor StackMemberInputs(const std::vector<torch::Tensor>& inputs) {
  return torch::cat(inputs, 1);
}

}  // namespace resweep
