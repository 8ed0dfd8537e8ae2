#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <map>

#include "common/sweep_spec.h"
#include "tests/data_files.h"
#include "worker/libtorch_trainer.h"
#include "worker/lr_schedule.h"
#include "worker/trainer.h"

// Measured (this machine, 2026-11-26): 19.85% test error after 4 epochs.
#define REAL_DATA_ERROR_BAR 0.28

namespace resweep {
namespace {

using namespace resweep::testing;

class RecordingContext : public RunContext {
 public:
  bool ShouldStop() const override {
    ++polls;
    return (stop_after > 0 && static_cast<int>(epochs.size()) >= stop_after) ||
           (stop_at_poll > 0 && polls >= stop_at_poll);
  }
  bool CheckpointOnStop() const override { return checkpoint_on_stop; }
  Status OnEpoch(const EpochReport& r) override {
    epochs.push_back(r);
    return Status::Ok();
  }
  Status OnCheckpoint(int epoch, int64_t iteration, const std::string& payload) override {
    checkpoints[epoch] = payload;
    last_checkpoint = {epoch, iteration};
    return Status::Ok();
  }
  std::vector<EpochReport> epochs;
  std::map<int, std::string> checkpoints;
  std::pair<int, int64_t> last_checkpoint{0, 0};
  int stop_after = 0;    // stop once this many epochs are reported
  int stop_at_poll = 0;  // or at this ShouldStop() call (a batch boundary)
  bool checkpoint_on_stop = false;
  mutable int polls = 0;
};

RunConfig TinyCifarConfig(const std::string& dir) {
  RunConfig c;
  c.dataset.kind = "cifar10";
  c.dataset.path = dir;
  c.model.depth_n = 1;
  c.model.base_width = 4;
  c.train.epochs = 3;
  c.train.batch_size = 32;
  c.train.optimizer.lr = 0.05;
  c.train.schedule.milestones = {2};
  return c;
}

TEST(LearningRate, StepCosineAndWarmup) {
  OptimizerConfig o;
  ScheduleConfig s;
  s.milestones = {80, 160};
  EXPECT_DOUBLE_EQ(LearningRateAt(o, s, 0, 391, 200), 0.1);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, s, 80 * 391 - 1, 391, 200), 0.1);
  EXPECT_NEAR(LearningRateAt(o, s, 80 * 391, 391, 200), 0.01, 1e-15);
  EXPECT_NEAR(LearningRateAt(o, s, 160 * 391, 391, 200), 0.001, 1e-15);
  s.milestone_unit = "iteration";
  s.milestones = {32000, 48000};
  EXPECT_NEAR(LearningRateAt(o, s, 32000, 391, 200), 0.01, 1e-15);
  // The paper's warm-up for 110 layers: 0.01 for 400 iterations, then 0.1.
  s.warmup_iterations = 400;
  s.warmup_lr = 0.01;
  EXPECT_DOUBLE_EQ(LearningRateAt(o, s, 399, 391, 200), 0.01);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, s, 400, 391, 200), 0.1);
  s.warmup_kind = "linear";
  EXPECT_NEAR(LearningRateAt(o, s, 200, 391, 200), 0.055, 1e-12);
  ScheduleConfig cosine;
  cosine.kind = "cosine";
  EXPECT_DOUBLE_EQ(LearningRateAt(o, cosine, 0, 100, 10), 0.1);
  EXPECT_NEAR(LearningRateAt(o, cosine, 500, 100, 10), 0.05, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, cosine, 1000, 100, 10), 0.0, 1e-12);
}

