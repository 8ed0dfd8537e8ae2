#include "worker/libtorch_trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <sstream>

#include "worker/autocast.h"
#include "worker/cuda_support.h"
#include "worker/fault.h"
#include "worker/lr_schedule.h"
#include "worker/resnet.h"
#include "worker/trainer_internal.h"
#include "worker/trainer_log.h"

namespace resweep {

namespace F = torch::nn::functional;
using torch::indexing::Slice;

torch::Tensor AugmentBatch(const torch::Tensor& images, int64_t padding,
                           const torch::Tensor& offsets, const torch::Tensor& flips) {
  torch::Tensor out = images;
  const int64_t b = images.size(0), h = images.size(2), w = images.size(3);
  if (padding > 0) {
    auto padded = F::pad(images, F::PadFuncOptions({padding, padding, padding, padding}));
    auto opts = torch::TensorOptions().dtype(torch::kInt64).device(images.device());
    auto rows = offsets.select(1, 0).view({b, 1}) + torch::arange(h, opts).view({1, h});
    auto cols = offsets.select(1, 1).view({b, 1}) + torch::arange(w, opts).view({1, w});
    auto batch = torch::arange(b, opts).view({b, 1, 1});
    // Advanced indices around a slice: the result is [B, H, W, C].
    out = padded.index({batch, Slice(), rows.view({b, h, 1}), cols.view({b, 1, w})})
              .permute({0, 3, 1, 2});
  }
  if (flips.defined()) out = torch::where(flips.view({b, 1, 1, 1}), out.flip({3}), out);
  return out.contiguous();
}

namespace {

// Dynamic loss scaling for fp16: gradients are computed on loss * scale, unscaled
// before the step; a step with non-finite gradients is skipped and halves the scale,
// 2000 good steps double it (the policy of PyTorch's GradScaler).
class LossScaler {
 public:
  explicit LossScaler(bool enabled) : enabled_(enabled) {}
  torch::Tensor Scale(const torch::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }
  // Unscales the gradients; false when the step must be skipped.
  bool Unscale(const std::vector<torch::Tensor>& params) {
    if (!enabled_) return true;
    std::vector<torch::Tensor> finite;
    for (const auto& p : params) {
      if (!p.grad().defined()) continue;
      p.grad().div_(scale_);
      finite.push_back(torch::isfinite(p.grad()).all());
    }
    const bool ok = finite.empty() || torch::stack(finite).all().item<bool>();  // one sync
    if (!ok) {
      scale_ = std::max(1.0, scale_ / 2);
      good_steps_ = 0;
    } else if (++good_steps_ >= 2000) {
      scale_ *= 2;
      good_steps_ = 0;
    }
    return ok;
  }

