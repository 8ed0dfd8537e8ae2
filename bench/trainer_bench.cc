// Trainer throughput: images/s of a training step (forward + backward + SGD step)
// and of evaluation for the CIFAR ResNets, plus the data pipeline's share of a step.
// On a GPU it also measures the ways to fill it (issue 13):
//   --runs K       K runs at once, each its own network, optimiser and CUDA stream
//                  (a thread each, as the worker's K slots per GPU): aggregate images/s
//   --fuse F       F seeds fused into one network (worker/fused_resnet.h): F batches a step
//   --cuda-graphs  the step captured once as a CUDA graph and replayed
//   --amp bf16|fp16, --channels-last
//   --pipeline     each step also gathers, normalises and augments its batch from a
//                  50,000-image uint8 set on the device, as the trainer does
// Each configuration is timed in --rounds rounds of --iters steps; the table shows
// the median round and the spread (lowest and highest round), never the best alone.
//
//   trainer_bench [--device cpu|cuda:N] [--threads T] [--iters N] [--rounds R]
//                 [--depths 3,9,18] [--batch 128] [--runs K] [--fuse F] [--cuda-graphs]
//                 [--channels-last] [--amp off|bf16|fp16] [--pipeline] [--label NAME]
//
// Prints a table and one "RESULT" line per network for scripts (gpu-check.sh).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "worker/autocast.h"
#include "worker/cuda_support.h"
#include "worker/fused_resnet.h"
#include "worker/libtorch_trainer.h"
#include "worker/resnet.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace F = torch::nn::functional;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

struct Options {
  std::string device = "cpu";
  int threads = 0;
  int iters = 5;
  int rounds = 3;
  std::vector<int> depths = {3, 9, 18};
  bool channels_last = false;
  std::string amp = "off";
  int batch = 128;
  int runs = 1;
  int fuse = 1;
  bool cuda_graphs = false;
  bool pipeline = false;
  std::string label;
};

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (a == "--device")
      o.device = next();
    else if (a == "--threads")
      o.threads = std::stoi(next());
    else if (a == "--iters")
      o.iters = std::stoi(next());
    else if (a == "--rounds")
      o.rounds = std::stoi(next());
    else if (a == "--batch")
      o.batch = std::stoi(next());
    else if (a == "--runs")
      o.runs = std::stoi(next());
    else if (a == "--fuse")
      o.fuse = std::stoi(next());
    else if (a == "--cuda-graphs")
      o.cuda_graphs = true;
    else if (a == "--pipeline")
      o.pipeline = true;
    else if (a == "--channels-last")
      o.channels_last = true;
    else if (a == "--amp")
      o.amp = next();
    else if (a == "--label")
      o.label = next();
    else if (a == "--depths") {
      o.depths.clear();
      std::stringstream ss(next());
      for (std::string d; std::getline(ss, d, ',');) o.depths.push_back(std::stoi(d));
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      std::exit(2);
    }
  }
  if (o.iters < 1 || o.rounds < 1 || o.runs < 1 || o.fuse < 1 || o.batch < 1 ||
      (o.amp != "off" && o.amp != "bf16" && o.amp != "fp16")) {
    std::fprintf(stderr,
                 "bad option value (iters, rounds, runs, fuse, batch >= 1; amp off|bf16|fp16)\n");
    std::exit(2);
  }
  return o;
}

