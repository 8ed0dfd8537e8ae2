#include "worker/resnet.h"

#include <cmath>

namespace resweep {

namespace F = torch::nn::functional;

StatusOr<BlockKind> ParseBlockKind(const std::string& name) {
  if (name == "reference") return BlockKind::kReference;
  if (name == "bn-after-add") return BlockKind::kBnAfterAdd;
  if (name == "no-relu") return BlockKind::kNoRelu;
  if (name == "no-relu-bn-after-add") return BlockKind::kNoReluBnAfterAdd;
  if (name == "preact") return BlockKind::kPreact;
  return InvalidArgumentError("unknown block '" + name + "'");
}

namespace {
torch::nn::Conv2d Conv3x3(int64_t in, int64_t out, int64_t stride) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}
}  // namespace

ResidualBlockImpl::ResidualBlockImpl(int64_t in, int64_t out, int64_t stride, BlockKind kind,
                                     bool projection)
    : kind_(kind), in_(in), out_(out), stride_(stride) {
  conv1_ = register_module("conv1", Conv3x3(in, out, stride));
  conv2_ = register_module("conv2", Conv3x3(out, out, 1));
  // preact normalises the block input (in channels); the others the conv outputs.
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(kind == BlockKind::kPreact ? in : out));
  bn2_ = register_module("bn2", torch::nn::BatchNorm2d(out));
  if (projection && (stride != 1 || in != out)) {
    projection_ = register_module(
        "projection",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)));
    projection_bn_ = register_module("projection_bn", torch::nn::BatchNorm2d(out));
  }
}

torch::Tensor ResidualBlockImpl::Shortcut(const torch::Tensor& x) {
  if (stride_ == 1 && in_ == out_) return x;
  if (projection_) return projection_bn_(projection_(x));
  // Option A: subsample, then zero channels appended after the existing ones.
  torch::Tensor s = SubsampleForShortcut(x, stride_);
  if (out_ > in_) s = F::pad(s, F::PadFuncOptions({0, 0, 0, 0, 0, out_ - in_}));
  return s;
}

// In-place ReLUs and additions where autograd allows them (the overwritten tensor is
// the fresh output of a BN, a conv or an addition, none of which keeps its output
// for the backward pass): fewer allocations per step, same arithmetic, same bits.
int64_t ForEachBlockShape(
    const ResNetOptions& options,
    const std::function<void(int64_t in, int64_t out, int64_t stride)>& block) {
  int64_t in = options.base_width;
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t out = options.base_width << stage;
    for (int i = 0; i < options.depth_n; ++i) {
      block(in, out, (stage > 0 && i == 0) ? 2 : 1);
      in = out;
    }
  }
  return in;
}

torch::Tensor SubsampleForShortcut(const torch::Tensor& x, int64_t stride) {
  if (stride == 1) return x;
  using torch::indexing::None;
  using torch::indexing::Slice;
  return x.index({Slice(), Slice(), Slice(None, None, stride), Slice(None, None, stride)});
}

torch::Tensor ResidualBlockFormula(BlockKind kind, const torch::Tensor& x, torch::nn::Conv2d& conv1,
                                   torch::nn::BatchNorm2d& bn1, torch::nn::Conv2d& conv2,
                                   torch::nn::BatchNorm2d& bn2,
                                   const std::function<torch::Tensor()>& shortcut) {
  switch (kind) {
    case BlockKind::kReference: {
      auto out = bn2(conv2(bn1(conv1(x)).relu_()));
      return out.add_(shortcut()).relu_();
    }
    case BlockKind::kBnAfterAdd: {
      auto sum = conv2(bn1(conv1(x)).relu_());
      return bn2(sum.add_(shortcut())).relu_();
    }
    case BlockKind::kNoRelu: {
      auto out = bn2(conv2(bn1(conv1(x)).relu_()));
      return out.add_(shortcut());
    }
    case BlockKind::kNoReluBnAfterAdd: {
      auto sum = conv2(bn1(conv1(x)).relu_());
      return bn2(sum.add_(shortcut()));
    }
    case BlockKind::kPreact: {
      auto out = conv2(bn2(conv1(bn1(x).relu_())).relu_());
      return out.add_(shortcut());
    }
  }
  return x;
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x) {
  return ResidualBlockFormula(kind_, x, conv1_, bn1_, conv2_, bn2_, [&] { return Shortcut(x); });
}

ResNetImpl::ResNetImpl(const ResNetOptions& options) : options_(options) {
  const int64_t w = options.base_width;
  stem_ = register_module("stem", Conv3x3(options.in_channels, w, 1));
  const bool preact = options.block == BlockKind::kPreact;
  if (!preact) stem_bn_ = register_module("stem_bn", torch::nn::BatchNorm2d(w));
  const int64_t in = ForEachBlockShape(options, [&](int64_t in, int64_t out, int64_t stride) {
    stages_->push_back(ResidualBlock(in, out, stride, options.block, options.projection_shortcut));
  });
  register_module("stages", stages_);
  if (preact) final_bn_ = register_module("final_bn", torch::nn::BatchNorm2d(in));
  fc_ = register_module("fc", torch::nn::Linear(in, options.classes));
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) {
  x = stem_(x);
  if (stem_bn_) x = stem_bn_(x).relu_();
  x = stages_->forward(x);
  if (final_bn_) x = final_bn_(x).relu_();
  x = x.mean({2, 3});  // global average pooling
  return fc_(x);
}

void ResNetImpl::Initialize(at::Generator generator) {
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* conv = module->as<torch::nn::Conv2dImpl>()) {
      const auto& k = conv->options.kernel_size();
      const double fan_out = static_cast<double>(conv->options.out_channels()) * (*k)[0] * (*k)[1];
      conv->weight.normal_(0.0, std::sqrt(2.0 / fan_out), generator);
    } else if (auto* bn = module->as<torch::nn::BatchNorm2dImpl>()) {
      bn->weight.fill_(1.0);
      bn->bias.zero_();
    } else if (auto* fc = module->as<torch::nn::LinearImpl>()) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(fc->options.in_features()));
      fc->weight.uniform_(-bound, bound, generator);
      fc->bias.zero_();
    }
  }
}

int64_t ResNetImpl::ParameterCount() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace resweep