 private:
  bool enabled_;
  double scale_ = 65536.0;
  int good_steps_ = 0;
};

}  // namespace

namespace trainer_internal {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

Status LibTorchError(const c10::Error& e) {
  const std::string what = e.what_without_backtrace();
  if (what.find("out of memory") != std::string::npos) {
    return ResourceExhaustedError("LibTorch: " + what);
  }
  return InternalError("LibTorch: " + what);
}

StatusOr<RunData> PrepareRun(const RunConfig& config, DatasetCache* cache,
                             const torch::Device& device) {
  auto block = ParseBlockKind(config.model.block);
  if (!block.ok()) return block.status();
  auto data = cache->Get(config.dataset);
  if (!data.ok()) return data.status();
  const Dataset& d = **data;
  auto limit = [](const torch::Tensor& t, int64_t n) {
    return n > 0 && n < t.size(0) ? t.narrow(0, 0, n) : t;
  };
  const auto& dc = config.dataset;
  RunData run;
  run.train_x = limit(d.train_images, dc.train_limit);
  const Normalizer norm_cpu = MakeNormalizer(dc.preprocess, run.train_x);
  run.norm = {norm_cpu.mean.defined() ? norm_cpu.mean.to(device) : torch::Tensor(),
              norm_cpu.std.defined() ? norm_cpu.std.to(device) : torch::Tensor()};
  // The data set lives on the device in uint8 (150 MB for CIFAR-10).
  run.train_x = run.train_x.to(device);
  run.train_y = limit(d.train_labels, dc.train_limit).to(device);
  run.test_x = limit(d.test_images, dc.test_limit).to(device);
  run.test_y = limit(d.test_labels, dc.test_limit).to(device);
  run.model.block = *block;
  run.model.depth_n = config.model.depth_n;
  run.model.projection_shortcut = config.model.shortcut == "B";
  run.model.in_channels = d.channels();
  run.model.classes = d.classes;
  run.model.base_width = config.model.base_width;
  if (device.is_cuda()) {
    // Process-wide switches: every slot of a worker should run the same setting.
    at::globalContext().setBenchmarkCuDNN(!config.train.deterministic);
    at::globalContext().setDeterministicCuDNN(config.train.deterministic);
    at::globalContext().setDeterministicAlgorithms(config.train.deterministic,
                                                   /*warn_only=*/true);
  }
  return run;
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const OptimizerConfig& o,
                                                       std::vector<torch::Tensor> params) {
  if (o.name == "sgd") {
    return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(o.lr)
                                                           .momentum(o.momentum)
                                                           .nesterov(o.nesterov)
                                                           .weight_decay(o.weight_decay));
  }
  if (o.name == "rmsprop") {
    return std::make_unique<torch::optim::RMSprop>(params, torch::optim::RMSpropOptions(o.lr)
                                                               .alpha(o.alpha)
                                                               .eps(o.eps)
                                                               .momentum(o.momentum)
                                                               .weight_decay(o.weight_decay));
  }
  if (o.name == "adam") {
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(o.lr)
                                                            .betas({o.beta1, o.beta2})
                                                            .eps(o.eps)
                                                            .weight_decay(o.weight_decay));
  }
  return std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(o.lr)
                                                           .betas({o.beta1, o.beta2})
                                                           .eps(o.eps)
                                                           .weight_decay(o.weight_decay));
}

void SetLearningRate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

Normalizer MakeNormalizer(const std::string& mode, const torch::Tensor& train_images) {
  Normalizer n;
  if (mode == "none") return n;
  const int64_t count = train_images.size(0);
  const int64_t chunk = 8192;
  // Sums in float64, in chunks: a float copy of all of CIFAR-10 would be 600 MB.
  auto sum = torch::zeros(train_images.sizes().slice(1), torch::kFloat64);
  auto sum_sq = torch::zeros_like(sum);
  for (int64_t start = 0; start < count; start += chunk) {
    auto x = train_images.narrow(0, start, std::min(chunk, count - start))
                 .to(torch::kCPU)
                 .to(torch::kFloat64)
                 .div_(255.0);
    sum += x.sum(0);
    sum_sq += (x * x).sum(0);
  }
  if (mode == "per-pixel-mean") {
    n.mean = (sum / count).to(torch::kFloat32).unsqueeze(0);
    return n;
  }
  // per-channel
  const double per_channel = static_cast<double>(count) * sum.size(1) * sum.size(2);
  auto mean = sum.sum({1, 2}) / per_channel;
  auto var = sum_sq.sum({1, 2}) / per_channel - mean * mean;
  n.mean = mean.to(torch::kFloat32).view({1, -1, 1, 1});
  n.std = var.clamp_min(1e-12).sqrt().to(torch::kFloat32).view({1, -1, 1, 1});
  return n;
}

