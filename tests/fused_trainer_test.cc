#include "worker/fused_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <map>

#include "tests/data_files.h"
#include "worker/libtorch_trainer.h"
#include "worker/trainer_internal.h"

namespace resweep {
namespace {

using namespace resweep::testing;

class Recorder : public RunContext {
 public:
  bool ShouldStop() const override {
    return stop_after > 0 && static_cast<int>(epochs.size()) >= stop_after;
  }
  Status OnEpoch(const EpochReport& r) override {
    epochs.push_back(r);
    return Status::Ok();
  }
  Status OnCheckpoint(int epoch, int64_t, const std::string& payload) override {
    checkpoints[epoch] = payload;
    return Status::Ok();
  }
  std::vector<EpochReport> epochs;
  std::map<int, std::string> checkpoints;
  int stop_after = 0;
};

// Fashion-MNIST where Debian's dataset-fashion-mnist is installed (as in CI), else
// a generated learnable CIFAR-format set.
RunConfig SmallConfig(const std::string& generated_dir) {
  RunConfig c;
  struct stat st;
  if (stat("/usr/share/datasets/fashion-mnist", &st) == 0) {
    c.dataset.kind = "fashion-mnist";
    c.dataset.train_limit = 1024;
    c.dataset.test_limit = 500;
    c.dataset.augment_padding = 2;
  } else {
    WriteCifarDir(generated_dir, 40, 50, /*learnable=*/true);
    c.dataset.kind = "cifar10";
    c.dataset.path = generated_dir;
  }
  c.model.depth_n = 1;
  c.model.base_width = 8;
  c.train.epochs = 3;
  c.train.batch_size = 64;
  c.train.optimizer.lr = 0.05;
  c.train.schedule.milestones = {2};
  return c;
}

std::vector<GangMember> Gang(std::vector<Recorder>& recorders, std::vector<int64_t> seeds) {
  std::vector<GangMember> members;
  for (size_t i = 0; i < seeds.size(); ++i)
    members.push_back({seeds[i], {}, &recorders[i], nullptr});
  return members;
}

// The tolerance of a fused member against its lone run: float32 reassociation (grouped
// against plain convolutions) grows through training, so curves agree closely, not
// bit for bit. Measured on this VM (Fashion-MNIST, 1,024 / 500 images, 3 epochs): train
// losses within 0.0023, test errors within 0.022 (11 of 500 images, early in training
// when the test error swings most). The tolerances leave about 2x room.
constexpr double kLossTolerance = 0.005;  // absolute, on a loss of about 1.3-2.2
constexpr double kErrorTolerance = 0.05;  // absolute, on a test error

TEST(GangTrainer, MembersFollowTheirSeparateCurves) {
  TempDir dir;
  DatasetCache cache({.data_root = "/", .allow_absolute_paths = true});
  const RunConfig config = SmallConfig(dir.path());
  auto lone = MakeLibTorchTrainer(torch::kCPU, &cache);
  GangTrainer gang(torch::kCPU, &cache);
  const std::vector<int64_t> seeds = {11, 12, 13};
  std::vector<Recorder> separate(3), fused(3);
  for (size_t i = 0; i < seeds.size(); ++i) {
    ASSERT_TRUE(lone->Train(config, seeds[i], {}, &separate[i]).ok());
  }
  auto results = gang.Train(config, Gang(fused, seeds));
  ASSERT_EQ(results.size(), 3u);
  for (size_t i = 0; i < seeds.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status().ToString();
    EXPECT_EQ(results[i]->epochs_done, 3);
    ASSERT_EQ(fused[i].epochs.size(), 3u);
    for (int e = 0; e < 3; ++e) {
      const auto& a = fused[i].epochs[e];
      const auto& b = separate[i].epochs[e];
      std::printf("seed %lld epoch %d: train loss %.5f vs %.5f, test error %.4f vs %.4f\n",
                  static_cast<long long>(seeds[i]), e + 1, a.train_loss, b.train_loss, a.test_error,
                  b.test_error);
      EXPECT_NEAR(a.train_loss, b.train_loss, kLossTolerance) << "seed " << seeds[i];
      EXPECT_NEAR(a.test_error, b.test_error, kErrorTolerance) << "seed " << seeds[i];
      EXPECT_EQ(a.lr, b.lr);
    }
  }
  // Seeds differ from each other by more than the tolerance allows a member to drift:
  // a gang that trained every member with one seed's data or weights would fail above.
  EXPECT_GT(std::abs(separate[0].epochs[0].train_loss - separate[1].epochs[0].train_loss),
            kLossTolerance);
}

TEST(GangTrainer, ResumesFromItsCheckpointsExactlyAndMembersCanGoOnAlone) {
  TempDir dir;
  DatasetCache cache({.data_root = "/", .allow_absolute_paths = true});
  const RunConfig config = SmallConfig(dir.path());
  GangTrainer gang(torch::kCPU, &cache);
  std::vector<Recorder> whole(2);
  auto r = gang.Train(config, Gang(whole, {5, 6}));
  ASSERT_TRUE(r[0].ok() && r[1].ok());
  ASSERT_EQ(whole[0].checkpoints.count(2), 1u);
  // The gang resumed from its epoch-2 checkpoints: epoch 3 bit for bit.
  std::vector<Recorder> resumed(2);
  std::vector<GangMember> members = {{5, {2, whole[0].checkpoints.at(2)}, &resumed[0], nullptr},
                                     {6, {2, whole[1].checkpoints.at(2)}, &resumed[1], nullptr}};
  auto rr = gang.Train(config, members);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(rr[i].ok()) << rr[i].status().ToString();
    ASSERT_EQ(resumed[i].epochs.size(), 1u);
    EXPECT_EQ(resumed[i].epochs[0].epoch, 3);
    EXPECT_EQ(resumed[i].epochs[0].train_loss, whole[i].epochs[2].train_loss);
    EXPECT_EQ(resumed[i].epochs[0].test_error, whole[i].epochs[2].test_error);
  }
  // A member's checkpoint is a lone run's: the single-run trainer goes on from it.
  auto lone = MakeLibTorchTrainer(torch::kCPU, &cache);
  Recorder alone;
  auto ra = lone->Train(config, 6, {2, whole[1].checkpoints.at(2)}, &alone);
  ASSERT_TRUE(ra.ok()) << ra.status().ToString();
  ASSERT_EQ(alone.epochs.size(), 1u);
  EXPECT_NEAR(alone.epochs[0].train_loss, whole[1].epochs[2].train_loss, kLossTolerance);
  EXPECT_NEAR(alone.epochs[0].test_error, whole[1].epochs[2].test_error, kErrorTolerance);
  // Members resuming from different epochs are not a gang.
  std::vector<Recorder> mixed(2);
  auto rm = gang.Train(config, {{5, {1, whole[0].checkpoints.at(1)}, &mixed[0], nullptr},
                                {6, {2, whole[1].checkpoints.at(2)}, &mixed[1], nullptr}});
  EXPECT_EQ(rm[0].status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(rm[1].status().code(), StatusCode::kFailedPrecondition);
}

TEST(GangTrainer, ADivergingOrStoppedMemberLeavesAndTheOthersGoOn) {
  TempDir dir;
  DatasetCache cache({.data_root = "/", .allow_absolute_paths = true});
  RunConfig config = SmallConfig(dir.path());
  GangTrainer gang(torch::kCPU, &cache);
  std::vector<Recorder> first(3);
  auto r = gang.Train(config, Gang(first, {1, 2, 3}));
  for (const auto& x : r) ASSERT_TRUE(x.ok());
  // Member 2's epoch-1 checkpoint with NaN weights: it loads, and that run diverges.
  std::string poisoned;
  {
    using namespace trainer_internal;
    ResNetOptions o;
    o.depth_n = 1;
    o.base_width = 8;
    o.in_channels = config.dataset.kind == "fashion-mnist" ? 1 : 3;
    ResNet net(o);
    auto optimizer = MakeOptimizer(config.train.optimizer, net->parameters());
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(0);
    int64_t iteration = 0;
    EpochPosition position;
    ASSERT_TRUE(LoadTrainingState(first[1].checkpoints.at(1), 1, torch::kCPU, net, *optimizer, g,
                                  &iteration, &position)
                    .ok());
    torch::NoGradGuard no_grad;
    net->named_parameters()["stem.weight"].fill_(std::nan(""));
    poisoned = SaveTrainingState(net, *optimizer, g.get_state(), 1, iteration, position);
  }
  std::vector<Recorder> second(3);
  second[2].stop_after = 1;  // member 3 is cancelled after its first epoch here (epoch 2)
  // The members that leave are told so at once, while the survivor trains on.
  std::vector<std::pair<int64_t, size_t>> left;  // (seed, survivor's epochs reported by then)
  auto note = [&](int64_t seed) {
    return [&, seed](const StatusOr<TrainOutcome>& r) {
      EXPECT_FALSE(r.ok());
      left.emplace_back(seed, second[0].epochs.size());
    };
  };
  auto rr = gang.Train(config, {{1, {1, first[0].checkpoints.at(1)}, &second[0], note(1)},
                                {2, {1, poisoned}, &second[1], note(2)},
                                {3, {1, first[2].checkpoints.at(1)}, &second[2], note(3)}});
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0], std::make_pair(int64_t{2}, size_t{0}));  // diverged in epoch 2
  EXPECT_EQ(left[1], std::make_pair(int64_t{3}, size_t{1}));  // stopped early in epoch 3
  ASSERT_EQ(rr[1].status().code(), StatusCode::kInvalidArgument) << rr[1].status().ToString();
  EXPECT_NE(rr[1].status().message().find("diverged"), std::string::npos);
  EXPECT_TRUE(second[1].epochs.empty());  // no non-finite epoch was reported
  EXPECT_EQ(rr[2].status().code(), StatusCode::kCancelled);
  EXPECT_EQ(second[2].epochs.size(), 1u);
  ASSERT_TRUE(rr[0].ok()) << rr[0].status().ToString();
  ASSERT_EQ(second[0].epochs.size(), 2u);
  // The survivor trained on as in the first, undisturbed gang.
  for (int e = 0; e < 2; ++e) {
    EXPECT_NEAR(second[0].epochs[e].train_loss, first[0].epochs[e + 1].train_loss, kLossTolerance);
    EXPECT_NEAR(second[0].epochs[e].test_error, first[0].epochs[e + 1].test_error, kErrorTolerance);
  }
}

TEST(GangTrainer, RefusesWhatItCannotFuse) {
  RunConfig c;
  EXPECT_TRUE(SeedFusable(c).ok());
  c.train.optimizer.name = "adam";
  EXPECT_EQ(SeedFusable(c).code(), StatusCode::kUnimplemented);
  c.train.optimizer.name = "sgd";
  c.train.amp = "fp16";
  EXPECT_EQ(SeedFusable(c).code(), StatusCode::kUnimplemented);
  c.train.amp = "off";
  c.train.grad_clip_norm = 1;
  EXPECT_EQ(SeedFusable(c).code(), StatusCode::kUnimplemented);
  RunConfig synthetic;
  synthetic.trainer.kind = "synthetic";
  EXPECT_EQ(SeedFusable(synthetic).code(), StatusCode::kUnimplemented);
  DatasetCache cache({.data_root = "/", .allow_absolute_paths = true});
  GangTrainer gang(torch::kCPU, &cache);
  Recorder a;
  auto r = gang.Train(c, {{1, {}, &a, nullptr}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r[0].status().message().find("clip"), std::string::npos);
}

}  // namespace
}  // namespace resweep
