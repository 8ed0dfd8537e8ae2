// The gRPC face of the Scheduler. Handlers are thin: decode the request, call the
// scheduler, encode the reply. Uses the callback API; every handler finishes its
// reactor before returning.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "coordinator/auth.h"
#include "coordinator/scheduler.h"
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
  // `tokens` (may be null: every call allowed) must outlive the service.
  CoordinatorService(Scheduler* scheduler, const TokenTable* tokens)
      : scheduler_(scheduler), tokens_(tokens) {}
  LatencyRecorder& latency() { return latency_; }

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

  Scheduler* const scheduler_;
  const TokenTable* const tokens_;
  LatencyRecorder latency_;
};

}  // namespace resweep
