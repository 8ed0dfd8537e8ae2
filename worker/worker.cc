#include "worker/worker.h"

#include "common/checkpoint_path.h"
#include "common/run_config_json.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/channel.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/remove_tree.h"
#include "common/sweep_spec.h"
#include "common/version.h"
#include "worker/cuda_support.h"
#include "worker/fault.h"
#include "worker/fused_trainer.h"
#include "worker/libtorch_trainer.h"
#include "worker/log_tail.h"
#include "worker/trainer.h"
#include "worker/trainer_log.h"

namespace resweep {

namespace {

// How far apart two replies may put the end of one quarantine (SlotLoop).
constexpr int64_t kQuarantineEndJitterMs = 2000;

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "worker";
  return buf;
}

// Worth retrying: the coordinator is unreachable, slow, busy, or shutting down (a
// call in flight when it stops ends CANCELLED; the worker never cancels its own calls).
bool Transient(const grpc::Status& st) {
  return st.error_code() == grpc::StatusCode::UNAVAILABLE ||
         st.error_code() == grpc::StatusCode::CANCELLED ||
         st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

constexpr int64_t kCallTimeoutMs = 10000;

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::optional<std::string> DataRootProblem(const std::string& data_root) {
  std::error_code ec;
  const auto status = std::filesystem::status(data_root, ec);
  if (status.type() == std::filesystem::file_type::not_found) {
    return data_root + " does not exist";
  }
  if (ec) return data_root + ": " + ec.message();
  if (!std::filesystem::is_directory(status)) return data_root + " is not a directory";
  return std::nullopt;
}

StatusOr<std::vector<std::string>> ResolveDevices(const std::string& spec, int cpu_slots,
                                                  int runs_per_gpu, int available_gpus) {
  if (runs_per_gpu < 1) return InvalidArgumentError("--runs-per-gpu must be at least 1");
  std::vector<std::string> devices;
  const int gpus = available_gpus >= 0           ? available_gpus
                   : torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count())
                                                 : 0;
  auto add_gpu = [&](const std::string& name) {
    for (int k = 0; k < runs_per_gpu; ++k) devices.push_back(name);
  };
  auto all_gpus = [&] {
    for (int i = 0; i < gpus; ++i) add_gpu("cuda:" + std::to_string(i));
  };
  if (spec == "auto") {
    if (gpus > 0) {
      all_gpus();
    } else {
      devices.assign(std::max(1, cpu_slots), "cpu");
    }
  } else if (spec == "cpu") {
    devices.assign(std::max(1, cpu_slots), "cpu");
  } else if (spec == "all") {
    if (gpus == 0) return InvalidArgumentError("--device all: no CUDA device is available");
    all_gpus();
  } else {
    std::stringstream ss(spec);
    for (std::string item; std::getline(ss, item, ',');) {
      if (item.rfind("cuda:", 0) != 0) {
        return InvalidArgumentError("--device: '" + item +
                                    "' is not auto, cpu, all or cuda:N[,cuda:M...]");
      }
      int index = -1;
      try {
        index = std::stoi(item.substr(5));
      } catch (const std::exception&) {
      }
      if (index < 0 || index >= gpus) {
        return InvalidArgumentError("--device: " + item + " does not exist (" +
                                    std::to_string(gpus) + " CUDA devices)");
      }
      if (std::find(devices.begin(), devices.end(), item) != devices.end()) {
        return InvalidArgumentError("--device: " + item +
                                    " named twice (use --runs-per-gpu for several runs per GPU)");
      }
      add_gpu(item);
    }
  }
  if (devices.empty()) return InvalidArgumentError("--device: no devices");
  return devices;
}

// The RunContext of one slot's current run: epoch reports go straight to the
// coordinator (retried through outages); a refusal ends the run.
class Worker::SlotContext : public RunContext {
 public:
  // `metrics`: the slot's (null: none recorded).
  SlotContext(Worker* worker, std::shared_ptr<ActiveRun> run, const SlotMetrics* metrics)
      : worker_(worker), run_(run), metrics_(metrics), epoch_started_ms_(SteadyMs()) {}

  bool ShouldStop() const override {
    return run_->stop.load() || run_->abandoned.load() || worker_->stopping_.load();
  }
  // The worker is shutting down (not: the run was cancelled, its lease lost, or its
  // trainer given up on), so the run will continue elsewhere from this checkpoint.
  bool CheckpointOnStop() const override {
    return worker_->stopping_.load() && !run_->stop.load() && !run_->abandoned.load();
  }
  void OnBatch() override {
    ++run_->progress;
    run_->last_progress_ms = SteadyMs();
  }
  void ResumeUnusable() override { checkpoint_unusable_ = true; }

  Status OnEpoch(const EpochReport& r) override {
    // Runs on the trainer's thread only.
    const int64_t now = SteadyMs();
    run_->longest_epoch_ms = std::max(run_->longest_epoch_ms.load(), now - epoch_started_ms_);
    epoch_started_ms_ = now;
    ++run_->progress;
    CallScope call(run_.get());
    v1::ReportEpochRequest req;
    req.set_worker_id(worker_->worker_id());
    req.set_run_id(run_->run_id);
    req.set_attempt(run_->attempt);
    auto* m = req.mutable_metrics();
    m->set_epoch(r.epoch);
    m->set_train_loss(r.train_loss);
    m->set_train_error(r.train_error);
    m->set_test_error(r.test_error);
    m->set_test_loss(r.test_loss);
    m->set_lr(r.lr);
    m->set_seconds(r.seconds);
    m->set_images_per_sec(r.images_per_sec);
    v1::ReportEpochResponse resp;
    Status st = worker_->CallCoordinator("ReportEpoch", 0, kCallTimeoutMs,
                                         &v1::Coordinator::Stub::ReportEpoch, req, &resp);
    if (!st.ok()) return NoteRefusal(st);
    run_->epoch = r.epoch;
    if (metrics_) {
      metrics_->images_per_second->Set(r.images_per_sec);
      metrics_->epoch_seconds->Set(r.seconds);
    }
    // Through the trainer log: the worker's log has it, and so does the run's tail.
    TrainerLog(TrainerLogLevel::kInfo,
               fmt::format(
                   "run {} epoch {}: train loss {:.4f}, train err {:.2f}%, test err {}, "
                   "lr {:.4g}, {:.1f} s, {:.0f} img/s",
                   run_->run_id, r.epoch, r.train_loss, r.train_error * 100,
                   r.test_error < 0 ? std::string("-") : fmt::format("{:.2f}%", r.test_error * 100),
                   r.lr, r.seconds, r.images_per_sec));
    return Status::Ok();
  }

