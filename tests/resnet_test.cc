#include "worker/resnet.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

namespace resweep {
namespace {

namespace F = torch::nn::functional;

TEST(ResNet, ParameterCountsMatchThePaper) {
  // He et al. 2015, Table 6 (option A): 0.27M, 0.46M, 0.66M, 0.85M, 1.7M.
  const std::pair<int, double> expected[] = {
      {3, 0.27e6}, {5, 0.46e6}, {7, 0.66e6}, {9, 0.85e6}, {18, 1.7e6}};
  for (const auto& [n, paper] : expected) {
    ResNetOptions o;
    o.depth_n = n;
    ResNet net(o);
    const double count = static_cast<double>(net->ParameterCount());
    EXPECT_NEAR(count / paper, 1.0, 0.02) << 6 * n + 2 << " layers: " << count;
  }
  ResNetOptions o;
  o.depth_n = 3;
  // 267,696 conv weights + 1,376 BN affine + 650 fc: the 0.27M of the paper.
  EXPECT_EQ(ResNet(o)->ParameterCount(), 269722);
  o.projection_shortcut = true;  // option B adds two 1x1 convs + BN
  EXPECT_EQ(ResNet(o)->ParameterCount(), 269722 + 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64);
}

TEST(ResNet, ForwardShapesForCifarAndFashionMnist) {
  for (int64_t channels : {3, 1}) {
    ResNetOptions o;
    o.depth_n = 1;
    o.in_channels = channels;
    for (auto block : {BlockKind::kReference, BlockKind::kPreact}) {
      o.block = block;
      ResNet net(o);
      const int64_t side = channels == 3 ? 32 : 28;
      auto out = net->forward(torch::randn({2, channels, side, side}));
      EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 10}));
    }
  }
}

// Randomises every parameter and BN running statistic so that no term of a block's
// formula can hide (identity BN would make several designs coincide).
void Randomize(torch::nn::Module& m, at::Generator g) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.normal_(0.0, 0.5, g);
  for (auto& b : m.named_buffers()) {
    if (b.key().find("running_var") != std::string::npos) {
      b.value().uniform_(0.5, 2.0, g);
    } else if (b.key().find("running_mean") != std::string::npos) {
      b.value().normal_(0.0, 0.3, g);
    }
  }
}

TEST(ResNet, EachBlockComputesItsFormula) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(7);
  auto x = torch::randn({2, 4, 6, 6}, g);
  for (auto kind : {BlockKind::kReference, BlockKind::kBnAfterAdd, BlockKind::kNoRelu,
                    BlockKind::kNoReluBnAfterAdd, BlockKind::kPreact}) {
    ResidualBlock block(4, 4, 1, kind, false);
    Randomize(*block, g);
    block->eval();
    torch::NoGradGuard no_grad;
    auto children = block->named_children();
    auto conv = [&](const char* name, const torch::Tensor& t) {
      return children[name]->as<torch::nn::Conv2dImpl>()->forward(t);
    };
    auto bn = [&](const char* name, const torch::Tensor& t) {
      auto* b = children[name]->as<torch::nn::BatchNorm2dImpl>();
      // Eval-mode BN written out: (t - mean) / sqrt(var + eps) * weight + bias.
      auto shape = std::vector<int64_t>{1, -1, 1, 1};
      return (t - b->running_mean.view(shape)) / torch::sqrt(b->running_var.view(shape) + 1e-5) *
                 b->weight.view(shape) +
             b->bias.view(shape);
    };
    auto relu = [](const torch::Tensor& t) { return t.clamp_min(0); };
    torch::Tensor expected;
    switch (kind) {
      case BlockKind::kReference:
        expected = relu(bn("bn2", conv("conv2", relu(bn("bn1", conv("conv1", x))))) + x);
        break;
      case BlockKind::kBnAfterAdd:
        expected = relu(bn("bn2", conv("conv2", relu(bn("bn1", conv("conv1", x)))) + x));
        break;
      case BlockKind::kNoRelu:
        expected = bn("bn2", conv("conv2", relu(bn("bn1", conv("conv1", x))))) + x;
        break;
      case BlockKind::kNoReluBnAfterAdd:
        expected = bn("bn2", conv("conv2", relu(bn("bn1", conv("conv1", x)))) + x);
        break;
      case BlockKind::kPreact:
        expected = x + conv("conv2", relu(bn("bn2", conv("conv1", relu(bn("bn1", x))))));
        break;
    }
    auto got = block->forward(x);
    EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-5)) << static_cast<int>(kind);
    // The designs without a final ReLU can output negative values; the others cannot.
    const bool can_be_negative = kind == BlockKind::kNoRelu ||
                                 kind == BlockKind::kNoReluBnAfterAdd || kind == BlockKind::kPreact;
    EXPECT_EQ(got.min().item<float>() < 0, can_be_negative) << static_cast<int>(kind);
  }
}

TEST(ResNet, OptionAShortcutSubsamplesAndZeroPads) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  auto x = torch::randn({1, 2, 4, 4}, g);
  ResidualBlock block(2, 4, 2, BlockKind::kNoRelu, false);
  EXPECT_EQ(block->parameters().size(), 6u);  // 2 convs + 2 BN affine pairs: no shortcut weights
  Randomize(*block, g);
  block->eval();
  torch::NoGradGuard no_grad;
  // Zero the residual branch (bn2 scale 0, bias 0): the output is the shortcut alone.
  auto* bn2 = block->named_children()["bn2"]->as<torch::nn::BatchNorm2dImpl>();
  bn2->weight.zero_();
  bn2->bias.zero_();
  auto y = block->forward(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{1, 4, 2, 2}));
  using torch::indexing::Slice;
  auto sub = x.index({Slice(), Slice(), Slice(0, 4, 2), Slice(0, 4, 2)});
  EXPECT_TRUE(torch::allclose(y.narrow(1, 0, 2), sub));
  EXPECT_EQ(y.narrow(1, 2, 2).abs().max().item<float>(), 0.0f);
}

}  // namespace
}  // namespace resweep