// Everything a resumed run needs to continue exactly: weights and BN statistics,
// optimiser state (momentum buffers), the generator as it was at the start of the
// epoch in progress (so its permutation and augmentation are drawn again, the
// same), and the position: `epoch` epochs done, `iteration` steps in all, and how
// far into the next epoch.
std::string SaveTrainingState(ResNet& model, torch::optim::Optimizer& optimizer,
                              const torch::Tensor& epoch_generator_state, int epoch,
                              int64_t iteration, const EpochPosition& position) {
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  model->save(model_archive);
  optimizer.save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("generator", epoch_generator_state);
  archive.write("epoch", torch::tensor(static_cast<int64_t>(epoch)));
  archive.write("iteration", torch::tensor(iteration));
  archive.write("batch_start", torch::tensor(position.batch_start));
  if (position.batch_start > 0) {
    archive.write("loss_sum", position.loss_sum.to(torch::kCPU));
    archive.write("wrong", position.wrong.to(torch::kCPU));
  }
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

Status LoadTrainingState(const std::string& payload, int epoch, torch::Device device, ResNet& model,
                         torch::optim::Optimizer& optimizer, at::Generator& generator,
                         int64_t* iteration, EpochPosition* position) {
  try {
    std::istringstream in(payload);
    torch::serialize::InputArchive archive, model_archive, optimizer_archive;
    archive.load_from(in, device);
    torch::Tensor saved_epoch, saved_iteration, generator_state;
    archive.read("epoch", saved_epoch);
    if (saved_epoch.item<int64_t>() != epoch) {
      return DataLossError("checkpoint is of epoch " + std::to_string(saved_epoch.item<int64_t>()) +
                           ", expected " + std::to_string(epoch));
    }
    archive.read("iteration", saved_iteration);
    archive.read("model", model_archive);
    archive.read("optimizer", optimizer_archive);
    archive.read("generator", generator_state);
    model->load(model_archive);
    optimizer.load(optimizer_archive);
    generator.set_state(generator_state.to(torch::kCPU));
    *iteration = saved_iteration.item<int64_t>();
    torch::Tensor batch_start;
    if (archive.try_read("batch_start", batch_start) && batch_start.item<int64_t>() > 0) {
      position->batch_start = batch_start.item<int64_t>();
      archive.read("loss_sum", position->loss_sum);
      archive.read("wrong", position->wrong);
      position->loss_sum = position->loss_sum.to(device);
      position->wrong = position->wrong.to(device);
    }
  } catch (const c10::Error& e) {
    return CheckpointLoadError(e.what_without_backtrace());
  }
  return Status::Ok();
}

}  // namespace trainer_internal

namespace {

using namespace trainer_internal;  // NOLINT: this file defines them

class LibTorchTrainer : public Trainer {
 public:
  LibTorchTrainer(torch::Device device, DatasetCache* cache) : device_(device), cache_(cache) {}

  StatusOr<TrainOutcome> Train(const RunConfig& config, int64_t seed, const ResumePoint& resume,
                               RunContext* context) override {
    try {
      return TrainOrThrow(config, seed, resume, context);
    } catch (const c10::Error& e) {
      return LibTorchError(e);
    } catch (const std::exception& e) {
      return InternalError(std::string("trainer: ") + e.what());
    }
  }

