#include "worker/fused_trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <sstream>
#include <type_traits>

#include "worker/autocast.h"
#include "worker/cuda_support.h"
#include "worker/fault.h"
#include "worker/fused_resnet.h"
#include "worker/libtorch_trainer.h"
#include "worker/lr_schedule.h"
#include "worker/trainer_internal.h"
#include "worker/trainer_log.h"

namespace resweep {

namespace F = torch::nn::functional;
using namespace trainer_internal;  // NOLINT: the trainers' shared helpers

namespace {

// LibTorch keys an optimiser's per-parameter state by the parameter's TensorImpl: as
// a string in 1.13, as the pointer itself in 2.x.
template <typename Map>
typename Map::key_type StateKey(const Map&, const torch::Tensor& p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;  // what 1.13's c10::guts::to_string writes
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

torch::Tensor MomentumOf(torch::optim::SGD& sgd, const torch::Tensor& p) {
  auto& state = sgd.state();
  auto it = state.find(StateKey(state, p));
  if (it == state.end()) return {};
  return static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer();
}

void SetMomentum(torch::optim::SGD& sgd, const torch::Tensor& p, const torch::Tensor& buffer) {
  auto& state = sgd.state();
  auto entry = std::make_unique<torch::optim::SGDParamState>();
  entry->momentum_buffer(buffer);
  state[StateKey(state, p)] = std::move(entry);
}

torch::optim::SGD& AsSgd(torch::optim::Optimizer& o) { return static_cast<torch::optim::SGD&>(o); }

// One run of the gang.
struct Member {
  size_t index = 0;  // into the caller's vector
  int64_t seed = 0;
  RunContext* context = nullptr;
  at::Generator generator;
  torch::Tensor epoch_generator_state;
  torch::Tensor perm, offsets, flips;  // this epoch's draws
  torch::Tensor loss_sum, wrong;       // this epoch so far (device scalars)
};

// The gang's shared state: the fused network and its optimiser, rebuilt whenever a
// member leaves.
struct Gang {
  ResNetOptions options;
  FusedResNet model{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<Member> members;
};

// Member f of the gang as a lone run: its network and an optimiser holding its slice
// of the momentum buffers.
void ExtractMember(Gang& gang, int64_t f, const RunConfig& config, const torch::Device& device,
                   ResNet* net, std::unique_ptr<torch::optim::Optimizer>* optimizer) {
  *net = ResNet(gang.options);
  (*net)->to(device);
  gang.model->StoreMember(f, *net);
  *optimizer = MakeOptimizer(config.train.optimizer, (*net)->parameters());
  auto fused_params = gang.model->named_parameters();
  for (const auto& item : (*net)->named_parameters()) {
    auto buffer = MomentumOf(AsSgd(*gang.optimizer), fused_params[item.key()]);
    if (buffer.defined()) {
      SetMomentum(AsSgd(**optimizer), item.value(),
                  gang.model->MemberSlice(item.key(), buffer, f).clone());
    }
  }
}

// Builds the fused network and optimiser from lone members (network + optimiser each).
void Assemble(Gang& gang, const RunConfig& config, const torch::Device& device,
              std::vector<ResNet>& nets,
              std::vector<std::unique_ptr<torch::optim::Optimizer>>& optimizers) {
  const int64_t count = static_cast<int64_t>(nets.size());
  gang.model = FusedResNet(gang.options, count);
  gang.model->to(device);
  for (int64_t f = 0; f < count; ++f) gang.model->LoadMember(f, nets[f]);
  if (config.train.channels_last) {
    for (auto& p : gang.model->parameters()) {
      if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
  gang.optimizer = MakeOptimizer(config.train.optimizer, gang.model->parameters());
  for (const auto& item : gang.model->named_parameters()) {
    std::vector<torch::Tensor> slices;
    for (int64_t f = 0; f < count; ++f) {
      auto buffer = MomentumOf(AsSgd(*optimizers[f]), nets[f]->named_parameters()[item.key()]);
      if (!buffer.defined()) break;
      slices.push_back(buffer);
    }
    if (static_cast<int64_t>(slices.size()) != count) continue;  // no momentum yet
    auto joined = gang.model->JoinMembers(item.key(), slices);
    SetMomentum(AsSgd(*gang.optimizer), item.value(),
                joined.contiguous(item.value().suggest_memory_format()));
  }
}

// Drops the members for which `leave` is true, keeping the others' state exactly.
void Shrink(Gang& gang, const RunConfig& config, const torch::Device& device,
            const std::vector<bool>& leave) {
  std::vector<ResNet> nets;
  std::vector<std::unique_ptr<torch::optim::Optimizer>> optimizers;
  std::vector<Member> kept;
  for (size_t f = 0; f < gang.members.size(); ++f) {
    if (leave[f]) continue;
    ResNet net{nullptr};
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    ExtractMember(gang, static_cast<int64_t>(f), config, device, &net, &optimizer);
    nets.push_back(net);
    optimizers.push_back(std::move(optimizer));
    kept.push_back(std::move(gang.members[f]));
  }
  gang.members = std::move(kept);
  if (gang.members.empty()) return;
  Assemble(gang, config, device, nets, optimizers);
}

}  // namespace

GangTrainer::GangTrainer(torch::Device device, DatasetCache* cache)
    : device_(device), cache_(cache) {}

std::vector<StatusOr<TrainOutcome>> GangTrainer::Train(const RunConfig& config,
                                                       const std::vector<GangMember>& members) {
  std::vector<StatusOr<TrainOutcome>> results(members.size(),
                                              StatusOr<TrainOutcome>(InternalError("not trained")));
  auto fail_all = [&](const Status& s) {
    for (auto& r : results) r = s;
  };
  if (members.empty()) return results;
  if (Status fusable = SeedFusable(config); !fusable.ok()) {
    fail_all(fusable);
    return results;
  }
  for (const auto& m : members) {
    if (m.resume.epoch != members.front().resume.epoch) {
      fail_all(FailedPreconditionError("a gang's members must resume from the same epoch"));
      return results;
    }
  }
  std::vector<bool> done(members.size(), false);
  try {
    SlotStream stream(device_);
    StatusOr<RunData> prepared = PrepareRun(config, cache_, device_);
    if (!prepared.ok()) {
      fail_all(prepared.status());
      return results;
    }
    const RunData& run = *prepared;
    const torch::Tensor &train_x = run.train_x, &train_y = run.train_y;
    const torch::Tensor &test_x = run.test_x, &test_y = run.test_y;
    const Normalizer& norm = run.norm;
    const auto& dc = config.dataset;
    const auto& tc = config.train;
    const bool cuda = device_.is_cuda();
    const bool amp = cuda && tc.amp != "off";
    const at::ScalarType amp_dtype = tc.amp == "bf16" ? at::kBFloat16 : at::kHalf;
    const auto memory_format =
        tc.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;

    Gang gang;
    gang.options = run.model;

    // Each member as the lone trainer would start it: initialised from its seed, or
    // loaded from its checkpoint; then all of them fused.
    std::vector<ResNet> nets;
    std::vector<std::unique_ptr<torch::optim::Optimizer>> optimizers;
    int64_t iteration = 0;
    EpochPosition position;
    const int start_epoch = members.front().resume.epoch;
    for (size_t i = 0; i < members.size(); ++i) {
      Member m;
      m.index = i;
      m.seed = members[i].seed;
      m.context = members[i].context;
      m.generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(m.seed));
      ResNet net(gang.options);
      net->Initialize(m.generator);
      net->to(device_);
      auto optimizer = MakeOptimizer(tc.optimizer, net->parameters());
      if (start_epoch > 0) {
        int64_t member_iteration = 0;
        EpochPosition member_position;
        Status loaded =
            LoadTrainingState(members[i].resume.payload, start_epoch, device_, net, *optimizer,
                              m.generator, &member_iteration, &member_position);
        if (!loaded.ok()) {
          if (loaded.code() == StatusCode::kDataLoss) m.context->ResumeUnusable();
          results[i] = loaded;
          done[i] = true;
          continue;
        }
        if (!gang.members.empty() && (member_iteration != iteration ||
                                      member_position.batch_start != position.batch_start)) {
          results[i] = FailedPreconditionError(
              "checkpoint position differs from the gang's: train this run alone");
          done[i] = true;
          continue;
        }
        iteration = member_iteration;
        position.batch_start = member_position.batch_start;
        m.loss_sum = member_position.loss_sum;
        m.wrong = member_position.wrong;
      }
      nets.push_back(net);
      optimizers.push_back(std::move(optimizer));
      gang.members.push_back(std::move(m));
    }
    if (gang.members.empty()) return results;
    Assemble(gang, config, device_, nets, optimizers);
    nets.clear();
    optimizers.clear();
    const int64_t n = train_x.size(0);
    const int64_t batch = tc.batch_size;
    const int64_t iterations_per_epoch = (n + batch - 1) / batch;
    const int64_t padding = dc.augment_padding;
    const int64_t param_count = ResNet(gang.options)->ParameterCount();
    TrainerLogf(TrainerLogLevel::kDebug, "training a gang of ", gang.members.size(), " seeds of ",
                config.layers(), " layers on ", n, " images, ", device_.str());

    auto finish = [&](size_t f, StatusOr<TrainOutcome> r, std::vector<bool>& leave) {
      const size_t i = gang.members[f].index;
      results[i] = std::move(r);
      done[i] = true;
      leave[f] = true;
      if (members[i].on_left) members[i].on_left(results[i]);
    };

    for (int epoch = start_epoch + 1; epoch <= tc.epochs && !gang.members.empty(); ++epoch) {
      const auto epoch_start = std::chrono::steady_clock::now();
      gang.model->train();
      for (auto& m : gang.members) {
        m.epoch_generator_state = m.generator.get_state();
        m.perm = torch::randperm(n, m.generator, torch::kInt64).to(device_);
        m.offsets =
            torch::randint(0, 2 * padding + 1, {n, 2}, m.generator, torch::kInt64).to(device_);
        m.flips =
            dc.augment_flip ? (torch::rand({n}, m.generator) < 0.5).to(device_) : torch::Tensor();
        if (position.batch_start == 0 || !m.loss_sum.defined()) {
          m.loss_sum =
              torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
          m.wrong = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(device_));
        } else {
          m.loss_sum = m.loss_sum.to(device_);
          m.wrong = m.wrong.to(device_);
        }
      }
      const int64_t first = position.batch_start;
      position = EpochPosition();
      double lr = 0;
      for (int64_t start = first; start < n && !gang.members.empty(); start += batch) {
        // Members told to stop leave here, with their exact position saved if asked.
        std::vector<bool> leave(gang.members.size(), false);
        bool any = false;
        for (size_t f = 0; f < gang.members.size(); ++f) {
          Member& m = gang.members[f];
          if (!m.context->ShouldStop()) continue;
          if (m.context->CheckpointOnStop() && tc.checkpoint_every > 0 && epoch > 1) {
            ResNet net{nullptr};
            std::unique_ptr<torch::optim::Optimizer> optimizer;
            ExtractMember(gang, static_cast<int64_t>(f), config, device_, &net, &optimizer);
            Status saved = m.context->OnCheckpoint(
                epoch - 1, iteration,
                SaveTrainingState(net, *optimizer, m.epoch_generator_state, epoch - 1, iteration,
                                  {start, m.loss_sum, m.wrong}));
            if (!saved.ok()) {
              finish(f, saved, leave);
              any = true;
              continue;
            }
          }
          finish(f, CancelledError("stopped"), leave);
          any = true;
        }
        if (any) {
          Shrink(gang, config, device_, leave);
          if (gang.members.empty()) break;
        }
        const int64_t size = std::min(batch, n - start);
        std::vector<torch::Tensor> xs, ys;
        for (auto& m : gang.members) {
          auto idx = m.perm.narrow(0, start, size);
          auto x = norm.Apply(train_x.index_select(0, idx));
          xs.push_back(
              AugmentBatch(x, padding, m.offsets.index_select(0, idx),
                           m.flips.defined() ? m.flips.index_select(0, idx) : torch::Tensor()));
          ys.push_back(train_y.index_select(0, idx));
        }
        auto x = StackMemberInputs(xs);
        if (tc.channels_last) x = x.contiguous(memory_format);
        lr = LearningRateAt(tc.optimizer, tc.schedule, iteration, iterations_per_epoch, tc.epochs);
        SetLearningRate(*gang.optimizer, lr);
        gang.optimizer->zero_grad();
        torch::Tensor logits;
        std::vector<torch::Tensor> losses;
        {
          AutocastScope autocast(amp, amp_dtype);
          logits = gang.model->forward(x).to(torch::kFloat32);  // [B, F, K]
          for (size_t f = 0; f < gang.members.size(); ++f) {
            losses.push_back(
                F::cross_entropy(logits.select(1, static_cast<int64_t>(f)), ys[f],
                                 F::CrossEntropyFuncOptions().label_smoothing(tc.label_smoothing)));
          }
        }
        // The sum of the members' losses: each member's gradient is its own loss's.
        torch::stack(losses).sum().backward();
        gang.optimizer->step();
        ++iteration;
        torch::NoGradGuard no_grad;
        for (size_t f = 0; f < gang.members.size(); ++f) {
          Member& m = gang.members[f];
          m.context->OnBatch();
          m.loss_sum += losses[f].detach().to(torch::kFloat64) * size;
          m.wrong += (logits.select(1, static_cast<int64_t>(f)).argmax(1) != ys[f]).sum();
        }
      }
      if (gang.members.empty()) break;
      const double train_seconds = Seconds(epoch_start);
      // Members that diverged this epoch fail alone.
      std::vector<EpochReport> reports(gang.members.size());
      std::vector<bool> leave(gang.members.size(), false);
      bool any = false;
      for (size_t f = 0; f < gang.members.size(); ++f) {
        EpochReport& r = reports[f];
        r.epoch = epoch;
        r.lr = lr;
        r.train_loss = gang.members[f].loss_sum.item<double>() / n;
        r.train_error = static_cast<double>(gang.members[f].wrong.item<int64_t>()) / n;
        r.images_per_sec = n / std::max(train_seconds, 1e-9);  // per run; the gang does F x
        if (!std::isfinite(r.train_loss)) {
          finish(f,
                 InvalidArgumentError("diverged: training loss is " + std::to_string(r.train_loss) +
                                      " in epoch " + std::to_string(epoch) + " (lr " +
                                      std::to_string(lr) + ")"),
                 leave);
          any = true;
        }
      }
      if (any) {
        std::vector<EpochReport> kept;
        for (size_t f = 0; f < reports.size(); ++f)
          if (!leave[f]) kept.push_back(reports[f]);
        reports = std::move(kept);
        Shrink(gang, config, device_, leave);
        if (gang.members.empty()) break;
      }
      if (epoch % tc.eval_every == 0 || epoch == tc.epochs) {
        torch::NoGradGuard no_grad;
        gang.model->eval();
        const int64_t members_now = static_cast<int64_t>(gang.members.size());
        const int64_t m_count = test_x.size(0);
        auto wrong = torch::zeros({members_now},
                                  torch::TensorOptions().dtype(torch::kInt64).device(device_));
        auto loss_sum = torch::zeros({members_now},
                                     torch::TensorOptions().dtype(torch::kFloat64).device(device_));
        for (int64_t start = 0; start < m_count; start += 500) {
          const int64_t size = std::min<int64_t>(500, m_count - start);
          auto x = norm.Apply(test_x.narrow(0, start, size)).repeat({1, members_now, 1, 1});
          x = x.contiguous(memory_format);
          auto y = test_y.narrow(0, start, size);
          torch::Tensor logits;
          {
            AutocastScope autocast(amp, amp_dtype);
            logits = gang.model->forward(x).to(torch::kFloat32);  // [B, F, K]
          }
          auto per = F::cross_entropy(logits.reshape({-1, logits.size(2)}),
                                      y.repeat_interleave(members_now),
                                      F::CrossEntropyFuncOptions().reduction(torch::kNone))
                         .view({size, members_now});
          loss_sum += per.sum(0).to(torch::kFloat64);
          wrong += (logits.argmax(2) != y.unsqueeze(1)).sum(0);
        }
        auto wrong_cpu = wrong.cpu();
        auto loss_cpu = loss_sum.cpu();
        for (size_t f = 0; f < reports.size(); ++f) {
          reports[f].test_error =
              m_count ? static_cast<double>(wrong_cpu[f].item<int64_t>()) / m_count : -1;
          reports[f].test_loss = m_count ? loss_cpu[f].item<double>() / m_count : -1;
        }
      }
      std::vector<bool> refused(gang.members.size(), false);
      bool any_refused = false;
      for (size_t f = 0; f < gang.members.size(); ++f) {
        reports[f].seconds = Seconds(epoch_start);
        Status s = gang.members[f].context->OnEpoch(reports[f]);
        if (s.ok() && tc.checkpoint_every > 0 && epoch % tc.checkpoint_every == 0 &&
            epoch < tc.epochs) {
          ResNet net{nullptr};
          std::unique_ptr<torch::optim::Optimizer> optimizer;
          ExtractMember(gang, static_cast<int64_t>(f), config, device_, &net, &optimizer);
          s = gang.members[f].context->OnCheckpoint(
              epoch, iteration,
              SaveTrainingState(net, *optimizer, gang.members[f].generator.get_state(), epoch,
                                iteration, {}));
        }
        if (!s.ok()) {
          finish(f, s, refused);
          any_refused = true;
        }
      }
      if (any_refused) Shrink(gang, config, device_, refused);
    }
    // Whoever is still in the gang trained every epoch.
    for (auto& m : gang.members) {
      TrainOutcome outcome;
      outcome.param_count = param_count;
      outcome.epochs_done = std::max(start_epoch, tc.epochs);
      results[m.index] = outcome;
      done[m.index] = true;
    }
  } catch (const c10::Error& e) {
    const Status s = LibTorchError(e);
    for (size_t i = 0; i < members.size(); ++i)
      if (!done[i]) results[i] = s;
  } catch (const std::exception& e) {
    for (size_t i = 0; i < members.size(); ++i)
      if (!done[i]) results[i] = InternalError(std::string("trainer: ") + e.what());
  }
  return results;
}

}  // namespace resweep