// Every thread waits until all have arrived; reusable round after round.
class Barrier {
 public:
  explicit Barrier(int parties) : parties_(parties) {}
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t generation = generation_;
    if (++arrived_ == parties_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != generation; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  const int parties_;
  int arrived_ = 0;
  int64_t generation_ = 0;
};

struct Spread {
  double median = 0, low = 0, high = 0;
};
Spread SpreadOf(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {median, v.front(), v.back()};
}

// One run of the benchmark: a network (fused or not), its optimiser and its input,
// on this thread's own stream.
class BenchRun {
 public:
  BenchRun(const Options& o, int depth_n, uint64_t seed, const torch::Device& device)
      : o_(o), device_(device), stream_(device) {
    const auto format =
        o.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    resweep::ResNetOptions mo;
    mo.depth_n = depth_n;
    if (o.fuse > 1) {
      fused_ = resweep::FusedResNet(mo, o.fuse);
      for (int f = 0; f < o.fuse; ++f) {
        resweep::ResNet member(mo);
        member->Initialize(at::make_generator<at::CPUGeneratorImpl>(seed * 1000 + f));
        fused_->LoadMember(f, member);
      }
      fused_->to(device);
      module_ = fused_.ptr().get();
    } else {
      single_ = resweep::ResNet(mo);
      single_->Initialize(gen);
      single_->to(device);
      module_ = single_.ptr().get();
    }
    params_ = module_->parameters();
    param_count_ = 0;
    for (const auto& p : params_) param_count_ += p.numel();
    if (o.channels_last) {
      for (auto& p : params_)
        if (p.dim() == 4) p.set_data(p.data().contiguous(format));
    }
    sgd_ = std::make_unique<torch::optim::SGD>(
        params_, torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(1e-4));
    const int64_t channels = 3 * o.fuse;
    x_ = torch::randn({o.batch, channels, 32, 32}, gen).to(device).contiguous(format);
    y_ = torch::randint(0, 10, {o.batch, o.fuse}, gen, torch::kInt64).to(device);
    if (o.pipeline) {
      const int64_t n = 50000;
      images_ = torch::randint(0, 256, {n, 3, 32, 32}, gen, torch::kUInt8).to(device);
      labels_ = torch::randint(0, 10, {n}, gen, torch::kInt64).to(device);
      perm_ = torch::randperm(n, gen, torch::kInt64).to(device);
      offsets_ = torch::randint(0, 9, {n, 2}, gen, torch::kInt64).to(device);
      flips_ = (torch::rand({n}, gen) < 0.5).to(device);
      mean_ = torch::full({1, 3, 1, 1}, 0.47f).to(device);
      std_ = torch::full({1, 3, 1, 1}, 0.25f).to(device);
    }
  }

  int64_t param_count() const { return param_count_; }
  int64_t images_per_step() const { return static_cast<int64_t>(o_.batch) * o_.fuse; }

  // Warm-up (allocator, cuDNN plans, optimiser state), then the graph capture if asked.
  resweep::Status Prepare() {
    module_->train();
    for (int i = 0; i < 3; ++i) Step();
    if (o_.cuda_graphs) {
      // Gradients are released so that the captured backward allocates them from the
      // graph's own pool and each replay overwrites them.
      for (auto& p : params_) p.mutable_grad() = torch::Tensor();
      RESWEEP_RETURN_IF_ERROR(graph_.Capture(device_, [&] { Compute(/*zero_grad=*/false); }));
    }
    stream_.Synchronize();
    return resweep::Status::Ok();
  }

  void Step() {
    if (o_.pipeline) LoadBatch();
    if (o_.cuda_graphs && graphed_) {
      graph_.Replay();
      return;
    }
    Compute(/*zero_grad=*/true);
  }
  void MarkGraphed() { graphed_ = o_.cuda_graphs; }
  void Synchronize() { stream_.Synchronize(); }

  void Evaluate() {
    torch::NoGradGuard no_grad;
    module_->eval();
    resweep::AutocastScope autocast(amp(), amp_dtype());
    Forward(x_);
    module_->train();
  }

 private:
  bool amp() const { return device_.is_cuda() && o_.amp != "off"; }
  at::ScalarType amp_dtype() const { return o_.amp == "bf16" ? at::kBFloat16 : at::kHalf; }

  torch::Tensor Forward(const torch::Tensor& x) {
    return fused_ ? fused_->forward(x) : single_->forward(x).unsqueeze(1);  // [B, F, K]
  }

  void Compute(bool zero_grad) {
    if (zero_grad) sgd_->zero_grad();
    torch::Tensor loss;
    {
      resweep::AutocastScope autocast(amp(), amp_dtype(), /*cache_casts=*/!o_.cuda_graphs);
      auto logits = Forward(x_).to(torch::kFloat32);
      // The sum of the members' mean losses: each member's gradient is its own.
      loss = F::cross_entropy(logits.reshape({-1, logits.size(2)}), y_.reshape({-1}),
                              F::CrossEntropyFuncOptions().reduction(torch::kSum)) /
             o_.batch;
    }
    loss.backward();
    sgd_->step();
  }