  Status OnCheckpoint(int epoch, int64_t iteration, const std::string& payload) override {
    if (!worker_->options_.checkpoint_dir.empty()) {
      return WriteSharedCheckpoint(epoch, iteration, payload);
    }
    CallScope call(run_.get());
    const std::string sealed = SealEnvelope(payload);
    const std::string sha = Sha256Hex(sealed);
    const size_t kChunk = 1 << 20;
    size_t offset = 0;
    do {
      v1::PutCheckpointChunkRequest req;
      req.set_worker_id(worker_->worker_id());
      req.set_run_id(run_->run_id);
      req.set_attempt(run_->attempt);
      req.set_epoch(epoch);
      req.set_iteration(iteration);
      req.set_offset(static_cast<int64_t>(offset));
      const size_t n = std::min(kChunk, sealed.size() - offset);
      req.set_data(sealed.substr(offset, n));
      req.set_last(offset + n == sealed.size());
      if (req.last()) req.set_sha256(sha);
      v1::PutCheckpointChunkResponse resp;
      Status st = worker_->CallCoordinator("PutCheckpointChunk", 0, kCallTimeoutMs,
                                           &v1::Coordinator::Stub::PutCheckpointChunk, req, &resp);
      if (!st.ok()) return NoteRefusal(st.WithContext("checkpoint upload"));
      offset += n;
    } while (offset < sealed.size());
    spdlog::debug("run {} attempt {}: checkpoint of epoch {} (iteration {}) uploaded ({} bytes)",
                  run_->run_id, run_->attempt, epoch, iteration, sealed.size());
    return Status::Ok();
  }

  // Shared-filesystem checkpoints: <checkpoint_dir>/<run_id>/epoch-<E>-it-<I>.ckpt, written
  // atomically and sealed with their SHA-256; the coordinator records the relative
  // path, and older epochs of the run are removed once the new one is recorded.
  Status WriteSharedCheckpoint(int epoch, int64_t iteration, const std::string& payload) {
    const std::filesystem::path root(worker_->options_.checkpoint_dir);
    const std::string file =
        "epoch-" + std::to_string(epoch) + "-it-" + std::to_string(iteration) + ".ckpt";
    const std::string relative = run_->run_id + "/" + file;
    RESWEEP_RETURN_IF_ERROR(CheckSharedCheckpointPath(run_->run_id, relative));
    std::error_code ec;
    std::filesystem::create_directories(root / run_->run_id, ec);
    if (ec) {
      return UnavailableError("checkpoint directory " + (root / run_->run_id).string() + ": " +
                              ec.message());
    }
    RESWEEP_RETURN_IF_ERROR(WriteFileAtomic((root / relative).string(), SealEnvelope(payload)));
    v1::RecordSharedCheckpointRequest req;
    req.set_worker_id(worker_->worker_id());
    req.set_run_id(run_->run_id);
    req.set_attempt(run_->attempt);
    req.set_epoch(epoch);
    req.set_iteration(iteration);
    req.set_relative_path(relative);
    v1::RecordSharedCheckpointResponse resp;
    Status st;
    {
      // Only the call: file I/O that hangs on a stuck mount counts against the deadline.
      CallScope call(run_.get());
      st = worker_->CallCoordinator("RecordSharedCheckpoint", 0, kCallTimeoutMs,
                                    &v1::Coordinator::Stub::RecordSharedCheckpoint, req, &resp);
    }
    if (!st.ok()) return NoteRefusal(st.WithContext("recording the shared checkpoint"));
    for (const auto& entry : std::filesystem::directory_iterator(root / run_->run_id, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("epoch-", 0) == 0 && name != file) {
        std::filesystem::remove(entry.path(), ec);
      }
    }
    spdlog::debug("run {} attempt {}: checkpoint of epoch {} written to {}", run_->run_id,
                  run_->attempt, epoch, (root / relative).string());
    return Status::Ok();
  }

  // Reads a shared-filesystem checkpoint named by the lease and checks its envelope.
  StatusOr<std::string> ReadSharedCheckpoint(const std::string& relative) {
    if (worker_->options_.checkpoint_dir.empty()) {
      return DataLossError("the checkpoint is on a shared filesystem (" + relative +
                           ") and this worker has no --checkpoint-dir");
    }
    // A lease naming a file outside this run's directory is refused, never opened.
    if (Status inside = CheckSharedCheckpointPath(run_->run_id, relative); !inside.ok()) {
      checkpoint_unusable_ = true;
      return DataLossError("lease's resume path refused: " + inside.message());
    }
    const std::filesystem::path root(worker_->options_.checkpoint_dir);
    const std::string path = (root / relative).string();
    std::error_code ec;
    if (!std::filesystem::is_directory(root / run_->run_id, ec)) {
      // The run wrote checkpoints there, so its directory exists on the shared
      // filesystem: here it does not, so this host does not see that filesystem (a
      // mount missing or pointing elsewhere). The host's fault; the checkpoint stays.
      return UnavailableError("checkpoint directory " + (root / run_->run_id).string() +
                              " does not exist on this worker: is --checkpoint-dir " +
                              root.string() + " the shared filesystem the other workers use?");
    }
    auto sealed = ReadWholeFile(path);
    if (!sealed.ok()) {
      checkpoint_unusable_ = true;  // missing in its directory: the run starts further back
      return DataLossError("checkpoint " + path + ": " + sealed.status().message());
    }
    auto payload = OpenEnvelope(*sealed);
    if (!payload.ok()) {
      checkpoint_unusable_ = true;
      return DataLossError("checkpoint " + path + ": " + payload.status().message());
    }
    return payload;
  }

