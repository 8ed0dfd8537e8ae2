// What idle worker slots cost the coordinator, and how soon a queued run reaches one
// (issue 9, goal 4). Black box: the real resweep-coordinator binary on loopback with a
// fresh SQLite file, and `--slots` simulated slots in this process (asynchronous gRPC
// calls, one timer thread), registered as workers of `--slots-per-worker` slots each.
//
// Each slot calls AcquireRun the way resweep-worker's slot loop does (worker/worker.cc,
// Worker::SlotLoop): on an empty reply it sleeps a random time in [poll/2, poll]
// (--poll-seconds, default 1 s) and asks again. With --long-poll-ms N the request also
// sets the long-poll field named by --long-poll-field (default wait_ms) to N and the
// slot asks again at once; the benchmark refuses to run if AcquireRunRequest has no
// such field. Each worker heartbeats at the interval the coordinator tells it, with no
// leases, as an idle worker does.
//
// Phase 1: the coordinator's CPU use over `--seconds`, in `--windows` windows, from
// /proc/PID/stat (utime + stime) against wall time, as % of one core.
// Phase 2: `--tries` times, a 1-run sweep is submitted (at a random moment of the
// slots' polling cycle) and the time until a slot's AcquireRun reply carries it is
// measured; the slot reports its one epoch, completes it, and goes back to polling.
//
//   build/bench/idle_bench [--slots 1024] [--seconds 30] [--tries 10] [--long-poll-ms N]
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <CLI/CLI.hpp>

#include "bench/bench_util.h"

namespace {

namespace v1 = resweep::v1;
using namespace resweep::bench;
using resweep::CondVar;
using resweep::Mutex;
using resweep::MutexLock;

struct Options {
  std::string coordinator_bin = RESWEEP_COORDINATOR_BIN;
  int slots = 1024;
  int slots_per_worker = 64;
  double poll_seconds = 1.0;
  int long_poll_ms = 0;
  std::string long_poll_field = "wait_ms";
  double warmup_seconds = 5;
  double seconds = 30;
  int windows = 5;
  int tries = 10;
  std::string log_level = "info";
};

// A run a slot received: what it needs to finish it.
struct Pickup {
  int slot = 0;
  std::string run_id;
  int attempt = 0;
  SteadyClock::time_point at;
};

class IdleFleet {
 public:
  IdleFleet(const Options& o, const std::string& address) : o_(o) {
    // main() checked that the field exists.
    if (o.long_poll_ms > 0) {
      long_poll_field_ = v1::AcquireRunRequest::descriptor()->FindFieldByName(o.long_poll_field);
    }
    SimulatedWorkers fleet =
        RegisterSimulatedWorkers(address, "idle-bench-", o.slots, o.slots_per_worker);
    stubs_ = std::move(fleet.stubs);
    worker_ids_ = std::move(fleet.ids);
    heartbeat_ms_ = fleet.heartbeat_ms;
    finisher_ = std::thread([this] { FinishLoop(); });
  }

