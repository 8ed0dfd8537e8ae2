// The gRPC face of the Scheduler. Handlers are thin: decode the request, call the
// scheduler, encode the reply. Uses the callback API. Worker calls (acquire,
// heartbeat, epoch reports, the ends of attempts, shared checkpoints) do not run on
// gRPC's threads: they are handed to the write batcher (group commit) and their
// reactor is finished once the batch is durable; an AcquireRun with wait_ms that
// finds nothing queued is parked (long-poll) until a run may be leasable or its bound
// passes. The other handlers finish their reactor before returning.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "coordinator/auth.h"
#include "coordinator/parked_calls.h"
#include "coordinator/scheduler.h"
#include "coordinator/service_metrics.h"
#include "coordinator/write_batcher.h"
#include "resweep/v1/resweep.grpc.pb.h"

namespace resweep {

// Handler latency per method: a bounded sample (the newest 100,000 calls) for
// percentiles, logged on shutdown.
class LatencyRecorder {
 public:
  void Record(const char* method, double micros);
  // "Method n=.. p50=..us p99=..us max=..us" per method, one per line.
  std::string Summary();

 private:
  struct Samples {
    std::vector<double> micros;
    size_t next = 0;
    int64_t count = 0;
  };
  Mutex mutex_;
  std::map<std::string, Samples> by_method_ RESWEEP_GUARDED_BY(mutex_);
};

class CoordinatorService final : public v1::Coordinator::CallbackService {
 public:
  // `scheduler`, `tokens` (may be null: every call allowed) and `metrics` (may be
  // null: none recorded) must outlive the service; the service is the scheduler's
  // runs-queued listener, so the scheduler must not be used once the service is gone.
  CoordinatorService(Scheduler* scheduler, const TokenTable* tokens,
                     ServiceMetrics* metrics = nullptr, WriteBatcherOptions batcher_options = {});
  LatencyRecorder& latency() { return latency_; }

  // The longest AcquireRunRequest.wait_ms honoured; longer waits are cut to it.
  static constexpr int kMaxAcquireWaitMs = 60000;

  // Shutdown, in two steps around the gRPC server's: first every parked AcquireRun is
  // answered now (no lease) and none is parked any more; once the server has stopped
  // (no call in flight), the batcher runs what is queued and stops.
  void AnswerParkedCalls() { parked_.Shutdown(); }
  void StopBatcher() { batcher_.Stop(); }
  WriteBatcher::Counts batcher_counts() { return batcher_.counts(); }
  // AcquireRun calls parked now (long-poll).
  size_t parked_acquires() { return parked_.size(); }

