// Memory of the coordinator over a long synthetic load (issue 9, goal 7): `--slots`
// simulated worker slots in this process (asynchronous gRPC, one timer thread),
// registered as workers of `--slots-per-worker` slots, against the real
// resweep-coordinator binary with a fresh SQLite file, for `--seconds`.
//
// Each slot does what a resweep-worker slot does, without training: AcquireRun (on an
// empty reply it waits a random [poll/2, poll] and asks again), then one ReportEpoch
// every `--epoch-seconds` until the run's `--epochs`, then CompleteRun, and again;
// each worker heartbeats with its leases at the interval the coordinator tells it.
// Sweeps of `--sweep-runs` runs are submitted whenever fewer than two runs per slot
// are queued, so the slots stay busy.
//
// Prints the coordinator's RSS (VmRSS from /proc/PID/status) at the start, every
// `--print-seconds` (with its CPU use and the calls made), and at the end.
//
//   build/bench/soak_bench [--seconds 3600] [--slots 1024] [--epoch-seconds 5]
#include <atomic>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/bench_util.h"

namespace {

namespace v1 = resweep::v1;
using namespace resweep::bench;
using resweep::Mutex;
using resweep::MutexLock;

struct Options {
  std::string coordinator_bin = RESWEEP_COORDINATOR_BIN;
  double seconds = 3600;
  double print_seconds = 60;
  int slots = 1024;
  int slots_per_worker = 64;
  double epoch_seconds = 5;
  int epochs = 10;
  int sweep_runs = 10000;
  double poll_seconds = 1.0;
  std::string log_level = "info";
};

class Fleet {
 public:
  Fleet(const Options& o, const std::string& address) : o_(o), slots_(o.slots) {
    SimulatedWorkers fleet =
        RegisterSimulatedWorkers(address, "soak-", o.slots, o.slots_per_worker);
    stubs_ = std::move(fleet.stubs);
    worker_ids_ = std::move(fleet.ids);
    heartbeat_ms_ = fleet.heartbeat_ms;
  }
  // The caller stops the coordinator first, so calls in flight end quickly.
  ~Fleet() {
    stopping_ = true;
    while (in_flight_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    timers_.reset();
  }

  void Start() {
    std::mt19937 rng(1);
    const int spread_ms = std::max(1, static_cast<int>(o_.poll_seconds * 1000));
    for (int s = 0; s < o_.slots; ++s) {
      timers_->RunAfter(std::chrono::milliseconds(rng() % spread_ms), [this, s] { Acquire(s); });
    }
    for (size_t w = 0; w < worker_ids_.size(); ++w) {
      timers_->RunAfter(std::chrono::milliseconds(rng() % std::max(1, heartbeat_ms_)),
                        [this, w] { Heartbeat(w); });
    }
  }
  void Stop() { stopping_ = true; }

  std::atomic<long> acquires{0}, reports{0}, completions{0}, heartbeats{0}, lost_leases{0},
      errors{0};

 private:
  struct Lease {
    std::string run_id;
    int attempt = 0;
    int epoch = 0;  // last epoch the coordinator accepted
  };
  template <typename Request, typename Response>
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
  };

  int WorkerOf(int slot) const { return slot / o_.slots_per_worker; }
  v1::Coordinator::Stub* StubOf(int slot) { return stubs_[WorkerOf(slot)].get(); }

  std::chrono::milliseconds PollDelay() {
    static thread_local std::mt19937 rng{std::random_device{}()};
    const int poll_ms = static_cast<int>(o_.poll_seconds * 1000);
    return std::chrono::milliseconds(std::uniform_int_distribution<int>(poll_ms / 2, poll_ms)(rng));
  }
  std::chrono::milliseconds EpochDelay() const {
    return std::chrono::milliseconds(static_cast<int64_t>(o_.epoch_seconds * 1000));
  }
  void Later(std::chrono::milliseconds delay, std::function<void()> fn) {
    if (!stopping_) timers_->RunAfter(delay, std::move(fn));
  }
  void Failed(const char* what, const grpc::Status& st) {
    if (stopping_) return;
    if (errors.fetch_add(1) < 5) {
      std::fprintf(stderr, "soak_bench: %s: %s\n", what, st.error_message().c_str());
    }
  }