 private:
  StatusOr<TrainOutcome> TrainOrThrow(const RunConfig& config, int64_t seed,
                                      const ResumePoint& resume, RunContext* context) {
    // All of the run's device work on a stream of its own (from the first copy on), so
    // runs sharing a GPU (--runs-per-gpu) overlap; a no-op on the CPU.
    SlotStream stream(device_);
    RESWEEP_ASSIGN_OR_RETURN(RunData run, PrepareRun(config, cache_, device_));
    const torch::Tensor &train_x = run.train_x, &train_y = run.train_y;
    const torch::Tensor &test_x = run.test_x, &test_y = run.test_y;
    const Normalizer& norm = run.norm;
    const auto& dc = config.dataset;

    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
    ResNet model(run.model);
    model->Initialize(generator);
    model->to(device_);
    const bool cuda = device_.is_cuda();
    const bool amp = cuda && config.train.amp != "off";
    if (config.train.amp != "off" && !cuda) {
      TrainerLog(TrainerLogLevel::kWarn, "train.amp is CUDA only: training in fp32");
    }
    const at::ScalarType amp_dtype = config.train.amp == "bf16" ? at::kBFloat16 : at::kHalf;
    LossScaler scaler(amp && config.train.amp == "fp16");
    const auto memory_format =
        config.train.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    if (config.train.channels_last) {
      for (auto& p : model->parameters()) {
        if (p.dim() == 4) p.set_data(p.data().contiguous(memory_format));
      }
    }
    auto optimizer = MakeOptimizer(config.train.optimizer, model->parameters());

    const auto& tc = config.train;
    const int64_t n = train_x.size(0);
    const int64_t batch = tc.batch_size;
    const int64_t iterations_per_epoch = (n + batch - 1) / batch;
    const int64_t padding = dc.augment_padding;
    TrainOutcome outcome;
    outcome.param_count = model->ParameterCount();
    int64_t iteration = 0;
    EpochPosition resume_position;
    if (resume.epoch > 0) {
      if (Status loaded = LoadTrainingState(resume.payload, resume.epoch, device_, model,
                                            *optimizer, generator, &iteration, &resume_position);
          !loaded.ok()) {
        // Only the checkpoint's own fault forgets it; a device error is the host's.
        if (loaded.code() == StatusCode::kDataLoss) context->ResumeUnusable();
        return loaded;
      }
      outcome.epochs_done = resume.epoch;
      TrainerLogf(TrainerLogLevel::kInfo, "resuming from the checkpoint of epoch ", resume.epoch,
                  " (iteration ", iteration, ", image ", resume_position.batch_start,
                  " of the next epoch)");
    }
    TrainerLogf(TrainerLogLevel::kDebug, "training ", config.layers(), " layers (",
                outcome.param_count, " parameters) on ", n, " images, ", iterations_per_epoch,
                " iterations/epoch, ", device_.str());

    for (int epoch = resume.epoch + 1; epoch <= tc.epochs; ++epoch) {
      const auto epoch_start = std::chrono::steady_clock::now();
      model->train();
      const torch::Tensor epoch_generator_state = generator.get_state();
      // Everything random about this epoch, drawn up front from the run's generator.
      auto perm = torch::randperm(n, generator, torch::kInt64);
      auto offsets = torch::randint(0, 2 * padding + 1, {n, 2}, generator, torch::kInt64);
      auto flips = dc.augment_flip ? torch::rand({n}, generator) < 0.5 : torch::Tensor();
      if (cuda) {  // pinned, asynchronous copies: no host sync
        perm = perm.pin_memory().to(device_, /*non_blocking=*/true);
        offsets = offsets.pin_memory().to(device_, /*non_blocking=*/true);
        if (flips.defined()) flips = flips.pin_memory().to(device_, /*non_blocking=*/true);
      }

      auto loss_sum =
          torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
      auto wrong = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(device_));
      int64_t first = 0;
      if (resume_position.batch_start > 0) {  // resumed part-way into this epoch
        first = resume_position.batch_start;
        loss_sum = resume_position.loss_sum;
        wrong = resume_position.wrong;
        resume_position = EpochPosition();
      }
      double lr = 0;
      for (int64_t start = first; start < n; start += batch) {
        if (context->ShouldStop()) {
          // (Not during epoch 1: a resume point of epoch 0 means "start afresh".)
          if (context->CheckpointOnStop() && tc.checkpoint_every > 0 && epoch > 1) {
            // Moving elsewhere: save the exact position so no step is lost or repeated.
            RESWEEP_RETURN_IF_ERROR(context->OnCheckpoint(
                epoch - 1, iteration,
                SaveTrainingState(model, *optimizer, epoch_generator_state, epoch - 1, iteration,
                                  {start, loss_sum, wrong})));
          }
          return CancelledError("stopped");
        }
        const int64_t size = std::min(batch, n - start);
        auto idx = perm.narrow(0, start, size);
        auto x = norm.Apply(train_x.index_select(0, idx));
        x = AugmentBatch(x, padding, offsets.index_select(0, idx),
                         flips.defined() ? flips.index_select(0, idx) : torch::Tensor());
        if (config.train.channels_last) x = x.contiguous(memory_format);
        auto y = train_y.index_select(0, idx);

        lr = LearningRateAt(tc.optimizer, tc.schedule, iteration, iterations_per_epoch, tc.epochs);
        SetLearningRate(*optimizer, lr);
        optimizer->zero_grad();
        torch::Tensor logits, loss;
        {
          AutocastScope autocast(amp, amp_dtype);
          logits = model->forward(x);
          loss = F::cross_entropy(logits.to(torch::kFloat32), y,
                                  F::CrossEntropyFuncOptions().label_smoothing(tc.label_smoothing));
        }
        scaler.Scale(loss).backward();
        if (scaler.Unscale(model->parameters())) {
          if (tc.grad_clip_norm > 0) {
            torch::nn::utils::clip_grad_norm_(model->parameters(), tc.grad_clip_norm);
          }
          optimizer->step();
        }
        ++iteration;
        context->OnBatch();
        torch::NoGradGuard no_grad;
        loss_sum += loss.detach().to(torch::kFloat64) * size;
        wrong += (logits.argmax(1) != y).sum();
      }
      EpochReport report;
      report.epoch = epoch;
      report.lr = lr;
      report.train_loss = loss_sum.item<double>() / n;  // the epoch's one host sync
      report.train_error = static_cast<double>(wrong.item<int64_t>()) / n;
      const double train_seconds = Seconds(epoch_start);
      report.images_per_sec = n / std::max(train_seconds, 1e-9);
      if (!std::isfinite(report.train_loss)) {
        return InvalidArgumentError("diverged: training loss is " +
                                    std::to_string(report.train_loss) + " in epoch " +
                                    std::to_string(epoch) + " (lr " + std::to_string(lr) + ")");
      }
      if (epoch % tc.eval_every == 0 || epoch == tc.epochs) {
        amp_ = amp;
        amp_dtype_ = amp_dtype;
        Evaluate(model, norm, test_x, test_y, memory_format, &report);
      }
      report.seconds = Seconds(epoch_start);
      RESWEEP_RETURN_IF_ERROR(context->OnEpoch(report));
      outcome.epochs_done = epoch;
      if (tc.checkpoint_every > 0 && epoch % tc.checkpoint_every == 0 && epoch < tc.epochs) {
        RESWEEP_RETURN_IF_ERROR(context->OnCheckpoint(
            epoch, iteration,
            SaveTrainingState(model, *optimizer, generator.get_state(), epoch, iteration, {})));
      }
    }
    return outcome;
  }