  // Fetches the checkpoint the lease resumes from and checks its envelope.
  StatusOr<std::string> DownloadCheckpoint(int epoch) {
    std::string sealed;
    int64_t total = -1;
    while (total < 0 || static_cast<int64_t>(sealed.size()) < total) {
      v1::GetCheckpointChunkRequest req;
      req.set_worker_id(worker_->worker_id());
      req.set_run_id(run_->run_id);
      req.set_attempt(run_->attempt);
      req.set_epoch(epoch);
      req.set_offset(static_cast<int64_t>(sealed.size()));
      req.set_max_bytes(1 << 20);
      v1::GetCheckpointChunkResponse resp;
      Status st = worker_->CallCoordinator("GetCheckpointChunk", 0, kCallTimeoutMs,
                                           &v1::Coordinator::Stub::GetCheckpointChunk, req, &resp);
      if (st.code() == StatusCode::kNotFound || st.code() == StatusCode::kDataLoss) {
        // Its file is gone or unreadable on the coordinator: the run starts further back.
        checkpoint_unusable_ = true;
        return DataLossError(st.message());
      }
      if (!st.ok()) return st;
      total = resp.total_size();
      if (resp.data().empty() && static_cast<int64_t>(sealed.size()) < total) {
        checkpoint_unusable_ = true;
        return DataLossError("checkpoint download stalled");
      }
      sealed += resp.data();
    }
    auto payload = OpenEnvelope(sealed);
    if (!payload.ok()) checkpoint_unusable_ = true;
    return payload;
  }

  // True when the run's checkpoint itself proved unusable (missing, corrupt, or
  // refused by the trainer), as opposed to any other failure of the attempt.
  bool checkpoint_unusable() const { return checkpoint_unusable_; }

  // True when the coordinator refused a report of this attempt (stale or cancelled).
  bool refused() const { return refused_; }

 private:
  // Marks a call to the coordinator under way (retried through outages): the trainer
  // waits for it, which is not a hang; its end counts as progress.
  class CallScope {
   public:
    explicit CallScope(ActiveRun* run) : run_(run) { run_->in_call = true; }
    ~CallScope() {
      run_->last_progress_ms = SteadyMs();
      run_->in_call = false;
    }

   private:
    ActiveRun* run_;
  };

  // A call of this attempt failed: when the coordinator refused it (the attempt is
  // stale, or the run cancelled or gone), the attempt is over. Returns `st`.
  Status NoteRefusal(Status st) {
    if (st.code() == StatusCode::kFailedPrecondition || st.code() == StatusCode::kNotFound) {
      refused_ = true;
    }
    return st;
  }

  Worker* worker_;
  std::shared_ptr<ActiveRun> run_;
  const SlotMetrics* const metrics_;  // the slot's; null: none recorded
  std::atomic<bool> refused_{false};
  // Set by the slot's thread (resume) or the trainer's (ResumeUnusable).
  std::atomic<bool> checkpoint_unusable_{false};
  int64_t epoch_started_ms_;  // trainer's thread only
};

// What a slot and its trainer's thread share.
struct Worker::TrainerJob {
  Mutex mutex;
  CondVar finished;
  bool done RESWEEP_GUARDED_BY(mutex) = false;
  Outcomes outcomes RESWEEP_GUARDED_BY(mutex);
  std::string log_tail RESWEEP_GUARDED_BY(mutex);  // the trainer's last lines
};

// One run of what a slot leased (a gang has several): prepared, trained and
// reported by the slot's thread (a gang member that leaves early: while the others
// train on). The trainer's thread never writes it.
struct Worker::Member {
  v1::RunLease lease;
  std::shared_ptr<ActiveRun> run;
  std::shared_ptr<SlotContext> context;
  RunConfig config;
  ResumePoint resume;
  StatusOr<TrainOutcome> outcome = InternalError("not started");
  FailureOrigin origin = FailureOrigin::kTraining;
  std::string abandon_reason;   // why the slot gave up on the trainer
  bool over_run_limit = false;  // ... because train.max_run_seconds ran out
  bool stuck = false;           // ... and the trainer would not stop
  // The run's trainer log lines (those logged on the slot's thread and the
  // trainer's), for FailRun. Written by one thread at a time: the slot's, until the
  // trainer starts and after it ends.
  LogTail log_tail;
  bool give_back = false;  // not trained (the worker stops, or the slot retired): release it
  // Shared by a gang's members: one host fault of a gang is one incident, reported
  // once (FailRun); the other members' runs are given back (ReleaseRun).
  std::shared_ptr<std::atomic<bool>> gang_host_fault_reported;
  std::atomic<bool> reported{false};
};

Worker::Outcomes Worker::TrainWatched(
    int index, const std::vector<std::shared_ptr<ActiveRun>>& runs,
    const std::vector<std::shared_ptr<SlotContext>>& contexts, std::function<Outcomes()> train,
    const std::function<bool()>& report_left, double max_run_seconds, std::string* trainer_log,
    std::string* abandon_reason, bool* over_run_limit, bool* stuck) {
  auto job = std::make_shared<TrainerJob>();
  const int64_t started = SteadyMs();
  for (const auto& run : runs) run->last_progress_ms = started;
  // The thread owns what it uses (but for this worker itself: see stuck_trainers()).
  std::thread thread([job, train = std::move(train)] {
    LogTail tail;
    Outcomes outcomes;
    {
      ScopedTrainerLogCapture capture(&tail);
      outcomes = train();
    }
    MutexLock lock(&job->mutex);
    job->outcomes = std::move(outcomes);
    job->log_tail = tail.Text();
    job->done = true;
    job->finished.NotifyAll();
  });
  const int64_t max_run_ms = static_cast<int64_t>(max_run_seconds * 1000);
  const std::string names = fmt::format(
      "{}{} attempt {}", runs.size() > 1 ? fmt::format("gang of {}: run ", runs.size()) : "run ",
      runs.front()->run_id, runs.front()->attempt);
  int64_t stop_seen_ms = 0;  // when every run was first told to stop
  job->mutex.Lock();
  while (!job->done) {
    job->finished.WaitFor(&job->mutex, std::chrono::milliseconds(50));
    if (job->done) break;
    if (report_left) {
      // Runs that left their gang are reported from here, the slot's thread, with the
      // job unlocked; the time that takes is not the trainer's.
      job->mutex.Unlock();
      const bool reported = report_left();
      job->mutex.Lock();
      if (reported) stop_seen_ms = 0;
      if (job->done) break;
    }
    const int64_t now = SteadyMs();
    // The runs still trained: a gang's member that left is reported and done.
    int64_t last_progress = 0, longest_epoch = 0;
    bool in_call = false, watched = false;
    for (const auto& run : runs) {
      if (run->left) continue;
      watched = true;
      last_progress = std::max(last_progress, run->last_progress_ms.load());
      longest_epoch = std::max(longest_epoch, run->longest_epoch_ms.load());
      in_call = in_call || run->in_call;
    }
    const bool abandoned = runs.front()->abandoned;
    if (watched && !abandoned && !in_call) {
      const int64_t deadline = std::max<int64_t>(
          options_.progress_floor_ms,
          static_cast<int64_t>(options_.progress_factor * static_cast<double>(longest_epoch)));
      const int64_t idle = now - last_progress;
      if (idle > deadline) {
        *abandon_reason = fmt::format(
            "no training progress (batch or epoch) for {:.1f} s; the deadline is {:.1f} s (the "
            "larger of the worker's floor {:.1f} s and {} x the longest epoch so far, {:.1f} s)",
            idle / 1000.0, deadline / 1000.0, options_.progress_floor_ms / 1000.0,
            options_.progress_factor, longest_epoch / 1000.0);
      } else if (max_run_ms > 0 && now - started > max_run_ms) {
        *abandon_reason = fmt::format("the attempt has run {:.1f} s, past train.max_run_seconds {}",
                                      (now - started) / 1000.0, max_run_seconds);
        *over_run_limit = true;
      }
      if (!abandon_reason->empty()) {
        spdlog::warn(
            "slot {}: {}: {}: stopping the trainer and giving the run back ({})", index, names,
            *abandon_reason,
            *over_run_limit ? "the run's own limit: one of its attempts is used up" : "host fault");
        for (const auto& run : runs) run->abandoned = true;
      }
    }
    if (in_call) stop_seen_ms = 0;  // the trainer waits for the coordinator
    bool all_stopped = !in_call;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (!runs[i]->left && !contexts[i]->ShouldStop()) all_stopped = false;
    }
    if (all_stopped) {
      if (stop_seen_ms == 0) stop_seen_ms = now;
      if (now - stop_seen_ms > options_.stuck_trainer_grace_ms) {
        *stuck = true;
        break;
      }
    }
  }
  if (*stuck) {
    // Nothing can end a thread blocked in a device call: leave it be. It keeps its
    // job, trainer and contexts alive; the process ends it when it exits.
    job->mutex.Unlock();
    thread.detach();
    ++stuck_trainers_;
    return Outcomes(runs.size(), CancelledError(fmt::format(
                                     "the trainer did not stop within {:.1f} s of being told to",
                                     options_.stuck_trainer_grace_ms / 1000.0)));
  }
  *trainer_log = job->log_tail;
  Outcomes outcomes = std::move(job->outcomes);
  job->mutex.Unlock();
  thread.join();
  outcomes.resize(runs.size(), InternalError("the trainer returned no result for this run"));
  return outcomes;
}