TEST(Augment, CropsAtPerSampleOffsetsAndFlips) {
  auto images = torch::arange(2 * 1 * 4 * 4, torch::kFloat32).view({2, 1, 4, 4});
  auto offsets = torch::tensor({0, 0, 2, 1}, torch::kInt64).view({2, 2});
  auto out = AugmentBatch(images, 1, offsets, torch::Tensor());
  // Sample 0 shifted down-right by the padding: row 0 and column 0 are padding.
  EXPECT_EQ(out[0][0][0][0].item<float>(), 0.0f);
  EXPECT_EQ(out[0][0][1][1].item<float>(), images[0][0][0][0].item<float>());
  // Sample 1 at offset (2, 1): out[r][c] = padded[r + 2][c + 1] = image[r + 1][c].
  EXPECT_EQ(out[1][0][0][0].item<float>(), images[1][0][1][0].item<float>());
  EXPECT_EQ(out[1][0][3][0].item<float>(), 0.0f);
  auto flips = torch::tensor({true, false});
  auto flipped = AugmentBatch(images, 0, torch::zeros({2, 2}, torch::kInt64), flips);
  EXPECT_TRUE(torch::equal(flipped[0], images[0].flip({2})));
  EXPECT_TRUE(torch::equal(flipped[1], images[1]));
}

TEST(LibTorchTrainer, SameSeedSameCurveOtherSeedOtherCurve) {
  TempDir dir;
  WriteCifarDir(dir.path(), 40, 50, /*learnable=*/true);
  DatasetCache cache({.data_root = "/", .allow_absolute_paths = true});
  auto trainer = MakeLibTorchTrainer(torch::kCPU, &cache);
  const RunConfig config = TinyCifarConfig(dir.path());
  RecordingContext a, b, c;
  auto ra = trainer->Train(config, 1, {}, &a);
  auto rb = trainer->Train(config, 1, {}, &b);
  auto rc = trainer->Train(config, 2, {}, &c);
  ASSERT_TRUE(ra.ok()) << ra.status().ToString();
  ASSERT_TRUE(rb.ok() && rc.ok());
  ASSERT_EQ(a.epochs.size(), 3u);
  EXPECT_GT(ra->param_count, 0);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(a.epochs[i].train_loss, b.epochs[i].train_loss)
        << "epoch " << i + 1;  // bit-identical
    EXPECT_EQ(a.epochs[i].test_error, b.epochs[i].test_error);
  }
  EXPECT_NE(a.epochs[0].train_loss, c.epochs[0].train_loss);
  EXPECT_NEAR(a.epochs[2].lr, 0.005, 1e-12);  // decayed at the epoch-2 milestone
  EXPECT_GE(a.epochs[2].test_error, 0.0);
}

TEST(LibTorchTrainer, StopsWhenAskedAndFailsOnBadData) {
  TempDir dir;
  WriteCifarDir(dir.path(), 40, 20, true);
  DatasetCache cache({.data_root = "/", .allow_absolute_paths = true});
  auto trainer = MakeLibTorchTrainer(torch::kCPU, &cache);
  RecordingContext stopper;
  stopper.stop_after = 1;
  auto stopped = trainer->Train(TinyCifarConfig(dir.path()), 1, {}, &stopper);
  EXPECT_EQ(stopped.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(stopper.epochs.size(), 1u);

  RecordingContext ctx;
  auto missing = trainer->Train(TinyCifarConfig(dir.File("absent")), 1, {}, &ctx);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("absent"), std::string::npos);
}

TEST(LibTorchTrainer, DivergenceFailsTheRunWithItsReason) {
  TempDir dir;
  WriteCifarDir(dir.path(), 40, 20, /*learnable=*/true);
  DatasetCache cache({.data_root = "/", .allow_absolute_paths = true});
  auto trainer = MakeLibTorchTrainer(torch::kCPU, &cache);
  // Legal in a sweep file (lr <= 10, weight decay < 1), and unstable: without momentum
  // each step multiplies every weight by 1 - lr * wd = -8, so the weights overflow
  // float32 within ~45 steps and the loss becomes inf/NaN.
  RunConfig config = TinyCifarConfig(dir.path());
  config.train.optimizer.lr = 10;
  config.train.optimizer.momentum = 0;
  config.train.optimizer.weight_decay = 0.9;
  config.train.schedule.milestones = {};
  config.train.batch_size = 4;
  config.train.epochs = 30;
  ASSERT_TRUE(ValidateRunConfig(config).ok()) << ValidateRunConfig(config).ToString();
  RecordingContext ctx;
  auto r = trainer->Train(config, 1, {}, &ctx);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("diverged"), std::string::npos) << r.status().ToString();
  // It stopped at the epoch that diverged and never reported a non-finite loss.
  EXPECT_LT(ctx.epochs.size(), 30u);
  for (const auto& e : ctx.epochs) EXPECT_TRUE(std::isfinite(e.train_loss)) << e.epoch;
}

