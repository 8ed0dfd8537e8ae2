// The worker process: registers with the coordinator, then each slot (one per
// device) loops acquire -> train -> report. A heartbeat thread renews every lease
// and stops a slot's run when the coordinator says so (cancelled, or the lease was
// lost and another attempt owns the run).
//
// Coordinator outages are ridden out: every call is retried with exponential
// backoff and full jitter; a worker the coordinator does not know registers again.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/channel.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "common/status.h"
#include "resweep/v1/resweep.grpc.pb.h"
#include "worker/dataset.h"
#include "worker/trainer.h"

namespace resweep {

struct WorkerOptions {
  std::string coordinator = "127.0.0.1:50051";
  std::string name;                  // default: host name
  std::vector<std::string> devices;  // one slot each: "cpu", "cuda:0", ...
  std::string data_root = "/data";
  bool allow_absolute_data_paths = false;             // else dataset.path stays under data_root
  int64_t dataset_cache_bytes = int64_t{2048} << 20;  // data sets kept loaded (LRU)
  // Non-empty: checkpoints are written here (a filesystem every worker mounts, at
  // any mount point) instead of being uploaded to the coordinator.
  std::string checkpoint_dir;
  ClientSecurity security;  // TLS roots, client certificate, worker token
  // Idle slots: each AcquireRun asks the coordinator to hold it up to acquire_wait_ms
  // for a run (long-poll; 0 = never). A coordinator that does not long-poll answers
  // at once, and then the slot waits poll_ms between acquires itself.
  int poll_ms = 1000;
  int acquire_wait_ms = 20000;
  int max_backoff_ms = 5000;
  // A call retried through an outage logs its first failure, then at most one line
  // per this interval (with the address, attempt count, error and next wait).
  int retry_log_interval_ms = 5000;
  // Progress deadline: a run whose trainer reports neither a batch nor an epoch for
  // max(progress_floor_ms, progress_factor x the longest epoch of this attempt so
  // far) is stopped and given back as a host fault. (Time spent in calls to the
  // coordinator does not count.)
  int64_t progress_floor_ms = 600000;
  double progress_factor = 3.0;
  // A trainer that has not returned this long after it was told to stop is left
  // behind: the run is given back anyway, the trainer's thread stays blocked, and its
  // slot takes no more runs (a worker left with no slot exits with an error).
  int64_t stuck_trainer_grace_ms = 30000;
  // The synthetic trainer's hang settings (trainer.hang_at_epoch, hang_ignores_stop)
  // exist to test the watchdog; a worker refuses runs that use them (a run fault)
  // unless started with --allow-test-hooks, so no submitter can retire its slots.
  bool allow_test_hooks = false;
  // Gangs (issue 13): each slot asks for up to this many runs of one grid cell at once
  // and trains them as one fused network (worker/fused_trainer.h), each run keeping
  // its own lease, reports, checkpoints and result. The coordinator then counts this
  // many lease slots per slot. 1 = off (one run per slot).
  int fuse_seeds = 1;
  // Non-null: the worker records its metrics here (see docs/http-api.md; served by
  // --metrics-listen). Must outlive the worker.
  MetricsRegistry* metrics = nullptr;
};

// Expands --device into one entry per slot: auto (every CUDA device, else cpu), cpu,
// all (every CUDA device), or a list such as cuda:0,cuda:2. `cpu_slots` copies of
// "cpu" for the CPU; `runs_per_gpu` copies of each GPU (runs that share it, each on
// its own CUDA stream). `available_gpus` < 0: as many as LibTorch sees.
StatusOr<std::vector<std::string>> ResolveDevices(const std::string& spec, int cpu_slots,
                                                  int runs_per_gpu = 1, int available_gpus = -1);

// Default runs per GPU (--runs-per-gpu): on one H200 (bench/README.md, "GPU"), four
// eager runs at once trained 1.3x (ResNet-20) to 1.7x (ResNet-110) the images/s of
// one, and eight no more than four.
constexpr int kDefaultRunsPerGpu = 4;

// What is wrong with --data-root as the folder relative dataset paths are found
// in (it does not exist, is not a directory, cannot be examined), or nullopt.
std::optional<std::string> DataRootProblem(const std::string& data_root);

class Worker {
 public:
  explicit Worker(WorkerOptions options);
  ~Worker();

  // Runs until Stop(); returns OK after a clean stop, or the error that made the
  // worker give up (the coordinator refused to register it).
  Status Run();
  // Asks every slot to end its run and give the lease back, then Run() returns.
  // Safe from any thread (not from a signal handler: use a sigwait thread).
  void Stop();
  // Trainer threads left blocked (see WorkerOptions::stuck_trainer_grace_ms). They
  // still use this object's state, so a process with any should end with _Exit
  // rather than destroy the worker.
  int stuck_trainers() const { return stuck_trainers_.load(); }