Worker::Worker(WorkerOptions options)
    : options_(std::move(options)),
      channel_(MakeCoordinatorChannel({options_.coordinator, 8 << 20, options_.security})),
      stub_(v1::Coordinator::NewStub(channel_)),
      datasets_({.data_root = options_.data_root,
                 .allow_absolute_paths = options_.allow_absolute_data_paths,
                 .max_bytes = options_.dataset_cache_bytes}) {
  if (options_.metrics) RegisterMetrics();
}

Worker::~Worker() { Stop(); }

void Worker::RegisterMetrics() {
  MetricsRegistry* metrics = options_.metrics;
  for (size_t slot = 0; slot < options_.devices.size(); ++slot) {
    const MetricLabels labels = {{"slot", std::to_string(slot)},
                                 {"device", options_.devices[slot]}};
    slot_metrics_.push_back(
        {metrics->AddGauge("resweep_worker_images_per_second",
                           "Training throughput of the slot's newest epoch.", labels),
         metrics->AddGauge("resweep_worker_epoch_seconds", "Time of the slot's newest epoch.",
                           labels)});
  }
  const std::string help =
      "Runs this worker ended, by how: completed, failed (FailRun: a run or host fault), "
      "given back (ReleaseRun), dropped (cancelled or no longer this worker's).";
  run_metrics_ = {
      metrics->AddCounter("resweep_worker_runs_total", help, {{"outcome", "completed"}}),
      metrics->AddCounter("resweep_worker_runs_total", help, {{"outcome", "failed"}}),
      metrics->AddCounter("resweep_worker_runs_total", help, {{"outcome", "given_back"}}),
      metrics->AddCounter("resweep_worker_runs_total", help, {{"outcome", "dropped"}})};
  // Device memory in use, asked of the driver at each scrape (CUDA devices only).
  std::vector<std::string> gpus;
  for (const auto& device : options_.devices) {
    if (device.rfind("cuda", 0) == 0 && std::find(gpus.begin(), gpus.end(), device) == gpus.end()) {
      gpus.push_back(device);
    }
  }
  if (gpus.empty()) return;
  metrics->AddCollector([gpus](PrometheusText* out) {
    out->Family("resweep_worker_device_memory_used_bytes",
                "Device memory in use (total minus free, as the driver reports it).", "gauge");
    for (const auto& device : gpus) {
      auto memory = QueryDeviceMemory(torch::Device(device));
      if (!memory.ok()) continue;
      out->Sample("resweep_worker_device_memory_used_bytes", {{"device", device}},
                  static_cast<double>(memory->total_bytes - memory->free_bytes));
    }
  });
}

void Worker::PrepareCall(grpc::ClientContext* ctx, int64_t deadline_ms) const {
  resweep::PrepareCall(ctx, options_.security, deadline_ms);
}

std::string Worker::worker_id() {
  MutexLock lock(&mutex_);
  return worker_id_;
}

void Worker::SleepFor(int64_t ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  MutexLock lock(&mutex_);
  while (!stopping_.load()) {
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) break;
    wake_.WaitFor(&mutex_, left);
  }
}

template <typename Request, typename Response>
Status Worker::CallCoordinator(const char* what, int64_t give_up_ms, int64_t deadline_ms,
                               StubMethod<Request, Response> method, const Request& request,
                               Response* response) {
  return Retry(what, give_up_ms, [&] {
    grpc::ClientContext ctx;
    PrepareCall(&ctx, deadline_ms);
    return (stub_.get()->*method)(&ctx, request, response);
  });
}