TEST(LibTorchTrainer, ResumedRunContinuesExactlyAsTheUninterruptedOne) {
  TempDir dir;
  WriteCifarDir(dir.path(), 40, 50, /*learnable=*/true);
  DatasetCache cache({.data_root = "/", .allow_absolute_paths = true});
  auto trainer = MakeLibTorchTrainer(torch::kCPU, &cache);
  for (const char* optimizer : {"sgd", "adam"}) {
    RunConfig config = TinyCifarConfig(dir.path());
    config.train.epochs = 4;
    config.train.optimizer.name = optimizer;
    config.train.optimizer.nesterov = true;
    RecordingContext whole;
    ASSERT_TRUE(trainer->Train(config, 3, {}, &whole).ok());
    ASSERT_EQ(whole.epochs.size(), 4u);
    ASSERT_EQ(whole.checkpoints.size(), 3u);  // after epochs 1..3, not after the last
    RecordingContext resumed;
    auto r = trainer->Train(config, 3, {2, whole.checkpoints.at(2)}, &resumed);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(resumed.epochs.size(), 2u);
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(resumed.epochs[i].epoch, 3 + i);
      EXPECT_EQ(resumed.epochs[i].train_loss, whole.epochs[2 + i].train_loss) << optimizer;
      EXPECT_EQ(resumed.epochs[i].test_error, whole.epochs[2 + i].test_error) << optimizer;
      EXPECT_EQ(resumed.epochs[i].lr, whole.epochs[2 + i].lr);
    }
    // A checkpoint of another epoch, or garbage, is refused as data loss.
    RecordingContext bad;
    EXPECT_EQ(trainer->Train(config, 3, {1, whole.checkpoints.at(2)}, &bad).status().code(),
              StatusCode::kDataLoss);
    EXPECT_EQ(trainer->Train(config, 3, {2, "garbage"}, &bad).status().code(),
              StatusCode::kDataLoss);
  }
}

TEST(LibTorchTrainer, StoppedMidEpochForAShutdownResumesExactly) {
  TempDir dir;
  WriteCifarDir(dir.path(), 40, 50, /*learnable=*/true);
  DatasetCache cache({.data_root = "/", .allow_absolute_paths = true});
  auto trainer = MakeLibTorchTrainer(torch::kCPU, &cache);
  RunConfig config = TinyCifarConfig(dir.path());
  config.train.epochs = 4;
  config.train.checkpoint_every = 3;  // no epoch checkpoint before the stop
  RecordingContext whole;
  ASSERT_TRUE(trainer->Train(config, 5, {}, &whole).ok());
  ASSERT_EQ(whole.epochs.size(), 4u);
  // 200 images / batch 32 = 7 batches per epoch: poll 7*2 + 4 is batch 4 of epoch 3.
  RecordingContext stopped;
  stopped.stop_at_poll = 7 * 2 + 4;
  stopped.checkpoint_on_stop = true;
  auto r = trainer->Train(config, 5, {}, &stopped);
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
  ASSERT_EQ(stopped.epochs.size(), 2u);
  ASSERT_EQ(stopped.checkpoints.count(2), 1u) << "no checkpoint written when stopped";
  EXPECT_EQ(stopped.last_checkpoint, (std::pair<int, int64_t>{2, 7 * 2 + 3}));
  // Resumed from that mid-epoch position: epochs 3 and 4 exactly as uninterrupted.
  RecordingContext resumed;
  auto rr = trainer->Train(config, 5, {2, stopped.checkpoints.at(2)}, &resumed);
  ASSERT_TRUE(rr.ok()) << rr.status().ToString();
  ASSERT_EQ(resumed.epochs.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(resumed.epochs[i].epoch, 3 + i);
    EXPECT_EQ(resumed.epochs[i].train_loss, whole.epochs[2 + i].train_loss);
    EXPECT_EQ(resumed.epochs[i].train_error, whole.epochs[2 + i].train_error);
    EXPECT_EQ(resumed.epochs[i].test_error, whole.epochs[2 + i].test_error);
  }
  // Without CheckpointOnStop (a cancel, a lost lease) nothing is written.
  RecordingContext cancelled;
  cancelled.stop_at_poll = 7 * 2 + 4;
  EXPECT_EQ(trainer->Train(config, 5, {}, &cancelled).status().code(), StatusCode::kCancelled);
  EXPECT_TRUE(cancelled.checkpoints.empty());
}