  void Acquire(int slot) {
    if (stopping_) return;
    auto call = std::make_shared<Call<v1::AcquireRunRequest, v1::AcquireRunResponse>>();
    call->request.set_worker_id(worker_ids_[WorkerOf(slot)]);
    call->request.set_slot(slot % o_.slots_per_worker);
    call->request.set_device("cpu");
    SetDeadline(&call->context, 30000);
    in_flight_.fetch_add(1);
    acquires.fetch_add(1);
    StubOf(slot)->async()->AcquireRun(&call->context, &call->request, &call->response,
                                      [this, slot, call](grpc::Status st) {
                                        if (!st.ok()) {
                                          Failed("AcquireRun", st);
                                          Later(PollDelay(), [this, slot] { Acquire(slot); });
                                        } else if (!call->response.has_run()) {
                                          Later(PollDelay(), [this, slot] { Acquire(slot); });
                                        } else {
                                          {
                                            MutexLock lock(&mutex_);
                                            Lease& l = slots_[slot];
                                            l.run_id = call->response.lease().run_id();
                                            l.attempt = call->response.lease().attempt();
                                            l.epoch = call->response.lease().resume_epoch();
                                          }
                                          Later(EpochDelay(), [this, slot] { Report(slot); });
                                        }
                                        in_flight_.fetch_sub(1);
                                      });
  }

  void Report(int slot) {
    if (stopping_) return;
    auto call = std::make_shared<Call<v1::ReportEpochRequest, v1::ReportEpochResponse>>();
    {
      MutexLock lock(&mutex_);
      const Lease& l = slots_[slot];
      call->request.set_worker_id(worker_ids_[WorkerOf(slot)]);
      call->request.set_run_id(l.run_id);
      call->request.set_attempt(l.attempt);
      v1::EpochMetrics* m = call->request.mutable_metrics();
      m->set_epoch(l.epoch + 1);
      m->set_train_loss(0.35);
      m->set_train_error(0.11);
      m->set_test_error(0.05 + 0.5 / (l.epoch + 1));
      m->set_test_loss(0.31);
      m->set_lr(0.1);
      m->set_seconds(o_.epoch_seconds);
    }
    SetDeadline(&call->context, 30000);
    in_flight_.fetch_add(1);
    StubOf(slot)->async()->ReportEpoch(
        &call->context, &call->request, &call->response, [this, slot, call](grpc::Status st) {
          if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
            lost_leases.fetch_add(1);  // the lease is gone: drop the run, as a worker would
            Later(std::chrono::milliseconds(0), [this, slot] { Acquire(slot); });
          } else if (!st.ok()) {
            Failed("ReportEpoch", st);
            Later(std::chrono::milliseconds(1000), [this, slot] { Report(slot); });
          } else {
            reports.fetch_add(1);
            bool done;
            {
              MutexLock lock(&mutex_);
              done = ++slots_[slot].epoch >= o_.epochs;
            }
            if (done) {
              Later(std::chrono::milliseconds(0), [this, slot] { Complete(slot); });
            } else {
              Later(EpochDelay(), [this, slot] { Report(slot); });
            }
          }
          in_flight_.fetch_sub(1);
        });
  }

