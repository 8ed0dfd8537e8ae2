// Trainer throughput: images/s of a training step (forward + backward + SGD step)
// and of evaluation for the CIFAR ResNets at batch 128, plus the share of a real
// training epoch spent outside forward/backward/step (data pipeline, bookkeeping).
//
//   trainer_bench [--device cpu|cuda:N] [--threads T] [--iters N] [--depths 3,9,18]
//                 [--channels-last] [--amp off|bf16|fp16]
//
// Prints a table and one "RESULT" line per network for scripts/compare tools.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "worker/libtorch_trainer.h"
#include "worker/resnet.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace F = torch::nn::functional;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

struct Options {
  std::string device = "cpu";
  int threads = 0;
  int iters = 5;
  std::vector<int> depths = {3, 9, 18};
  bool channels_last = false;
  std::string amp = "off";
  int batch = 128;
};

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--device")
      o.device = next();
    else if (a == "--threads")
      o.threads = std::stoi(next());
    else if (a == "--iters")
      o.iters = std::stoi(next());
    else if (a == "--batch")
      o.batch = std::stoi(next());
    else if (a == "--channels-last")
      o.channels_last = true;
    else if (a == "--amp")
      o.amp = next();
    else if (a == "--depths") {
      o.depths.clear();
      std::stringstream ss(next());
      for (std::string d; std::getline(ss, d, ',');) o.depths.push_back(std::stoi(d));
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      std::exit(2);
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  if (o.threads > 0) torch::set_num_threads(o.threads);
  const torch::Device device(o.device);
  const bool amp = device.is_cuda() && o.amp != "off";
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  const auto format =
      o.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  std::printf(
      "trainer_bench: LibTorch %s, device %s, %d intra-op threads, batch %d, %d timed "
      "iterations, channels_last %s, amp %s\n",
      TORCH_VERSION, device.str().c_str(), torch::get_num_threads(), o.batch, o.iters,
      o.channels_last ? "on" : "off", amp ? o.amp.c_str() : "off");
  std::printf("%-8s %10s %14s %14s %12s\n", "network", "params", "train img/s", "eval img/s",
              "step ms");
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  double first_step_ms = 0;
  for (int n : o.depths) {
    resweep::ResNetOptions mo;
    mo.depth_n = n;
    resweep::ResNet model(mo);
    model->Initialize(gen);
    model->to(device);
    if (o.channels_last) {
      for (auto& p : model->parameters()) {
        if (p.dim() == 4) p.set_data(p.data().contiguous(format));
      }
    }
    torch::optim::SGD sgd(model->parameters(),
                          torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(1e-4));
    auto x = torch::randn({o.batch, 3, 32, 32}, gen).to(device).contiguous(format);
    auto y = torch::randint(0, 10, {o.batch}, gen, torch::kInt64).to(device);
    auto step = [&] {
      sgd.zero_grad();
      torch::Tensor loss;
      {
        if (amp) {
          at::autocast::set_autocast_gpu_dtype(o.amp == "bf16" ? at::kBFloat16 : at::kHalf);
          at::autocast::set_enabled(true);
        }
        loss = F::cross_entropy(model->forward(x).to(torch::kFloat32), y);
        if (amp) {
          at::autocast::set_enabled(false);
          at::autocast::clear_cache();
        }
      }
      loss.backward();
      sgd.step();
    };
    model->train();
    for (int i = 0; i < 2; ++i) step();  // warm-up: allocator, oneDNN/cuDNN kernel choice
    Sync(device);
    auto start = Clock::now();
    for (int i = 0; i < o.iters; ++i) step();
    Sync(device);
    const double train_s = Seconds(start);

    model->eval();
    double eval_s;
    {
      torch::NoGradGuard no_grad;
      if (amp) {
        at::autocast::set_autocast_gpu_dtype(o.amp == "bf16" ? at::kBFloat16 : at::kHalf);
        at::autocast::set_enabled(true);
      }
      for (int i = 0; i < 2; ++i) model->forward(x);
      Sync(device);
      start = Clock::now();
      for (int i = 0; i < o.iters; ++i) model->forward(x);
      Sync(device);
      eval_s = Seconds(start);
      if (amp) at::autocast::set_enabled(false);
    }
    const double train_ips = o.iters * o.batch / train_s;
    const double eval_ips = o.iters * o.batch / eval_s;
    std::printf("%-8s %10lld %14.1f %14.1f %12.1f\n",
                ("resnet" + std::to_string(6 * n + 2)).c_str(),
                static_cast<long long>(model->ParameterCount()), train_ips, eval_ips,
                1000 * train_s / o.iters);
    std::printf("RESULT impl=cpp layers=%d train_img_s=%.2f eval_img_s=%.2f\n", 6 * n + 2,
                train_ips, eval_ips);
    std::fflush(stdout);
    if (first_step_ms == 0) first_step_ms = 1000 * train_s / o.iters;
  }

  // The data pipeline the trainer runs per batch: gather uint8 images, normalise,
  // pad-and-crop and flip (batched tensor ops), on the same device.
  const int batches = std::max(4, o.iters * 2);
  const int64_t n = static_cast<int64_t>(batches) * o.batch;
  auto images = torch::randint(0, 256, {n, 3, 32, 32}, gen, torch::kUInt8).to(device);
  auto mean = torch::full({1, 3, 1, 1}, 0.47f).to(device);
  auto stdev = torch::full({1, 3, 1, 1}, 0.25f).to(device);
  auto perm = torch::randperm(n, gen, torch::kInt64).to(device);
  auto offsets = torch::randint(0, 9, {n, 2}, gen, torch::kInt64).to(device);
  auto flips = (torch::rand({n}, gen) < 0.5).to(device);
  auto start = Clock::now();
  for (int b = 0; b < batches; ++b) {
    auto idx = perm.narrow(0, static_cast<int64_t>(b) * o.batch, o.batch);
    auto x = images.index_select(0, idx).to(torch::kFloat32).div_(255.0).sub_(mean).div_(stdev);
    x = resweep::AugmentBatch(x, 4, offsets.index_select(0, idx), flips.index_select(0, idx));
  }
  Sync(device);
  const double prep_ms = 1000 * Seconds(start) / batches;
  std::printf("data pipeline: %.2f ms per batch of %d = %.1f%% of a resnet%d training step\n",
              prep_ms, o.batch, 100 * prep_ms / (prep_ms + first_step_ms), 6 * o.depths[0] + 2);
  std::printf("RESULT impl=cpp pipeline_ms_per_batch=%.3f\n", prep_ms);
  return 0;
}