TEST(SyntheticTrainer, DeterministicFromConfigAndSeed) {
  RunConfig c;
  c.train.epochs = 4;
  c.trainer.kind = "synthetic";
  c.trainer.epoch_seconds = 0;
  auto t = MakeSyntheticTrainer();
  RecordingContext a, b;
  ASSERT_TRUE(t->Train(c, 5, {}, &a).ok());
  ASSERT_TRUE(t->Train(c, 5, {}, &b).ok());
  ASSERT_EQ(a.epochs.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(a.epochs[i].test_error, b.epochs[i].test_error);
  EXPECT_NE(SyntheticEpoch(c, 5, 4).test_error, SyntheticEpoch(c, 6, 4).test_error);
  // Resumed after epoch 2, it reports epochs 3 and 4 only, identically.
  RecordingContext r;
  ASSERT_TRUE(t->Train(c, 5, {2, a.checkpoints.at(2)}, &r).ok());
  ASSERT_EQ(r.epochs.size(), 2u);
  EXPECT_EQ(r.epochs[0].epoch, 3);
  EXPECT_EQ(r.epochs[1].test_error, a.epochs[3].test_error);
  c.trainer.fail_probability = 1.0;
  RecordingContext f;
  auto failed = t->Train(c, 5, {}, &f);
  EXPECT_EQ(failed.status().code(), StatusCode::kInvalidArgument);  // a run fault
  EXPECT_EQ(f.epochs.size(), 2u);                                   // fails half-way
}

}  // namespace
}  // namespace resweep

namespace resweep {
namespace {

// Real data, real learning: a small ResNet on a Fashion-MNIST subset must reach an
// error that only learning reaches (chance: 90%).
TEST(RealData, FashionMnistSubsetLearns) {
  struct stat st;
  if (stat("/usr/share/datasets/fashion-mnist", &st) != 0) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  DatasetCache cache({.data_root = "/nonexistent"});
  auto trainer = MakeLibTorchTrainer(torch::kCPU, &cache);
  RunConfig c;
  c.dataset.kind = "fashion-mnist";
  c.dataset.train_limit = 8000;
  c.dataset.test_limit = 2000;
  c.dataset.augment_padding = 2;
  c.model.depth_n = 1;  // 8 layers, widths 16/32/64
  c.train.epochs = 4;
  c.train.batch_size = 64;
  c.train.schedule.milestones = {3};
  RecordingContext ctx;
  auto outcome = trainer->Train(c, 0, {}, &ctx);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  ASSERT_EQ(ctx.epochs.size(), 4u);
  const double final_error = ctx.epochs.back().test_error;
  std::printf("fashion-mnist 8-layer ResNet, 8000 train / 2000 test, 4 epochs: test error %.2f%%\n",
              final_error * 100);
  EXPECT_LT(final_error, REAL_DATA_ERROR_BAR);
  EXPECT_LT(ctx.epochs.back().train_loss, ctx.epochs.front().train_loss);
}

}  // namespace
}  // namespace resweep