Status Worker::Retry(const char* what, int64_t give_up_ms,
                     const std::function<grpc::Status()>& call) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto start = std::chrono::steady_clock::now();
  auto ms_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t)
        .count();
  };
  auto last_logged = start;
  int logged = 0;  // lines logged for this call
  int64_t backoff = 100;
  for (int attempt = 1;; ++attempt) {
    grpc::Status st = call();
    if (st.ok() && logged > 0) {
      spdlog::info("{}: coordinator {} answered after {} attempts ({:.1f} s)", what,
                   options_.coordinator, attempt, ms_since(start) / 1000.0);
    }
    if (st.ok() || !Transient(st)) return FromGrpcStatus(st);
    const int64_t elapsed = ms_since(start);
    if (stopping_ && give_up_ms == 0) return UnavailableError(std::string(what) + ": stopping");
    if (give_up_ms > 0 && elapsed > give_up_ms) return FromGrpcStatus(st);
    // Full jitter: a fleet of workers does not reconnect in lockstep.
    const int64_t sleep = std::uniform_int_distribution<int64_t>(backoff / 2, backoff)(rng);
    // The first failure, then one line per interval: an outage (or a wrong address)
    // is never silent for long, and fast early retries do not flood the log.
    if (logged == 0 || ms_since(last_logged) >= options_.retry_log_interval_ms) {
      spdlog::warn("{}: coordinator {} failed (attempt {}, {:.1f} s so far): {}; retrying in {} ms",
                   what, options_.coordinator, attempt, elapsed / 1000.0,
                   FromGrpcStatus(st).ToString(), sleep);
      last_logged = std::chrono::steady_clock::now();
      ++logged;
    }
    if (give_up_ms > 0) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(sleep));  // must finish even when stopping
    } else {
      SleepFor(sleep);
    }
    backoff = std::min<int64_t>(backoff * 2, options_.max_backoff_ms);
  }
}

bool Worker::EnsureRegistered() {
  if (!worker_id().empty()) return true;
  // One slot registers; the others wait for its answer instead of registering too.
  MutexLock registering(&register_mutex_);
  if (!worker_id().empty()) return true;
  v1::RegisterWorkerRequest req;
  req.set_name(options_.name.empty() ? HostName() : options_.name);
  req.set_host(HostName());
  req.set_version(std::string("resweep ") + ResweepVersion());
  // Each slot holds fuse_seeds lease slots (SlotLoop).
  for (const auto& d : options_.devices) {
    for (int i = 0; i < std::max(1, options_.fuse_seeds); ++i) req.add_devices(d);
  }
  v1::RegisterWorkerResponse resp;
  Status st = CallCoordinator("RegisterWorker", 0, kCallTimeoutMs,
                              &v1::Coordinator::Stub::RegisterWorker, req, &resp);
  if (!st.ok()) {
    if (!stopping_) {
      // Refused for good (a bad token or certificate, a bad request): the worker
      // stops, and Run() returns why, so that it exits non-zero.
      spdlog::critical("cannot register with the coordinator: {}", st.ToString());
      {
        MutexLock lock(&mutex_);
        if (fatal_.ok()) fatal_ = st.WithContext("registering with " + options_.coordinator);
      }
      Stop();
    }
    return false;
  }
  MutexLock lock(&mutex_);
  if (worker_id_.empty()) {
    worker_id_ = resp.worker_id();
    lease_ms_ = resp.lease_ms();
    heartbeat_ms_ = resp.heartbeat_ms();
    spdlog::info("registered as {} (lease {} ms, heartbeat {} ms), {} slot(s)", worker_id_,
                 lease_ms_, heartbeat_ms_, options_.devices.size());
  }
  return true;
}

void Worker::HandleUnknownWorker() {
  MutexLock lock(&mutex_);
  spdlog::warn("coordinator does not know worker {}: registering again", worker_id_);
  worker_id_.clear();
  // Leases held under the old identity cannot be reported any more.
  for (auto& [slot, run] : active_) {
    run->stop_reason = "worker identity lost";
    run->stop = true;
  }
}