  void Complete(int slot) {
    if (stopping_) return;
    auto call = std::make_shared<Call<v1::CompleteRunRequest, v1::CompleteRunResponse>>();
    {
      MutexLock lock(&mutex_);
      call->request.set_worker_id(worker_ids_[WorkerOf(slot)]);
      call->request.set_run_id(slots_[slot].run_id);
      call->request.set_attempt(slots_[slot].attempt);
      call->request.set_param_count(1000);
    }
    SetDeadline(&call->context, 30000);
    in_flight_.fetch_add(1);
    StubOf(slot)->async()->CompleteRun(
        &call->context, &call->request, &call->response, [this, slot, call](grpc::Status st) {
          if (st.ok()) {
            completions.fetch_add(1);
          } else if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
            lost_leases.fetch_add(1);
          } else {
            Failed("CompleteRun", st);
          }
          {
            MutexLock lock(&mutex_);
            slots_[slot] = Lease{};
          }
          Later(std::chrono::milliseconds(0), [this, slot] { Acquire(slot); });
          in_flight_.fetch_sub(1);
        });
  }

  void Heartbeat(size_t worker) {
    if (stopping_) return;
    auto call = std::make_shared<Call<v1::HeartbeatRequest, v1::HeartbeatResponse>>();
    call->request.set_worker_id(worker_ids_[worker]);
    {
      MutexLock lock(&mutex_);
      for (int s = worker * o_.slots_per_worker;
           s < std::min<int>(o_.slots, (worker + 1) * o_.slots_per_worker); ++s) {
        if (slots_[s].run_id.empty()) continue;
        v1::LeaseProgress* p = call->request.add_leases();
        p->set_run_id(slots_[s].run_id);
        p->set_attempt(slots_[s].attempt);
        p->set_epoch(slots_[s].epoch);
        p->set_progress(slots_[s].epoch + 1);
      }
    }
    SetDeadline(&call->context, std::max(1000, heartbeat_ms_));
    in_flight_.fetch_add(1);
    heartbeats.fetch_add(1);
    stubs_[worker]->async()->Heartbeat(
        &call->context, &call->request, &call->response, [this, worker, call](grpc::Status st) {
          if (!st.ok()) Failed("Heartbeat", st);
          Later(std::chrono::milliseconds(heartbeat_ms_), [this, worker] { Heartbeat(worker); });
          in_flight_.fetch_sub(1);
        });
  }

  const Options o_;
  std::vector<std::unique_ptr<v1::Coordinator::Stub>> stubs_;
  std::vector<std::string> worker_ids_;
  int heartbeat_ms_ = 5000;
  std::unique_ptr<TimerLoop> timers_ = std::make_unique<TimerLoop>();
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
  Mutex mutex_;
  std::vector<Lease> slots_ RESWEEP_GUARDED_BY(mutex_);
};

// Queued runs over all sweeps; -1 on error.
long QueuedRuns(v1::Coordinator::Stub* stub) {
  v1::ListSweepsRequest req;
  long queued = 0;
  do {  // every page
    v1::ListSweepsResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60000);
    grpc::Status st = stub->ListSweeps(&ctx, req, &resp);
    if (!st.ok()) return -1;
    for (const auto& s : resp.sweeps()) queued += s.counts().queued();
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return queued;
}

