#include "worker/fused_resnet.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <vector>

namespace resweep {
namespace {

namespace F = torch::nn::functional;

struct Case {
  BlockKind block;
  bool projection;
  bool channels_last;
  // float64: the fused network must agree to rounding; float32: to float32
  // reassociation, which batch norm over a tiny batch amplifies (gradients differ by
  // up to 0.7% of the largest after one step, 2% after three): one step there.
  torch::Dtype dtype = torch::kFloat64;
  int steps = 2;
};

// F separate ResNets, each initialised from its own seed, against one fused network
// loaded with the same weights: per member, the same logits, the same gradients,
// the same weights and BN statistics after SGD steps (momentum, weight decay), each
// member fed its own batches.
void ExpectFusedMatchesSeparate(const Case& c) {
  const int64_t members = 3, batch = 8;
  ResNetOptions o;
  o.depth_n = 1;
  o.block = c.block;
  o.projection_shortcut = c.projection;
  const auto format =
      c.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  std::vector<ResNet> separate;
  std::vector<std::unique_ptr<torch::optim::SGD>> separate_sgd;
  const auto sgd_options = torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(1e-4);
  FusedResNet fused(o, members);
  for (int64_t f = 0; f < members; ++f) {
    separate.emplace_back(o);
    separate.back()->Initialize(at::make_generator<at::CPUGeneratorImpl>(100 + f));
    fused->LoadMember(f, separate.back());
    separate_sgd.push_back(
        std::make_unique<torch::optim::SGD>(separate.back()->parameters(), sgd_options));
  }
  if (c.channels_last) {
    for (auto& p : fused->parameters())
      if (p.dim() == 4) p.set_data(p.data().contiguous(format));
    for (auto& m : separate)
      for (auto& p : m->parameters())
        if (p.dim() == 4) p.set_data(p.data().contiguous(format));
  }
  fused->to(c.dtype);
  for (auto& m : separate) m->to(c.dtype);
  const bool exact = c.dtype == torch::kFloat64;
  const double rtol = exact ? 1e-9 : 1e-4, atol = exact ? 1e-11 : 1e-5;
  torch::optim::SGD fused_sgd(fused->parameters(), sgd_options);
  at::Generator data = at::make_generator<at::CPUGeneratorImpl>(5);
  for (int step = 0; step < c.steps; ++step) {
    std::vector<torch::Tensor> xs, ys;
    for (int64_t f = 0; f < members; ++f) {
      xs.push_back(torch::randn({batch, 3, 32, 32}, data).to(c.dtype));
      ys.push_back(torch::randint(0, 10, {batch}, data, torch::kInt64));
    }
    // Separate runs.
    std::vector<torch::Tensor> separate_logits;
    for (int64_t f = 0; f < members; ++f) {
      separate[f]->train();
      separate_sgd[f]->zero_grad();
      auto logits = separate[f]->forward(xs[f].contiguous(format));
      F::cross_entropy(logits, ys[f]).backward();
      separate_logits.push_back(logits.detach());
    }
    // Fused: one forward, the loss the sum of the members' losses.
    fused->train();
    fused_sgd.zero_grad();
    auto logits = fused->forward(StackMemberInputs(xs).contiguous(format));
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{batch, members, 10}));
    torch::Tensor loss = torch::zeros({}, logits.options());
    for (int64_t f = 0; f < members; ++f) {
      EXPECT_TRUE(torch::allclose(logits.select(1, f).detach(), separate_logits[f], rtol, atol))
          << "step " << step << " member " << f << " logits";
      loss = loss + F::cross_entropy(logits.select(1, f), ys[f]);
    }
    loss.backward();
    for (int64_t f = 0; f < members; ++f) {
      for (const auto& item : separate[f]->named_parameters()) {
        auto fused_param = fused->named_parameters()[item.key()];
        auto grad = fused->MemberSlice(item.key(), fused_param.grad(), f);
        const auto& want = item.value().grad();
        const double scale = exact ? 1e-9 : 1e-2 * want.abs().max().item<double>();
        EXPECT_TRUE(torch::allclose(grad, want, rtol, scale))
            << "differs by " << (grad - want).abs().max().item<double>() << "; step " << step
            << " member " << f << " grad of " << item.key();
      }
    }
    for (int64_t f = 0; f < members; ++f) separate_sgd[f]->step();
    fused_sgd.step();
  }
  // After the steps: every member's weights and BN statistics match its separate twin.
  for (int64_t f = 0; f < members; ++f) {
    ResNet stored(o);
    stored->to(c.dtype);
    fused->StoreMember(f, stored);
    auto want = separate[f]->named_parameters();
    for (const auto& item : stored->named_parameters()) {
      EXPECT_TRUE(torch::allclose(item.value(), want[item.key()], exact ? 1e-9 : 1e-3,
                                  exact ? 1e-11 : 1e-4))
          << "member " << f << " weight " << item.key();
    }
    auto want_buffers = separate[f]->named_buffers();
    for (const auto& item : stored->named_buffers()) {
      EXPECT_TRUE(torch::allclose(item.value().to(torch::kFloat64),
                                  want_buffers[item.key()].to(torch::kFloat64), exact ? 1e-9 : 1e-3,
                                  exact ? 1e-11 : 1e-4))
          << "member " << f << " buffer " << item.key();
    }
  }
}

TEST(FusedResNet, ReferenceBlockOptionAMatchesSeparateRuns) {
  ExpectFusedMatchesSeparate({BlockKind::kReference, false, false});
}
TEST(FusedResNet, EveryBlockDesignMatchesSeparateRuns) {
  for (auto block : {BlockKind::kBnAfterAdd, BlockKind::kNoRelu, BlockKind::kNoReluBnAfterAdd,
                     BlockKind::kPreact}) {
    SCOPED_TRACE(static_cast<int>(block));
    ExpectFusedMatchesSeparate({block, false, false});
  }
}
TEST(FusedResNet, ProjectionShortcutMatchesSeparateRuns) {
  ExpectFusedMatchesSeparate({BlockKind::kReference, true, false});
}
TEST(FusedResNet, ChannelsLastMatchesSeparateRuns) {
  ExpectFusedMatchesSeparate({BlockKind::kReference, false, true});
}
TEST(FusedResNet, Float32MatchesSeparateRunsToReassociation) {
  ExpectFusedMatchesSeparate({BlockKind::kReference, false, false, torch::kFloat32, 1});
  ExpectFusedMatchesSeparate({BlockKind::kPreact, true, true, torch::kFloat32, 1});
}

TEST(FusedResNet, MembersMoveInAndOutUnchanged) {
  ResNetOptions o;
  o.depth_n = 2;
  FusedResNet fused(o, 4);
  ResNet a(o), b(o);
  a->Initialize(at::make_generator<at::CPUGeneratorImpl>(1));
  fused->LoadMember(2, a);
  fused->StoreMember(2, b);
  auto want = a->named_parameters();
  for (const auto& item : b->named_parameters())
    EXPECT_TRUE(torch::equal(item.value(), want[item.key()])) << item.key();
  // Another member's slot is untouched by the load (still zero-initialised fc).
  ResNet other(o);
  fused->StoreMember(1, other);
  EXPECT_FALSE(torch::equal(other->named_parameters()["stem.weight"], want["stem.weight"]));
  // A member of another shape is refused with the tensor's name.
  ResNetOptions deeper = o;
  deeper.depth_n = 3;
  ResNet wrong(deeper);
  EXPECT_THROW(fused->LoadMember(0, wrong), c10::Error);
  EXPECT_THROW(fused->LoadMember(4, a), c10::Error);
}

}  // namespace
}  // namespace resweep