void Worker::SlotLoop(int index) {
  const std::string device_name = options_.devices[index];
  const int fuse = std::max(1, options_.fuse_seeds);
  const int first_slot = index * fuse;  // this slot's lease slots: first_slot + 0..fuse-1
  const torch::Device device(device_name);
  // Shared with the trainer's thread, which may outlive this loop (stuck_trainers()).
  std::shared_ptr<Trainer> libtorch = MakeLibTorchTrainer(device, &datasets_);
  std::shared_ptr<Trainer> synthetic = MakeSyntheticTrainer();
  while (!stopping_) {
    if (!EnsureRegistered()) break;
    v1::AcquireRunRequest req;
    req.set_worker_id(worker_id());
    req.set_slot(first_slot);
    if (fuse > 1) req.set_gang_size(fuse);
    req.set_device(device_name);
    req.set_wait_ms(std::max(0, options_.acquire_wait_ms));
    v1::AcquireRunResponse resp;
    const auto asked = std::chrono::steady_clock::now();
    // Long-poll: the call may be held up to wait_ms, so its deadline is longer, and
    // Stop cancels it.
    Status st = Retry("AcquireRun", 0, [&] {
      grpc::ClientContext ctx;
      PrepareCall(&ctx, kCallTimeoutMs + req.wait_ms());
      {
        MutexLock lock(&mutex_);
        if (stopping_) return grpc::Status(grpc::StatusCode::CANCELLED, "worker stopping");
        acquires_in_flight_.insert(&ctx);
      }
      grpc::Status call_status = stub_->AcquireRun(&ctx, req, &resp);
      MutexLock lock(&mutex_);
      acquires_in_flight_.erase(&ctx);
      return call_status;
    });
    if (stopping_) break;
    if (st.code() == StatusCode::kNotFound) {
      HandleUnknownWorker();
      continue;
    }
    if (!st.ok()) {
      spdlog::error("slot {}: AcquireRun: {}", index, st.ToString());
      SleepFor(options_.poll_ms);
      continue;
    }
    if (!resp.has_run()) {
      if (!resp.quarantine_reason().empty()) {
        // Logged once per quarantine (by whichever slot hears of it first). Each reply
        // computes the end anew, a few milliseconds apart; a new quarantine can only
        // start after the last one ended, so it ends at least its length later.
        int64_t logged = quarantine_logged_until_ms_.load();
        if (resp.quarantined_until_unix_ms() > logged + kQuarantineEndJitterMs &&
            quarantine_logged_until_ms_.compare_exchange_strong(logged,
                                                                resp.quarantined_until_unix_ms())) {
          spdlog::error(
              "the coordinator gives this worker no runs for now: {}. Look at the host faults "
              "above (data, devices, mounts, memory); `resweep workers` shows the quarantine",
              resp.quarantine_reason());
        }
      }
      // A coordinator that long-polls has waited already, unless it answered well
      // before the bound (it is shutting down): then, as with one that does not
      // long-poll, wait between acquires here.
      const int64_t waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - asked)
                                    .count();
      if (resp.long_poll() && resp.quarantine_reason().empty() && req.wait_ms() > 0 &&
          waited_ms >= req.wait_ms() / 2) {
        continue;
      }
      static thread_local std::mt19937 rng{std::random_device{}()};
      SleepFor(std::uniform_int_distribution<int>(options_.poll_ms / 2, options_.poll_ms)(rng));
      continue;
    }

    std::vector<std::shared_ptr<Member>> members;
    std::vector<const v1::RunLease*> leases = {&resp.lease()};
    for (const auto& l : resp.gang_members()) leases.push_back(&l);
    for (size_t i = 0; i < leases.size(); ++i) {
      auto m = std::make_shared<Member>();
      m->lease = *leases[i];
      // A coordinator from before gangs names no slot: it leased the one asked for.
      if (m->lease.slot() < first_slot || m->lease.slot() >= first_slot + fuse) {
        m->lease.set_slot(first_slot + static_cast<int>(i));
      }
      m->run = std::make_shared<ActiveRun>();
      m->run->run_id = m->lease.run_id();
      m->run->attempt = m->lease.attempt();
      m->context = std::make_shared<SlotContext>(
          this, m->run,
          static_cast<size_t>(index) < slot_metrics_.size() ? &slot_metrics_[index] : nullptr);
      members.push_back(std::move(m));
    }
    {
      MutexLock lock(&mutex_);
      for (const auto& m : members) active_[m->lease.slot()] = m->run;
    }
    for (const auto& m : members) {
      spdlog::info("slot {} ({}): run {} attempt {}: {} {} seed {}{}", index, device_name,
                   m->lease.run_id(), m->lease.attempt(), m->lease.sweep_name(),
                   m->lease.cell_label(), m->lease.seed(),
                   members.size() > 1 ? fmt::format(" (gang of {})", members.size()) : "");
    }
    std::vector<std::shared_ptr<Member>> ready;
    for (const auto& m : members) {
      ScopedTrainerLogCapture capture(&m->log_tail);
      if (PrepareMember(m.get())) ready.push_back(m);
    }
    if (!ready.empty()) TrainMembers(index, device, ready, libtorch, synthetic);
    bool stuck = false;
    for (const auto& m : members) {
      stuck = stuck || m->stuck;
      FinishMember(m.get());
    }
    if (stuck) {
      // The device may be wedged and the trainer is still in use: this slot is done.
      const int retired = ++retired_slots_;
      spdlog::error(
          "slot {} ({}) takes no more runs: its trainer did not stop within {:.1f} s and its "
          "thread is left blocked; restart the worker to use the device again",
          index, device_name, options_.stuck_trainer_grace_ms / 1000.0);
      if (retired == static_cast<int>(options_.devices.size()) && !stopping_) {
        {
          MutexLock lock(&mutex_);
          if (fatal_.ok()) {
            fatal_ = UnavailableError("every slot's trainer is stuck; restart the worker");
          }
        }
        Stop();
      }
      return;
    }
  }
}

bool Worker::PrepareMember(Member* m) {
  const v1::RunLease& lease = m->lease;
  auto config = RunConfigFromJson(lease.config_json());
  if (!config.ok()) {
    m->outcome = config.status();
    m->origin = FailureOrigin::kConfig;
    return false;
  }
  if (Status valid = ValidateRunConfig(*config); !valid.ok()) {
    m->outcome = valid;
    m->origin = FailureOrigin::kConfig;
    return false;
  }
  if ((config->trainer.hang_at_epoch != 0 || config->trainer.hang_ignores_stop) &&
      !options_.allow_test_hooks) {
    m->outcome = InvalidArgumentError(
        "trainer.hang_at_epoch / hang_ignores_stop are test hooks that make the trainer hang; "
        "this worker was not started with --allow-test-hooks");
    m->origin = FailureOrigin::kConfig;
    return false;
  }
  m->config = std::move(*config);
  if (lease.resume_epoch() > 0) {
    auto payload = lease.resume_path().empty()
                       ? m->context->DownloadCheckpoint(lease.resume_epoch())
                       : m->context->ReadSharedCheckpoint(lease.resume_path());
    if (!payload.ok()) {
      m->origin = FailureOrigin::kResume;
      m->outcome = payload.status().code() == StatusCode::kDataLoss
                       ? payload.status()
                       : payload.status().WithContext("checkpoint download");
      return false;
    }
    m->resume = {lease.resume_epoch(), std::move(*payload)};
    m->run->epoch = m->resume.epoch;
    spdlog::info("run {} attempt {} resumes after epoch {}", m->run->run_id, m->run->attempt,
                 m->resume.epoch);
  }
  return true;
}