  void Evaluate(ResNet& model, const Normalizer& norm, const torch::Tensor& test_x,
                const torch::Tensor& test_y, at::MemoryFormat memory_format, EpochReport* report) {
    torch::NoGradGuard no_grad;
    model->eval();
    const int64_t m = test_x.size(0);
    const int64_t batch = 500;
    auto wrong = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(device_));
    auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
    for (int64_t start = 0; start < m; start += batch) {
      const int64_t size = std::min(batch, m - start);
      auto x = norm.Apply(test_x.narrow(0, start, size)).contiguous(memory_format);
      auto y = test_y.narrow(0, start, size);
      torch::Tensor logits;
      {
        AutocastScope autocast(amp_, amp_dtype_);
        logits = model->forward(x).to(torch::kFloat32);
      }
      loss_sum += F::cross_entropy(logits, y, F::CrossEntropyFuncOptions().reduction(torch::kSum))
                      .to(torch::kFloat64);
      wrong += (logits.argmax(1) != y).sum();
    }
    report->test_error = m ? static_cast<double>(wrong.item<int64_t>()) / m : -1;
    report->test_loss = m ? loss_sum.item<double>() / m : -1;
  }

  torch::Device device_;
  DatasetCache* cache_;
  bool amp_ = false;  // of the run in progress, for Evaluate
  at::ScalarType amp_dtype_ = at::kHalf;
};

}  // namespace

std::unique_ptr<Trainer> MakeLibTorchTrainer(torch::Device device, DatasetCache* cache) {
  return std::make_unique<LibTorchTrainer>(device, cache);
}

}  // namespace resweep