  grpc::ServerUnaryReactor* SubmitSweep(grpc::CallbackServerContext* ctx,
                                        const v1::SubmitSweepRequest* req,
                                        v1::SubmitSweepResponse* resp) override;
  grpc::ServerUnaryReactor* ListSweeps(grpc::CallbackServerContext* ctx,
                                       const v1::ListSweepsRequest* req,
                                       v1::ListSweepsResponse* resp) override;
  grpc::ServerUnaryReactor* GetSweep(grpc::CallbackServerContext* ctx,
                                     const v1::GetSweepRequest* req,
                                     v1::GetSweepResponse* resp) override;
  grpc::ServerUnaryReactor* ListRuns(grpc::CallbackServerContext* ctx,
                                     const v1::ListRunsRequest* req,
                                     v1::ListRunsResponse* resp) override;
  grpc::ServerUnaryReactor* CancelSweep(grpc::CallbackServerContext* ctx,
                                        const v1::CancelSweepRequest* req,
                                        v1::CancelSweepResponse* resp) override;
  grpc::ServerUnaryReactor* GetResults(grpc::CallbackServerContext* ctx,
                                       const v1::GetResultsRequest* req,
                                       v1::GetResultsResponse* resp) override;
  grpc::ServerUnaryReactor* RetryRuns(grpc::CallbackServerContext* ctx,
                                      const v1::RetryRunsRequest* req,
                                      v1::RetryRunsResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteSweep(grpc::CallbackServerContext* ctx,
                                        const v1::DeleteSweepRequest* req,
                                        v1::DeleteSweepResponse* resp) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest* req,
                                        v1::ListWorkersResponse* resp) override;
  grpc::ServerUnaryReactor* GetRun(grpc::CallbackServerContext* ctx, const v1::GetRunRequest* req,
                                   v1::GetRunResponse* resp) override;
  grpc::ServerUnaryReactor* GetCurves(grpc::CallbackServerContext* ctx,
                                      const v1::GetCurvesRequest* req,
                                      v1::GetCurvesResponse* resp) override;
  grpc::ServerUnaryReactor* RegisterWorker(grpc::CallbackServerContext* ctx,
                                           const v1::RegisterWorkerRequest* req,
                                           v1::RegisterWorkerResponse* resp) override;
  grpc::ServerUnaryReactor* AcquireRun(grpc::CallbackServerContext* ctx,
                                       const v1::AcquireRunRequest* req,
                                       v1::AcquireRunResponse* resp) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatResponse* resp) override;
  grpc::ServerUnaryReactor* ReportEpoch(grpc::CallbackServerContext* ctx,
                                        const v1::ReportEpochRequest* req,
                                        v1::ReportEpochResponse* resp) override;
  grpc::ServerUnaryReactor* CompleteRun(grpc::CallbackServerContext* ctx,
                                        const v1::CompleteRunRequest* req,
                                        v1::CompleteRunResponse* resp) override;
  grpc::ServerUnaryReactor* FailRun(grpc::CallbackServerContext* ctx, const v1::FailRunRequest* req,
                                    v1::FailRunResponse* resp) override;
  grpc::ServerUnaryReactor* ReleaseRun(grpc::CallbackServerContext* ctx,
                                       const v1::ReleaseRunRequest* req,
                                       v1::ReleaseRunResponse* resp) override;
  grpc::ServerUnaryReactor* PutCheckpointChunk(grpc::CallbackServerContext* ctx,
                                               const v1::PutCheckpointChunkRequest* req,
                                               v1::PutCheckpointChunkResponse* resp) override;
  grpc::ServerUnaryReactor* GetCheckpointChunk(grpc::CallbackServerContext* ctx,
                                               const v1::GetCheckpointChunkRequest* req,
                                               v1::GetCheckpointChunkResponse* resp) override;

  grpc::ServerUnaryReactor* RecordSharedCheckpoint(
      grpc::CallbackServerContext* ctx, const v1::RecordSharedCheckpointRequest* req,
      v1::RecordSharedCheckpointResponse* resp) override;

 private:
  // OK when the call's token has a role that may make a `needed` call.
  Status Authorize(grpc::CallbackServerContext* ctx, Role needed, const char* method);
  // Digest of the call's credentials (token and client certificate).
  static std::string Identity(grpc::CallbackServerContext* ctx);
  // A worker call naming `worker_id`: a worker token, and the credentials that
  // registered that worker (PERMISSION_DENIED otherwise).
  Status AuthorizeWorker(grpc::CallbackServerContext* ctx, const char* method,
                         const std::string& worker_id);
  // Finishes the call with `status` and records its latency.
  grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, const char* method,
                                   const Status& status,
                                   std::chrono::steady_clock::time_point start);
  // The same, with the call's reactor already taken (any thread).
  void FinishReactor(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
                     const char* method, const Status& status,
                     std::chrono::steady_clock::time_point start);
  // A worker call naming `worker_id`, run on the batcher: the token is checked here,
  // the worker's identity and then `run` on the batcher's thread, inside a batch; the
  // reply goes once the batch is durable. `run` fills the response.
  grpc::ServerUnaryReactor* Batched(grpc::CallbackServerContext* ctx, const char* method,
                                    const std::string& worker_id, std::function<Status()> run);
  // An AcquireRun in progress (it may look several times: long-poll).
  struct AcquireCall;
  // Looks for a lease for `call` on the batcher; answers it, or parks it until a run
  // may be leasable (then looks again) or its deadline (then answers with no lease).
  void LookForLease(const std::shared_ptr<AcquireCall>& call);

  Scheduler* const scheduler_;
  const TokenTable* const tokens_;
  ServiceMetrics* const metrics_;  // before batcher_: its thread records commits
  LatencyRecorder latency_;
  ParkedCalls parked_;    // AcquireRun calls waiting for a run
  WriteBatcher batcher_;  // after parked_: its calls may park, so it stops first
};

}  // namespace resweep