void Worker::TrainMembers(int index, const torch::Device& device,
                          const std::vector<std::shared_ptr<Member>>& members,
                          const std::shared_ptr<Trainer>& libtorch,
                          const std::shared_ptr<Trainer>& synthetic) {
  // A gang: one config (the coordinator gangs one cell's runs, which share it) that
  // can be fused, every member from the same resume point.
  bool gang = members.size() > 1 && SeedFusable(members.front()->config).ok();
  for (const auto& m : members) {
    gang = gang && m->lease.config_json() == members.front()->lease.config_json() &&
           m->resume.epoch == members.front()->resume.epoch;
  }
  if (members.size() > 1 && !gang) {
    spdlog::warn("slot {}: the {} runs leased together cannot be fused; training them one by one",
                 index, members.size());
  }
  if (stopping_) {
    for (const auto& m : members) {
      m->outcome = CancelledError("worker shutting down");
      m->give_back = true;
    }
    return;
  }
  auto train = [&](const std::vector<std::shared_ptr<Member>>& group,
                   std::function<Outcomes()> body, std::function<bool()> report_left) {
    std::vector<std::shared_ptr<ActiveRun>> runs;
    std::vector<std::shared_ptr<SlotContext>> contexts;
    for (const auto& m : group) {
      runs.push_back(m->run);
      contexts.push_back(m->context);
    }
    std::string trainer_log, abandon_reason;
    bool over_run_limit = false, stuck = false;
    Outcomes outcomes = TrainWatched(index, runs, contexts, std::move(body), report_left,
                                     group.front()->config.train.max_run_seconds, &trainer_log,
                                     &abandon_reason, &over_run_limit, &stuck);
    if (report_left && !stuck) report_left();
    for (size_t i = 0; i < group.size(); ++i) {
      Member& m = *group[i];
      if (m.reported) continue;  // it left its gang and was reported then
      m.outcome = std::move(outcomes[i]);
      m.log_tail.Add(trainer_log);
      m.abandon_reason = abandon_reason;
      m.over_run_limit = over_run_limit;
      m.stuck = stuck;
      if (!abandon_reason.empty()) {
        m.origin = over_run_limit ? FailureOrigin::kRunLimit : FailureOrigin::kNoProgress;
      }
    }
  };
  if (gang) {
    auto gang_trainer = std::make_shared<GangTrainer>(device, &datasets_);
    // Members that left the gang while the others train on, queued by the trainer's
    // thread and reported by the slot's (report_left below).
    struct Departures {
      Mutex mutex;
      std::vector<std::pair<std::shared_ptr<Member>, StatusOr<TrainOutcome>>> left
          RESWEEP_GUARDED_BY(mutex);
    };
    auto departures = std::make_shared<Departures>();
    auto host_fault_reported = std::make_shared<std::atomic<bool>>(false);
    std::vector<GangMember> gang_members;
    for (const auto& m : members) {
      m->gang_host_fault_reported = host_fault_reported;
      GangMember g;
      g.seed = m->lease.seed();
      g.resume = std::move(m->resume);
      g.context = m->context.get();
      g.on_left = [departures, m](const StatusOr<TrainOutcome>& r) {
        MutexLock lock(&departures->mutex);
        departures->left.emplace_back(m, r);
        m->run->left = true;
      };
      gang_members.push_back(std::move(g));
    }
    // A member stopped because the slot gave up on the gang (progress deadline, run
    // limit) is reported with the others once the trainer returns, with that reason.
    auto report_left = [this, departures]() {
      std::vector<std::pair<std::shared_ptr<Member>, StatusOr<TrainOutcome>>> left;
      {
        MutexLock lock(&departures->mutex);
        left.swap(departures->left);
      }
      bool reported = false;
      for (auto& [m, r] : left) {
        if (m->run->abandoned || m->reported) continue;
        m->outcome = std::move(r);
        FinishMember(m.get());
        reported = true;
      }
      return reported;
    };
    const RunConfig config = members.front()->config;
    train(
        members,
        [gang_trainer, config, gang_members = std::move(gang_members), members] {
          return gang_trainer->Train(config, gang_members);
        },
        report_left);
    return;
  }
  bool retired = false;  // a trainer got stuck: the slot trains nothing more
  for (const auto& m : members) {
    if (stopping_ || retired) {
      m->outcome = CancelledError(retired ? "its slot's trainer is stuck" : "worker shutting down");
      m->give_back = true;
      continue;
    }
    std::shared_ptr<Trainer> trainer = m->config.trainer.kind == "synthetic" ? synthetic : libtorch;
    train(
        {m},
        [trainer, m] {
          return Outcomes{trainer->Train(m->config, m->lease.seed(), m->resume, m->context.get())};
        },
        nullptr);
    retired = m->stuck;
  }
}

