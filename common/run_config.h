// The fully resolved configuration of one training run.
//
// A sweep file's base config with one grid cell's values applied is parsed into a
// RunConfig (common/sweep_spec.h); the coordinator stores it as canonical JSON and
// leases that JSON to workers. Defaults here are the study's protocol
// (docs/protocol.md). Field names match the YAML keys exactly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace resweep {

struct DatasetConfig {
  std::string kind = "cifar10";  // cifar10 | fashion-mnist
  std::string path;              // folder with the data set's files; empty = the kind's default
  int64_t train_limit = 0;       // use only the first N training images (0 = all)
  int64_t test_limit = 0;        // use only the first N test images (0 = all)
  std::string preprocess = "per-channel";  // per-channel | per-pixel-mean | none
  int augment_padding = 4;                 // pad-and-random-crop padding in pixels (0 = no crop)
  bool augment_flip = true;                // random horizontal flip
};

struct ModelConfig {
  // reference | bn-after-add | no-relu | no-relu-bn-after-add | preact
  std::string block = "reference";
  int depth_n = 3;             // 6n+2 layers
  std::string shortcut = "A";  // A (zero-pad identity) | B (1x1 projection where shape changes)
  int base_width = 16;         // filters of the first stage (16 / 32 / 64 in the paper)
};

struct OptimizerConfig {
  std::string name = "sgd";  // sgd | rmsprop | adam | adamw
  double lr = 0.1;
  double momentum = 0.9;  // sgd, rmsprop
  bool nesterov = false;  // sgd
  double weight_decay = 1e-4;
  double beta1 = 0.9;    // adam, adamw
  double beta2 = 0.999;  // adam, adamw
  double eps = 1e-8;     // rmsprop, adam, adamw
  double alpha = 0.99;   // rmsprop smoothing
};

struct ScheduleConfig {
  std::string kind = "step";  // step | cosine | constant
  std::vector<int64_t> milestones = {80, 160};
  std::string milestone_unit = "epoch";  // epoch | iteration
  double gamma = 0.1;
  int64_t warmup_iterations = 0;         // 0 = no warm-up
  std::string warmup_kind = "constant";  // constant | linear
  double warmup_lr = 0.01;               // constant: this lr; linear: ramps from it to lr
  double min_lr = 0.0;                   // cosine floor
};

struct TrainConfig {
  int epochs = 200;
  int batch_size = 128;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  int eval_every = 1;  // evaluate on the test set every K epochs (and the last)
  double label_smoothing = 0.0;
  double grad_clip_norm = 0.0;  // 0 = off
  bool deterministic = false;   // CUDA: deterministic algorithms (slower); CPU is always so
  bool channels_last = false;
  std::string amp = "off";   // off | bf16 | fp16 (CUDA only)
  int checkpoint_every = 1;  // epochs between checkpoints (0 = never)
  // > 0: an attempt that has trained this long (wall time, on one worker) is given
  // back as a host fault. 0 = no limit.
  double max_run_seconds = 0;
};

// How a run is executed. "synthetic" does no tensor work: each epoch sleeps
// epoch_seconds and reports metrics derived deterministically from the seed, so
// orchestration can be exercised and benchmarked at scale.
struct TrainerConfig {
  std::string kind = "libtorch";  // libtorch | synthetic
  double epoch_seconds = 0.05;    // synthetic only
  double fail_probability = 0.0;  // synthetic only: chance a run fails (deterministic per seed)
  // Synthetic only, for tests of the progress deadline: > 0: an attempt that started
  // from scratch stops making progress in this epoch (a resumed one does not).
  int hang_at_epoch = 0;
  // With hang_at_epoch: the hung trainer ignores being stopped and never returns
  // (a wedged device call), instead of returning once stopped.
  bool hang_ignores_stop = false;
};

struct RunConfig {
  DatasetConfig dataset;
  ModelConfig model;
  TrainConfig train;
  TrainerConfig trainer;

  int layers() const { return 6 * model.depth_n + 2; }
};

// OK when the runs of one grid cell (this config, seeds differing) can be trained as
// one fused network, a gang (worker/fused_trainer.h); otherwise why not. The
// coordinator leases gangs only of such configs. Fusable: the libtorch trainer, SGD
// (the members' optimiser state is split and joined by parameter), no fp16 loss
// scaling and no gradient clipping (both would couple the members through one scale
// or one norm).
Status SeedFusable(const RunConfig& config);

}  // namespace resweep