bool SubmitSweep(v1::Coordinator::Stub* stub, const Options& o, int n) {
  v1::SubmitSweepRequest req;
  req.set_spec_yaml(
      SyntheticSweepYaml("soak-" + std::to_string(n), o.sweep_runs, o.epochs, o.epoch_seconds, n));
  req.set_source_name("soak.yaml");
  v1::SubmitSweepResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 120000);
  grpc::Status st = stub->SubmitSweep(&ctx, req, &resp);
  if (!st.ok()) {
    std::fprintf(stderr, "soak_bench: SubmitSweep: %s\n", st.error_message().c_str());
  }
  return st.ok();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"soak_bench: the coordinator's memory under many synthetic slots for a long time"};
  Options o;
  app.add_option("--seconds", o.seconds, "how long the load runs")->capture_default_str();
  app.add_option("--print-seconds", o.print_seconds, "RSS printed this often")
      ->capture_default_str();
  app.add_option("--slots", o.slots, "simulated worker slots")->capture_default_str();
  app.add_option("--slots-per-worker", o.slots_per_worker, "slots per registered worker")
      ->capture_default_str();
  app.add_option("--epoch-seconds", o.epoch_seconds, "time between a slot's epoch reports")
      ->capture_default_str();
  app.add_option("--epochs", o.epochs, "epochs per run")->capture_default_str();
  app.add_option("--sweep-runs", o.sweep_runs, "runs per sweep submitted")->capture_default_str();
  app.add_option("--poll-seconds", o.poll_seconds, "idle wait between acquire attempts")
      ->capture_default_str();
  app.add_option("--coordinator-bin", o.coordinator_bin)->capture_default_str();
  app.add_option("--log-level", o.log_level, "the coordinator's")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (SyntheticSweepYaml("x", o.sweep_runs, o.epochs, o.epoch_seconds).empty()) {
    std::fprintf(stderr, "soak_bench: no sweep shape for %d runs\n", o.sweep_runs);
    return 2;
  }

  std::printf(
      "soak_bench: %d slots (%d per worker), a report every %.1f s per slot, %d epochs "
      "per run, %.0f s, %u cores, load %s\n",
      o.slots, o.slots_per_worker, o.epoch_seconds, o.epochs, o.seconds,
      std::thread::hardware_concurrency(), LoadAverage().c_str());
  CoordinatorUnderTest coordinator(
      o.coordinator_bin,
      {"--log-level", o.log_level, "--max-runs-per-sweep", std::to_string(o.sweep_runs)});
  auto admin = v1::Coordinator::NewStub(MakeChannel(coordinator.address(), -1));
  int sweeps = 0;
  if (!SubmitSweep(admin.get(), o, sweeps++)) return 1;
  std::vector<double> rss_mib;
  long max_rss = 0;
  {
    Fleet fleet(o, coordinator.address());
    const long rss_start = ProcessRssKib(coordinator.pid());
    rss_mib.push_back(rss_start / 1024.0);
    std::printf("%7s %9s %9s %10s %10s %8s %7s %6s %7s\n", "t s", "RSS MiB", "CPU %", "reports/s",
                "runs done", "acquires", "sweeps", "lost", "errors");
    std::printf("%7.0f %9.1f %9s %10s %10s %8s %7d %6s %7s\n", 0.0, rss_start / 1024.0, "-", "-",
                "-", "-", sweeps, "-", "-");
    std::fflush(stdout);
    fleet.Start();
    const auto start = SteadyClock::now();
    auto last_print = start;
    double last_cpu = ProcessCpuSeconds(coordinator.pid());
    long last_reports = 0;
    auto next_check = start;
    while (true) {
      const double elapsed = SecondsSince(start);
      const bool end = elapsed >= o.seconds;
      if (SteadyClock::now() >= next_check && !end) {
        next_check += std::chrono::seconds(10);
        const long queued = QueuedRuns(admin.get());
        if (queued >= 0 && queued < 2L * o.slots) SubmitSweep(admin.get(), o, sweeps++);
      }
      const double since_print = SecondsSince(last_print);
      if (since_print >= o.print_seconds || end) {
        const long rss = ProcessRssKib(coordinator.pid());
        max_rss = std::max(max_rss, rss);
        const double cpu = ProcessCpuSeconds(coordinator.pid());
        const long reports = fleet.reports.load();
        std::printf("%7.0f %9.1f %9.1f %10.0f %10ld %8ld %7d %6ld %7ld\n", elapsed, rss / 1024.0,
                    100 * (cpu - last_cpu) / since_print, (reports - last_reports) / since_print,
                    fleet.completions.load(), fleet.acquires.load(), sweeps,
                    fleet.lost_leases.load(), fleet.errors.load());
        std::fflush(stdout);
        rss_mib.push_back(rss / 1024.0);
        last_print = SteadyClock::now();
        last_cpu = cpu;
        last_reports = reports;
      }
      if (end) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    fleet.Stop();
    coordinator.Stop();
  }
  std::printf("\ncoordinator RSS, MiB: start %.1f, end %.1f (%+.1f), highest sample %.1f\n",
              rss_mib.front(), rss_mib.back(), rss_mib.back() - rss_mib.front(), max_rss / 1024.0);
  std::printf("load after: %s\n", LoadAverage().c_str());
  return 0;
}