void Worker::FinishMember(Member* m) {
  if (m->reported.exchange(true)) return;
  const std::shared_ptr<ActiveRun>& run = m->run;
  const StatusOr<TrainOutcome>& outcome = m->outcome;
  SlotContext* context = m->context.get();
  const std::string id = worker_id();
  const int64_t finish_budget_ms = 60000;  // ride out a coordinator restart, then give up
  auto release = [&](const std::string& reason, int64_t give_up_ms, int64_t deadline_ms) {
    v1::ReleaseRunRequest rel;
    rel.set_worker_id(id);
    rel.set_run_id(run->run_id);
    rel.set_attempt(run->attempt);
    rel.set_reason(reason);
    v1::ReleaseRunResponse r;
    return CallCoordinator("ReleaseRun", give_up_ms, deadline_ms,
                           &v1::Coordinator::Stub::ReleaseRun, rel, &r);
  };
  if (outcome.ok()) {
    v1::CompleteRunRequest done;
    done.set_worker_id(id);
    done.set_run_id(run->run_id);
    done.set_attempt(run->attempt);
    done.set_param_count(outcome->param_count);
    v1::CompleteRunResponse r;
    Status cst = CallCoordinator("CompleteRun", finish_budget_ms, kCallTimeoutMs,
                                 &v1::Coordinator::Stub::CompleteRun, done, &r);
    if (cst.ok()) {
      if (run_metrics_.completed) run_metrics_.completed->Increment();
      spdlog::info("run {} attempt {} finished", run->run_id, run->attempt);
      // Its checkpoints are of no further use (the id names one directory only).
      if (!options_.checkpoint_dir.empty() && IsValidRunId(run->run_id)) {
        if (Status removed = RemoveTree(options_.checkpoint_dir + "/" + run->run_id);
            !removed.ok()) {
          spdlog::warn("run {}: its checkpoints stay: {}", run->run_id, removed.message());
        }
      }
    } else {
      spdlog::warn("run {} attempt {}: completion refused: {}", run->run_id, run->attempt,
                   cst.message());
    }
  } else if (context->refused() || run->stop.load()) {
    // The coordinator moved on (cancelled, or this attempt is stale): drop the run.
    std::string reason;
    {
      MutexLock lock(&mutex_);
      reason = run->stop_reason;
    }
    if (run_metrics_.dropped) run_metrics_.dropped->Increment();
    spdlog::warn("run {} attempt {} dropped: {}", run->run_id, run->attempt,
                 reason.empty() ? outcome.status().message() : reason);
  } else if ((stopping_ || m->give_back) && m->abandon_reason.empty()) {
    Status rst = release(m->stuck       ? "worker shutting down (its trainer would not stop)"
                         : m->give_back ? outcome.status().message()
                                        : "worker shutting down",
                         5000, 3000);
    if (run_metrics_.given_back) run_metrics_.given_back->Increment();
    spdlog::info("run {} attempt {} released: {}", run->run_id, run->attempt,
                 rst.ok() ? "ok" : rst.message());
  } else {
    std::string reason = m->abandon_reason.empty() ? outcome.status().message() : m->abandon_reason;
    if (m->stuck) reason += "; " + outcome.status().message() + " (its thread is left blocked)";
    const FailureClass fc =
        ClassifyFailure(outcome.status(), m->origin, context->checkpoint_unusable());
    if (fc.fault == FaultKind::kHost && m->gang_host_fault_reported &&
        m->gang_host_fault_reported->exchange(true)) {
      // Another member of the gang reported this incident: one host fault, not F.
      Status rst = release("host fault of its gang, reported with another of its runs: " + reason,
                           finish_budget_ms, kCallTimeoutMs);
      if (run_metrics_.given_back) run_metrics_.given_back->Increment();
      spdlog::error("run {} attempt {}: host fault of its gang, given back: {}{}", run->run_id,
                    run->attempt, reason, rst.ok() ? "" : " (refused: " + rst.message() + ")");
    } else {
      v1::FailRunRequest fail;
      fail.set_worker_id(id);
      fail.set_run_id(run->run_id);
      fail.set_attempt(run->attempt);
      fail.set_reason(reason);
      fail.set_fault(fc.fault == FaultKind::kHost ? v1::FailRunRequest::FAULT_HOST
                                                  : v1::FailRunRequest::FAULT_RUN);
      fail.set_retryable(fc.retryable);
      fail.set_checkpoint_unusable(fc.checkpoint_unusable);
      fail.set_log_tail(m->log_tail.Text());
      v1::FailRunResponse r;
      Status fst = CallCoordinator("FailRun", finish_budget_ms, kCallTimeoutMs,
                                   &v1::Coordinator::Stub::FailRun, fail, &r);
      if (run_metrics_.failed) run_metrics_.failed->Increment();
      const std::string refused = fst.ok() ? "" : " (report refused: " + fst.message() + ")";
      if (fc.fault == FaultKind::kHost) {
        spdlog::error(
            "run {} attempt {}: host fault, a problem of this worker rather than of the run (given "
            "back without using up an attempt; repeated host faults quarantine this worker): "
            "{}{}",
            run->run_id, run->attempt, reason, refused);
      } else {
        spdlog::error("run {} attempt {} failed: {}{}", run->run_id, run->attempt, reason, refused);
      }
    }
  }
  MutexLock lock(&mutex_);
  active_.erase(m->lease.slot());
}

void Worker::HeartbeatLoop() {
  while (!stopping_) {
    int64_t period;
    {
      // Until registration tells the interval, look again soon.
      MutexLock lock(&mutex_);
      period = worker_id_.empty() ? 200 : heartbeat_ms_;
    }
    SleepFor(period);
    if (stopping_) break;
    v1::HeartbeatRequest req;
    {
      MutexLock lock(&mutex_);
      if (worker_id_.empty()) continue;
      req.set_worker_id(worker_id_);
      for (const auto& [slot, run] : active_) {
        auto* l = req.add_leases();
        l->set_run_id(run->run_id);
        l->set_attempt(run->attempt);
        l->set_epoch(run->epoch.load());
        l->set_progress(run->progress.load());
      }
    }
    grpc::ClientContext ctx;
    PrepareCall(&ctx, std::max<int64_t>(period, 1000));
    v1::HeartbeatResponse resp;
    grpc::Status st = stub_->Heartbeat(&ctx, req, &resp);
    if (!st.ok()) {
      spdlog::warn("heartbeat: {}", st.error_message());
      continue;
    }
    if (resp.unknown_worker()) {
      HandleUnknownWorker();
      continue;
    }
    MutexLock lock(&mutex_);
    for (const auto& v : resp.verdicts()) {
      if (v.action() != v1::LeaseVerdict::STOP) continue;
      for (auto& [slot, run] : active_) {
        if (run->run_id == v.run_id() && run->attempt == v.attempt() && !run->stop) {
          spdlog::warn("coordinator stops run {} attempt {}: {}", v.run_id(), v.attempt(),
                       v.reason());
          run->stop_reason = v.reason();
          run->stop = true;
        }
      }
    }
  }
}

Status Worker::Run() {
  spdlog::info("worker starting: coordinator {}, {} slot(s): {}", options_.coordinator,
               options_.devices.size(), fmt::format("{}", fmt::join(options_.devices, ",")));
  if (auto problem = DataRootProblem(options_.data_root)) {
    spdlog::warn("--data-root {}: runs whose dataset path is relative will fail to load", *problem);
  }
  std::thread heartbeat([this] { HeartbeatLoop(); });
  std::vector<std::thread> slots;
  for (size_t i = 0; i < options_.devices.size(); ++i) {
    slots.emplace_back([this, i] { SlotLoop(static_cast<int>(i)); });
  }
  for (auto& t : slots) t.join();
  {
    MutexLock lock(&mutex_);
    stopping_ = true;
  }
  wake_.NotifyAll();
  heartbeat.join();
  spdlog::info("worker stopped");
  MutexLock lock(&mutex_);
  return fatal_;
}

void Worker::Stop() {
  // Notified under the lock: once Run() sees stopping_ it may return and the worker be
  // destroyed (main.cc's detached signal thread calls this), so Stop() must not touch
  // wake_ after releasing mutex_ (found by ThreadSanitizer).
  MutexLock lock(&mutex_);
  stopping_ = true;
  for (grpc::ClientContext* ctx : acquires_in_flight_) ctx->TryCancel();
  wake_.NotifyAll();
}

}  // namespace resweep