  ~IdleFleet() {
    stopping_ = true;
    {
      MutexLock lock(&mutex_);
      pickups_cv_.NotifyAll();
    }
    finisher_.join();
    // The caller stopped the coordinator first, so calls in flight end quickly.
    while (in_flight_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    timers_.reset();
  }

  // Starts every slot polling (spread over one poll interval) and every heartbeat.
  void Start() {
    std::mt19937 rng(1);
    const int spread_ms = std::max(1, static_cast<int>(o_.poll_seconds * 1000));
    for (int s = 0; s < o_.slots; ++s) {
      timers_->RunAfter(std::chrono::milliseconds(rng() % spread_ms), [this, s] { Poll(s); });
    }
    for (size_t w = 0; w < worker_ids_.size(); ++w) {
      timers_->RunAfter(std::chrono::milliseconds(rng() % std::max(1, heartbeat_ms_)),
                        [this, w] { Heartbeat(w); });
    }
  }

  // No new calls from now on (before the coordinator is stopped).
  void Stop() { stopping_ = true; }
  long acquire_calls() const { return acquire_calls_.load(); }
  long errors() const { return errors_.load(); }

  // Waits up to timeout_s for a slot to receive `run_id`; the moment its reply came.
  bool WaitForPickup(const std::string& run_id, double timeout_s, SteadyClock::time_point* at) {
    MutexLock lock(&mutex_);
    const auto deadline = SteadyClock::now() + std::chrono::duration<double>(timeout_s);
    while (true) {
      auto it = picked_at_.find(run_id);
      if (it != picked_at_.end()) {
        *at = it->second;
        return true;
      }
      const auto now = SteadyClock::now();
      if (now >= deadline) return false;
      pickups_cv_.WaitFor(&mutex_, deadline - now);
    }
  }
  // Waits until `count` runs have been completed by the slots.
  bool WaitForCompleted(int count, double timeout_s) {
    const auto start = SteadyClock::now();
    while (completed_.load() < count) {
      if (SecondsSince(start) > timeout_s) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }

 private:
  struct AcquireCall {
    grpc::ClientContext context;
    v1::AcquireRunRequest request;
    v1::AcquireRunResponse response;
  };
  struct HeartbeatCall {
    grpc::ClientContext context;
    v1::HeartbeatRequest request;
    v1::HeartbeatResponse response;
  };

  int WorkerOf(int slot) const { return slot / o_.slots_per_worker; }

  void Poll(int slot) {
    if (stopping_) return;
    auto call = std::make_shared<AcquireCall>();
    call->request.set_worker_id(worker_ids_[WorkerOf(slot)]);
    call->request.set_slot(slot % o_.slots_per_worker);
    call->request.set_device("cpu");
    if (long_poll_field_ != nullptr) SetLongPoll(&call->request);
    SetDeadline(&call->context, 30000 + o_.long_poll_ms);
    in_flight_.fetch_add(1);
    acquire_calls_.fetch_add(1);
    stubs_[WorkerOf(slot)]->async()->AcquireRun(&call->context, &call->request, &call->response,
                                                [this, slot, call](grpc::Status st) {
                                                  OnAcquired(slot, *call, st);
                                                  in_flight_.fetch_sub(1);
                                                });
  }

  void OnAcquired(int slot, const AcquireCall& call, const grpc::Status& st) {
    if (stopping_) return;
    if (!st.ok()) {
      errors_.fetch_add(1);
      if (errors_.load() <= 5) {
        std::fprintf(stderr, "idle_bench: AcquireRun: %s\n", st.error_message().c_str());
      }
      timers_->RunAfter(PollDelay(), [this, slot] { Poll(slot); });
      return;
    }
    if (call.response.has_run()) {
      MutexLock lock(&mutex_);
      Pickup p{slot, call.response.lease().run_id(), call.response.lease().attempt(),
               SteadyClock::now()};
      picked_at_[p.run_id] = p.at;
      pickups_.push_back(std::move(p));
      pickups_cv_.NotifyAll();
      return;  // the finisher reports, completes and polls again
    }
    if (long_poll_field_ != nullptr) {
      timers_->RunAfter(std::chrono::milliseconds(0), [this, slot] { Poll(slot); });
    } else {
      timers_->RunAfter(PollDelay(), [this, slot] { Poll(slot); });
    }
  }

  // As Worker::SlotLoop: uniform in [poll/2, poll].
  std::chrono::milliseconds PollDelay() {
    static thread_local std::mt19937 rng{std::random_device{}()};
    const int poll_ms = static_cast<int>(o_.poll_seconds * 1000);
    return std::chrono::milliseconds(std::uniform_int_distribution<int>(poll_ms / 2, poll_ms)(rng));
  }

  void SetLongPoll(v1::AcquireRunRequest* req) const {
    const google::protobuf::Reflection* r = req->GetReflection();
    using FD = google::protobuf::FieldDescriptor;
    switch (long_poll_field_->cpp_type()) {
      case FD::CPPTYPE_INT32:
        r->SetInt32(req, long_poll_field_, o_.long_poll_ms);
        break;
      case FD::CPPTYPE_INT64:
        r->SetInt64(req, long_poll_field_, o_.long_poll_ms);
        break;
      case FD::CPPTYPE_UINT32:
        r->SetUInt32(req, long_poll_field_, o_.long_poll_ms);
        break;
      case FD::CPPTYPE_UINT64:
        r->SetUInt64(req, long_poll_field_, o_.long_poll_ms);
        break;
      default:
        std::fprintf(stderr, "idle_bench: AcquireRunRequest.%s is not an integer\n",
                     o_.long_poll_field.c_str());
        std::exit(2);
    }
  }

  void Heartbeat(size_t worker) {
    if (stopping_) return;
    auto call = std::make_shared<HeartbeatCall>();
    call->request.set_worker_id(worker_ids_[worker]);
    SetDeadline(&call->context, std::max(1000, heartbeat_ms_));
    in_flight_.fetch_add(1);
    stubs_[worker]->async()->Heartbeat(
        &call->context, &call->request, &call->response, [this, worker, call](grpc::Status) {
          if (!stopping_) {
            timers_->RunAfter(std::chrono::milliseconds(heartbeat_ms_),
                              [this, worker] { Heartbeat(worker); });
          }
          in_flight_.fetch_sub(1);
        });
  }

  // Finishes each run a slot received (its one epoch, then CompleteRun), then lets the
  // slot poll again at once, as the worker's slot loop does after a run.
  void FinishLoop() {
    while (true) {
      Pickup p;
      {
        MutexLock lock(&mutex_);
        while (pickups_.empty() && !stopping_) {
          pickups_cv_.WaitFor(&mutex_, std::chrono::milliseconds(100));
        }
        if (stopping_) return;
        p = pickups_.front();
        pickups_.erase(pickups_.begin());
      }
      v1::Coordinator::Stub* stub = stubs_[WorkerOf(p.slot)].get();
      const std::string& worker_id = worker_ids_[WorkerOf(p.slot)];
      {
        v1::ReportEpochRequest req;
        req.set_worker_id(worker_id);
        req.set_run_id(p.run_id);
        req.set_attempt(p.attempt);
        req.mutable_metrics()->set_epoch(1);
        req.mutable_metrics()->set_train_loss(0.3);
        req.mutable_metrics()->set_train_error(0.1);
        req.mutable_metrics()->set_test_error(0.1);
        req.mutable_metrics()->set_test_loss(0.3);
        req.mutable_metrics()->set_lr(0.1);
        v1::ReportEpochResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx, 30000);
        grpc::Status st = stub->ReportEpoch(&ctx, req, &resp);
        if (!st.ok()) std::fprintf(stderr, "ReportEpoch: %s\n", st.error_message().c_str());
      }
      {
        v1::CompleteRunRequest req;
        req.set_worker_id(worker_id);
        req.set_run_id(p.run_id);
        req.set_attempt(p.attempt);
        v1::CompleteRunResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx, 30000);
        grpc::Status st = stub->CompleteRun(&ctx, req, &resp);
        if (!st.ok()) std::fprintf(stderr, "CompleteRun: %s\n", st.error_message().c_str());
      }
      completed_.fetch_add(1);
      const int slot = p.slot;
      timers_->RunAfter(std::chrono::milliseconds(0), [this, slot] { Poll(slot); });
    }
  }