 private:
  struct ActiveRun {
    std::string run_id;
    int attempt = 0;
    std::atomic<int> epoch{0};
    std::atomic<bool> stop{false};  // set by heartbeat verdicts or Stop()
    std::string stop_reason;        // protected by Worker::mutex_
    // Progress, on the steady clock (ms): the newest batch or epoch, the longest
    // epoch of this attempt, and whether a call to the coordinator is under way (the
    // trainer waits for it; that is not a hang).
    std::atomic<int64_t> last_progress_ms{0};
    std::atomic<int64_t> progress{0};  // batches + epochs trained; heartbeats carry it
    std::atomic<int64_t> longest_epoch_ms{0};
    std::atomic<bool> in_call{false};
    // The slot gave up on the trainer (progress deadline, train.max_run_seconds).
    std::atomic<bool> abandoned{false};
    // Reported while the rest of its gang trains on (it left the gang early).
    std::atomic<bool> left{false};
  };
  class SlotContext;
  struct TrainerJob;
  struct Member;
  // What the worker records in WorkerOptions::metrics: per slot, the newest epoch's
  // throughput and time; runs by how they ended.
  struct SlotMetrics {
    Gauge* images_per_second = nullptr;
    Gauge* epoch_seconds = nullptr;
  };
  struct RunMetrics {
    Counter* completed = nullptr;
    Counter* failed = nullptr;
    Counter* given_back = nullptr;
    Counter* dropped = nullptr;
  };
  // Registers the series (with options_.metrics) and the device memory collector.
  void RegisterMetrics();
  using Outcomes = std::vector<StatusOr<TrainOutcome>>;

  // Slot `index` holds the coordinator's lease slots index*F .. index*F+F-1 (F =
  // fuse_seeds) and trains what it leases there: one run, or a gang.
  void SlotLoop(int index);
  // Parses and checks a leased run's config and fetches its checkpoint; on a problem
  // sets the member's outcome and origin, and returns false.
  bool PrepareMember(Member* m);
  // Trains the prepared members: one alone, several of one config that can be fused
  // as a gang, otherwise one after another. A gang member that leaves early is
  // reported at once, by the slot's thread while the others train on.
  void TrainMembers(int index, const torch::Device& device,
                    const std::vector<std::shared_ptr<Member>>& members,
                    const std::shared_ptr<Trainer>& libtorch,
                    const std::shared_ptr<Trainer>& synthetic);
  // Tells the coordinator how the member's run ended (complete, failed, given back or
  // dropped) and frees its lease slot; once per member, on the slot's thread.
  void FinishMember(Member* m);
  // Runs `train` (one run or a gang) on a thread of its own while the slot watches
  // the progress of `runs`: past the deadline, or past the sweep's
  // train.max_run_seconds (*over_run_limit), every run is abandoned (*abandon_reason
  // says why) and the trainer stopped. Runs that left their gang are not watched. A
  // trainer that does not return within stuck_trainer_grace_ms of all its runs being
  // stopped is left behind (*stuck): every result is then CANCELLED.
  // `report_left` (may be empty), called on the slot's thread while it watches and
  // once after the trainer returns, reports runs that left their gang; true when it
  // reported any.
  Outcomes TrainWatched(int index, const std::vector<std::shared_ptr<ActiveRun>>& runs,
                        const std::vector<std::shared_ptr<SlotContext>>& contexts,
                        std::function<Outcomes()> train, const std::function<bool()>& report_left,
                        double max_run_seconds, std::string* trainer_log,
                        std::string* abandon_reason, bool* over_run_limit, bool* stuck);
  void HeartbeatLoop();
  // Ensures the worker is registered; false when stopping.
  bool EnsureRegistered();
  std::string worker_id();
  // Retries `call` on UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED with
  // jittered backoff until it succeeds, fails otherwise, `give_up_ms` passes (0 =
  // until Stop), or Stop(); failures are logged as WorkerOptions says.
  Status Retry(const char* what, int64_t give_up_ms, const std::function<grpc::Status()>& call);
  // One call of `method`, with a deadline of `deadline_ms` and the token, retried
  // as Retry() does.
  template <typename Request, typename Response>
  using StubMethod = grpc::Status (v1::Coordinator::Stub::*)(grpc::ClientContext*, const Request&,
                                                             Response*);
  template <typename Request, typename Response>
  Status CallCoordinator(const char* what, int64_t give_up_ms, int64_t deadline_ms,
                         StubMethod<Request, Response> method, const Request& request,
                         Response* response);
  void SleepFor(int64_t ms);  // returns early on Stop()
  // Deadline and token for one call.
  void PrepareCall(grpc::ClientContext* ctx, int64_t deadline_ms) const;
  void HandleUnknownWorker();

  const WorkerOptions options_;
  // Set up in the constructor, then only recorded into (lock-free). Empty / null
  // without options_.metrics.
  std::vector<SlotMetrics> slot_metrics_;
  RunMetrics run_metrics_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
  DatasetCache datasets_;

  std::atomic<bool> stopping_{false};
  Mutex register_mutex_;  // held across a RegisterWorker call; never with mutex_ first
  Mutex mutex_;
  CondVar wake_;
  std::string worker_id_ RESWEEP_GUARDED_BY(mutex_);
  int64_t lease_ms_ RESWEEP_GUARDED_BY(mutex_) = 30000;
  int64_t heartbeat_ms_ RESWEEP_GUARDED_BY(mutex_) = 5000;
  // By lease slot (the coordinator's slot numbers: see SlotLoop).
  std::map<int, std::shared_ptr<ActiveRun>> active_ RESWEEP_GUARDED_BY(mutex_);
  // AcquireRun calls in flight (long-polls): Stop cancels them.
  std::set<grpc::ClientContext*> acquires_in_flight_ RESWEEP_GUARDED_BY(mutex_);
  Status fatal_ RESWEEP_GUARDED_BY(mutex_);  // why the worker gave up, if it did
  std::atomic<int> stuck_trainers_{0};
  std::atomic<int> retired_slots_{0};
  // The end of the newest quarantine the coordinator reported (logged once each).
  std::atomic<int64_t> quarantine_logged_until_ms_{0};
};

}  // namespace resweep