  // The trainer's per-batch data work, its result copied into the step's input.
  void LoadBatch() {
    const int64_t n = images_.size(0);
    const int64_t start = (cursor_ * o_.batch) % (n - o_.batch);
    ++cursor_;
    std::vector<torch::Tensor> xs;
    for (int f = 0; f < o_.fuse; ++f) {
      auto idx = perm_.narrow(0, (start + 97 * f) % (n - o_.batch), o_.batch);
      auto x = images_.index_select(0, idx).to(torch::kFloat32).div_(255.0).sub_(mean_).div_(std_);
      xs.push_back(
          resweep::AugmentBatch(x, 4, offsets_.index_select(0, idx), flips_.index_select(0, idx)));
      y_.select(1, f).copy_(labels_.index_select(0, idx));
    }
    torch::NoGradGuard no_grad;
    x_.copy_(o_.fuse > 1 ? resweep::StackMemberInputs(xs) : xs[0]);
  }

  const Options& o_;
  torch::Device device_;
  resweep::SlotStream stream_;
  resweep::ResNet single_{nullptr};
  resweep::FusedResNet fused_{nullptr};
  torch::nn::Module* module_ = nullptr;
  std::vector<torch::Tensor> params_;
  int64_t param_count_ = 0;
  std::unique_ptr<torch::optim::SGD> sgd_;
  torch::Tensor x_, y_;
  torch::Tensor images_, labels_, perm_, offsets_, flips_, mean_, std_;
  int64_t cursor_ = 0;
  resweep::CapturedStep graph_;
  bool graphed_ = false;
};

struct Measured {
  Spread train, eval;
  int64_t params = 0;
  std::string error;
};

// K threads, each one BenchRun; rounds start together and a round's time is the
// wall time until the slowest thread has drained its stream.
Measured MeasureDepth(const Options& o, int depth_n, const torch::Device& device) {
  Measured m;
  const int k = o.runs;
  Barrier barrier(k + 1);
  std::mutex mu;  // guards m.error, m.params; serialises graph captures
  std::vector<std::thread> threads;
  bool stop = false;
  for (int t = 0; t < k; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<BenchRun> run;
      bool ok = true;
      {
        // Runs are set up one at a time: a graph capture fails if another thread
        // allocates device memory meanwhile.
        std::lock_guard<std::mutex> lock(mu);
        try {
          run = std::make_unique<BenchRun>(o, depth_n, 1 + t, device);
          if (auto s = run->Prepare(); !s.ok()) {
            m.error = s.ToString();
            ok = false;
          }
          m.params = run->param_count();
        } catch (const c10::Error& e) {
          m.error = e.what_without_backtrace();
          ok = false;
        } catch (const std::exception& e) {
          m.error = e.what();
          ok = false;
        }
      }
      if (run) run->MarkGraphed();
      barrier.Wait();                            // prepared
      for (int phase = 0; phase < 2; ++phase) {  // 0: training, 1: evaluation
        for (int r = 0; r < o.rounds; ++r) {
          barrier.Wait();  // round starts
          if (ok && !stop) {
            try {
              for (int i = 0; i < o.iters; ++i) phase == 0 ? run->Step() : run->Evaluate();
              run->Synchronize();
            } catch (const c10::Error& e) {
              std::lock_guard<std::mutex> lock(mu);
              m.error = e.what_without_backtrace();
              ok = false;
            }
          }
          barrier.Wait();  // round done
        }
      }
    });
  }
  barrier.Wait();  // all prepared
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = !m.error.empty();
  }
  const int64_t images = static_cast<int64_t>(k) * o.iters * o.batch * o.fuse;
  for (int phase = 0; phase < 2; ++phase) {
    std::vector<double> rates;
    for (int r = 0; r < o.rounds; ++r) {
      barrier.Wait();
      const auto start = Clock::now();
      barrier.Wait();
      rates.push_back(images / std::max(Seconds(start), 1e-9));
    }
    (phase == 0 ? m.train : m.eval) = SpreadOf(rates);
  }
  for (auto& t : threads) t.join();
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  if (o.threads > 0) torch::set_num_threads(o.threads);
  const torch::Device device(o.device);
  const bool amp = device.is_cuda() && o.amp != "off";
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  if ((o.runs > 1 || o.cuda_graphs) && device.is_cuda() && !resweep::CudaSupportCompiled()) {
    std::fprintf(stderr, "--runs > 1 and --cuda-graphs on a GPU need a CUDA build\n");
    return 2;
  }
  // One token (no spaces) that names the configuration in RESULT lines.
  const std::string label =
      !o.label.empty() ? o.label
                       : std::string(amp ? o.amp : "fp32") + (o.channels_last ? "+cl" : "") + "/K" +
                             std::to_string(o.runs) + "/F" + std::to_string(o.fuse) +
                             (o.cuda_graphs ? "/graphs" : "") + (o.pipeline ? "/pipeline" : "");
  std::printf(
      "trainer_bench: LibTorch %s, device %s, %d intra-op threads, batch %d, %d rounds of %d "
      "steps, runs at once %d, fused seeds %d, CUDA graphs %s, channels_last %s, amp %s, data "
      "pipeline %s\n",
      TORCH_VERSION, device.str().c_str(), torch::get_num_threads(), o.batch, o.rounds, o.iters,
      o.runs, o.fuse, o.cuda_graphs ? "on" : "off", o.channels_last ? "on" : "off",
      amp ? o.amp.c_str() : "off", o.pipeline ? "in the step" : "not in the step");
  std::printf("%-8s %10s %28s %28s %10s\n", "network", "params", "train img/s (low..high)",
              "eval img/s (low..high)", "step ms");
  double first_step_ms = 0;
  int failures = 0;
  for (int n : o.depths) {
    const Measured m = MeasureDepth(o, n, device);
    const std::string net = "resnet" + std::to_string(6 * n + 2);
    if (!m.error.empty()) {
      std::printf("%-8s FAILED: %s\n", net.c_str(), m.error.c_str());
      std::printf("RESULT impl=cpp label=%s layers=%d error=1\n", label.c_str(), 6 * n + 2);
      ++failures;
      continue;
    }
    const double step_ms = 1000.0 * o.batch * o.fuse * o.runs / m.train.median;
    char train[64], eval[64];
    std::snprintf(train, sizeof train, "%.0f (%.0f..%.0f)", m.train.median, m.train.low,
                  m.train.high);
    std::snprintf(eval, sizeof eval, "%.0f (%.0f..%.0f)", m.eval.median, m.eval.low, m.eval.high);
    std::printf("%-8s %10lld %28s %28s %10.2f\n", net.c_str(), static_cast<long long>(m.params),
                train, eval, step_ms);
    std::printf(
        "RESULT impl=cpp label=%s layers=%d runs=%d fuse=%d train_img_s=%.2f train_low=%.2f "
        "train_high=%.2f eval_img_s=%.2f eval_low=%.2f eval_high=%.2f\n",
        label.c_str(), 6 * n + 2, o.runs, o.fuse, m.train.median, m.train.low, m.train.high,
        m.eval.median, m.eval.low, m.eval.high);
    std::fflush(stdout);
    if (first_step_ms == 0) first_step_ms = step_ms;
  }
  if (o.runs > 1 || o.fuse > 1 || o.cuda_graphs || o.pipeline) return failures ? 1 : 0;

  // The data pipeline the trainer runs per batch: gather uint8 images, normalise,
  // pad-and-crop and flip (batched tensor ops), on the same device.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const int batches = std::max(4, o.iters * 2);
  const int64_t n = static_cast<int64_t>(batches) * o.batch;
  auto images = torch::randint(0, 256, {n, 3, 32, 32}, gen, torch::kUInt8).to(device);
  auto mean = torch::full({1, 3, 1, 1}, 0.47f).to(device);
  auto stdev = torch::full({1, 3, 1, 1}, 0.25f).to(device);
  auto perm = torch::randperm(n, gen, torch::kInt64).to(device);
  auto offsets = torch::randint(0, 9, {n, 2}, gen, torch::kInt64).to(device);
  auto flips = (torch::rand({n}, gen) < 0.5).to(device);
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
  };
  sync();
  auto start = Clock::now();
  for (int b = 0; b < batches; ++b) {
    auto idx = perm.narrow(0, static_cast<int64_t>(b) * o.batch, o.batch);
    auto x = images.index_select(0, idx).to(torch::kFloat32).div_(255.0).sub_(mean).div_(stdev);
    x = resweep::AugmentBatch(x, 4, offsets.index_select(0, idx), flips.index_select(0, idx));
  }
  sync();
  const double prep_ms = 1000 * Seconds(start) / batches;
  if (!o.depths.empty() && first_step_ms > 0) {
    std::printf("data pipeline: %.2f ms per batch of %d = %.1f%% of a resnet%d training step\n",
                prep_ms, o.batch, 100 * prep_ms / (prep_ms + first_step_ms), 6 * o.depths[0] + 2);
  }
  std::printf("RESULT impl=cpp pipeline_ms_per_batch=%.3f\n", prep_ms);
  return failures ? 1 : 0;
}