  const Options o_;
  const google::protobuf::FieldDescriptor* long_poll_field_ = nullptr;
  std::vector<std::unique_ptr<v1::Coordinator::Stub>> stubs_;
  std::vector<std::string> worker_ids_;
  int heartbeat_ms_ = 5000;
  std::unique_ptr<TimerLoop> timers_ = std::make_unique<TimerLoop>();
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<long> acquire_calls_{0};
  std::atomic<long> errors_{0};
  std::atomic<int> completed_{0};

  Mutex mutex_;
  CondVar pickups_cv_;
  std::vector<Pickup> pickups_ RESWEEP_GUARDED_BY(mutex_);
  std::map<std::string, SteadyClock::time_point> picked_at_ RESWEEP_GUARDED_BY(mutex_);
  std::thread finisher_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"idle_bench: what idle slots cost the coordinator; how soon a run reaches one"};
  Options o;
  app.add_option("--slots", o.slots, "idle slots")->capture_default_str();
  app.add_option("--slots-per-worker", o.slots_per_worker, "slots per registered worker")
      ->capture_default_str();
  app.add_option("--poll-seconds", o.poll_seconds,
                 "idle wait between acquire attempts (resweep-worker's --poll-seconds)")
      ->capture_default_str();
  app.add_option("--long-poll-ms", o.long_poll_ms,
                 "> 0: set the request's long-poll field to this and poll again at once")
      ->capture_default_str();
  app.add_option("--long-poll-field", o.long_poll_field, "AcquireRunRequest's long-poll field")
      ->capture_default_str();
  app.add_option("--warmup-seconds", o.warmup_seconds, "before measuring CPU")
      ->capture_default_str();
  app.add_option("--seconds", o.seconds, "CPU measurement, all windows together")
      ->capture_default_str();
  app.add_option("--windows", o.windows, "CPU measurement windows")->capture_default_str();
  app.add_option("--tries", o.tries, "1-run sweeps submitted, one at a time")
      ->capture_default_str();
  app.add_option("--coordinator-bin", o.coordinator_bin)->capture_default_str();
  app.add_option("--log-level", o.log_level, "the coordinator's")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (o.long_poll_ms > 0 &&
      v1::AcquireRunRequest::descriptor()->FindFieldByName(o.long_poll_field) == nullptr) {
    std::fprintf(stderr,
                 "idle_bench: AcquireRunRequest has no field '%s': this coordinator API has no "
                 "long-poll (run without --long-poll-ms)\n",
                 o.long_poll_field.c_str());
    return 2;
  }
  char mode[128];
  if (o.long_poll_ms > 0) {
    std::snprintf(mode, sizeof(mode), "long-poll %s=%d ms", o.long_poll_field.c_str(),
                  o.long_poll_ms);
  } else {
    std::snprintf(mode, sizeof(mode), "polling every %.3g-%.3g s", o.poll_seconds / 2,
                  o.poll_seconds);
  }
  std::printf("idle_bench: %d slots (%d per worker), %s, %u cores, load %s\n", o.slots,
              o.slots_per_worker, mode, std::thread::hardware_concurrency(), LoadAverage().c_str());
  std::fflush(stdout);
  CoordinatorUnderTest coordinator(o.coordinator_bin, {"--log-level", o.log_level});
  auto admin = v1::Coordinator::NewStub(MakeChannel(coordinator.address(), -1));
  std::vector<double> cpu_percent, pickup_ms, pickup_from_send_ms;
  long calls_measured = 0;
  double measured_seconds = 0;
  double self_cpu = 0;
  {
    IdleFleet fleet(o, coordinator.address());
    fleet.Start();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup_seconds));

    // Phase 1: CPU of the coordinator while every slot is idle.
    const double window = o.seconds / std::max(1, o.windows);
    const long calls_before = fleet.acquire_calls();
    const double self_before = ProcessCpuSeconds(getpid());
    const auto phase_start = SteadyClock::now();
    for (int w = 0; w < o.windows; ++w) {
      const double cpu0 = ProcessCpuSeconds(coordinator.pid());
      const auto t0 = SteadyClock::now();
      std::this_thread::sleep_for(std::chrono::duration<double>(window));
      const double cpu1 = ProcessCpuSeconds(coordinator.pid());
      const double wall = SecondsSince(t0);
      cpu_percent.push_back(100 * (cpu1 - cpu0) / wall);
      std::printf("window %d: coordinator CPU %.1f%% of a core over %.1f s\n", w + 1,
                  cpu_percent.back(), wall);
      std::fflush(stdout);
    }
    measured_seconds = SecondsSince(phase_start);
    calls_measured = fleet.acquire_calls() - calls_before;
    self_cpu = ProcessCpuSeconds(getpid()) - self_before;

    // Phase 2: how soon a queued run reaches an idle slot.
    std::mt19937 rng(7);
    for (int t = 0; t < o.tries; ++t) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(300 + rng() % std::max(1, int(o.poll_seconds * 1000))));
      v1::SubmitSweepRequest req;
      req.set_spec_yaml(
          SyntheticSweepYaml("idle-bench-pickup-" + std::to_string(t), 1, 1, 0.05, t));
      req.set_source_name("idle-bench.yaml");
      v1::SubmitSweepResponse resp;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, 30000);
      const auto sent = SteadyClock::now();
      grpc::Status st = admin->SubmitSweep(&ctx, req, &resp);
      const auto queued = SteadyClock::now();
      if (!st.ok() || resp.runs_new() != 1) {
        std::fprintf(stderr, "idle_bench: SubmitSweep: %s (%d new runs)\n",
                     st.error_message().c_str(), resp.runs_new());
        return 1;
      }
      // The sweep's one run: ask for its id.
      v1::ListRunsRequest list;
      list.set_sweep_id(resp.sweep_id());
      v1::ListRunsResponse runs;
      grpc::ClientContext list_ctx;
      SetDeadline(&list_ctx, 30000);
      st = admin->ListRuns(&list_ctx, list, &runs);
      if (!st.ok() || runs.runs_size() != 1) {
        std::fprintf(stderr, "idle_bench: ListRuns: %s\n", st.error_message().c_str());
        return 1;
      }
      SteadyClock::time_point at;
      if (!fleet.WaitForPickup(runs.runs(0).run_id(), 60, &at)) {
        std::fprintf(stderr, "idle_bench: no slot received run %s within 60 s\n",
                     runs.runs(0).run_id().c_str());
        return 1;
      }
      pickup_ms.push_back(std::chrono::duration<double, std::milli>(at - queued).count());
      pickup_from_send_ms.push_back(std::chrono::duration<double, std::milli>(at - sent).count());
      std::printf(
          "try %d: a slot had the run %.1f ms after the submission's reply (%.1f ms "
          "after it was sent)\n",
          t + 1, pickup_ms.back(), pickup_from_send_ms.back());
      std::fflush(stdout);
      if (!fleet.WaitForCompleted(t + 1, 60)) {
        std::fprintf(stderr, "idle_bench: the run was not completed\n");
        return 1;
      }
    }
    if (fleet.errors() > 0) std::printf("AcquireRun errors: %ld\n", fleet.errors());
    fleet.Stop();
    coordinator.Stop();
  }

  std::printf("\n%d idle slots, %.0f s in %d windows:\n", o.slots, o.seconds, o.windows);
  std::printf("  coordinator CPU, %% of one core   %s\n", Spread(cpu_percent, 1).c_str());
  std::printf("  AcquireRun calls/s               %.0f\n", calls_measured / measured_seconds);
  std::printf("  this client's CPU, %% of one core %.1f\n", 100 * self_cpu / measured_seconds);
  std::printf("pickup of a 1-run sweep, ms (median (min-max) over %d tries):\n", o.tries);
  std::printf("  after the submission's reply     %s\n", Spread(pickup_ms, 1).c_str());
  std::printf("  after the submission was sent    %s\n", Spread(pickup_from_send_ms, 1).c_str());
  std::printf("load after: %s\n", LoadAverage().c_str());
  return 0;
}
