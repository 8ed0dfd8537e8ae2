#include "coordinator/service.h"

#include <spdlog/spdlog.h>

#include "coordinator/convert.h"

namespace resweep {

namespace {

// Finishes the call's reactor with `status`; refusals are logged at debug (they are
// part of normal operation, e.g. a stale attempt), internal errors at error.
grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, const char* method,
                                 const Status& status) {
  if (!status.ok()) {
    const auto code = status.code();
    if (code == StatusCode::kInternal || code == StatusCode::kDataLoss ||
        code == StatusCode::kUnavailable) {
      spdlog::error("{} from {}: {}", method, ctx->peer(), status.ToString());
    } else {
      spdlog::debug("{} from {} refused: {}", method, ctx->peer(), status.ToString());
    }
  }
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* CoordinatorService::SubmitSweep(grpc::CallbackServerContext* ctx,
                                                          const v1::SubmitSweepRequest* req,
                                                          v1::SubmitSweepResponse* resp) {
  auto r = scheduler_->Submit(req->spec_yaml(), req->source_name());
  if (r.ok()) {
    resp->set_sweep_id(r->sweep_id);
    resp->set_name(r->name);
    resp->set_runs_total(r->runs_total);
    resp->set_runs_new(r->runs_new);
    resp->set_already_existed(r->already_existed);
  }
  return Finish(ctx, "SubmitSweep", r.status());
}

grpc::ServerUnaryReactor* CoordinatorService::ListSweeps(grpc::CallbackServerContext* ctx,
                                                         const v1::ListSweepsRequest*,
                                                         v1::ListSweepsResponse* resp) {
  auto r = scheduler_->ListSweeps();
  if (r.ok()) {
    for (const auto& view : *r) ToProto(view, resp->add_sweeps());
  }
  return Finish(ctx, "ListSweeps", r.status());
}

grpc::ServerUnaryReactor* CoordinatorService::GetSweep(grpc::CallbackServerContext* ctx,
                                                       const v1::GetSweepRequest* req,
                                                       v1::GetSweepResponse* resp) {
  auto r = scheduler_->GetSweep(req->sweep_id());
  if (r.ok()) ToProto(*r, resp->mutable_sweep());
  return Finish(ctx, "GetSweep", r.status());
}

grpc::ServerUnaryReactor* CoordinatorService::ListRuns(grpc::CallbackServerContext* ctx,
                                                       const v1::ListRunsRequest* req,
                                                       v1::ListRunsResponse* resp) {
  auto r = scheduler_->ListRuns(req->sweep_id(), req->state());
  if (r.ok()) {
    for (const auto& view : *r) ToProto(view, resp->add_runs());
  }
  return Finish(ctx, "ListRuns", r.status());
}

grpc::ServerUnaryReactor* CoordinatorService::CancelSweep(grpc::CallbackServerContext* ctx,
                                                          const v1::CancelSweepRequest* req,
                                                          v1::CancelSweepResponse* resp) {
  auto r = scheduler_->Cancel(req->sweep_id());
  if (r.ok()) {
    resp->set_sweep_id(req->sweep_id());
    resp->set_runs_cancelled(*r);
  }
  return Finish(ctx, "CancelSweep", r.status());
}

grpc::ServerUnaryReactor* CoordinatorService::GetResults(grpc::CallbackServerContext* ctx,
                                                         const v1::GetResultsRequest* req,
                                                         v1::GetResultsResponse* resp) {
  auto r = scheduler_->Results(req->sweep_id(), req->last_k());
  if (r.ok()) ToProto(*r, resp);
  return Finish(ctx, "GetResults", r.status());
}

grpc::ServerUnaryReactor* CoordinatorService::RegisterWorker(
    grpc::CallbackServerContext* ctx, const v1::RegisterWorkerRequest* req,
    v1::RegisterWorkerResponse* resp) {
  std::vector<std::string> devices(req->devices().begin(), req->devices().end());
  auto r = scheduler_->RegisterWorker(req->name(), req->host(), devices);
  if (r.ok()) {
    resp->set_worker_id(r->worker_id);
    resp->set_lease_ms(static_cast<int32_t>(r->lease_ms));
    resp->set_heartbeat_ms(static_cast<int32_t>(r->heartbeat_ms));
  }
  return Finish(ctx, "RegisterWorker", r.status());
}

grpc::ServerUnaryReactor* CoordinatorService::AcquireRun(grpc::CallbackServerContext* ctx,
                                                         const v1::AcquireRunRequest* req,
                                                         v1::AcquireRunResponse* resp) {
  auto r = scheduler_->Acquire(req->worker_id());
  if (r.ok() && r->has_value()) {
    resp->set_has_run(true);
    ToProto(**r, resp->mutable_lease());
  }
  return Finish(ctx, "AcquireRun", r.status());
}

grpc::ServerUnaryReactor* CoordinatorService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                        const v1::HeartbeatRequest* req,
                                                        v1::HeartbeatResponse* resp) {
  std::vector<LeaseProgressReport> leases;
  for (const auto& l : req->leases()) leases.push_back({l.run_id(), l.attempt(), l.epoch()});
  auto r = scheduler_->Heartbeat(req->worker_id(), leases);
  if (r.ok()) {
    resp->set_unknown_worker(r->unknown_worker);
    for (const auto& d : r->decisions) {
      auto* v = resp->add_verdicts();
      v->set_run_id(d.run_id);
      v->set_attempt(d.attempt);
      v->set_action(d.stop ? v1::LeaseVerdict::STOP : v1::LeaseVerdict::CONTINUE);
      v->set_reason(d.reason);
    }
  }
  return Finish(ctx, "Heartbeat", r.status());
}

grpc::ServerUnaryReactor* CoordinatorService::ReportEpoch(grpc::CallbackServerContext* ctx,
                                                          const v1::ReportEpochRequest* req,
                                                          v1::ReportEpochResponse*) {
  const auto& m = req->metrics();
  EpochRecord e;
  e.run_id = req->run_id();
  e.attempt = req->attempt();
  e.epoch = m.epoch();
  e.train_loss = m.train_loss();
  e.train_error = m.train_error();
  e.test_error = m.test_error();
  e.test_loss = m.test_loss();
  e.lr = m.lr();
  e.seconds = m.seconds();
  e.images_per_sec = m.images_per_sec();
  return Finish(ctx, "ReportEpoch", scheduler_->ReportEpoch(req->worker_id(), e));
}

grpc::ServerUnaryReactor* CoordinatorService::CompleteRun(grpc::CallbackServerContext* ctx,
                                                          const v1::CompleteRunRequest* req,
                                                          v1::CompleteRunResponse*) {
  return Finish(ctx, "CompleteRun",
                scheduler_->Complete(req->worker_id(), req->run_id(), req->attempt(),
                                     req->param_count()));
}

grpc::ServerUnaryReactor* CoordinatorService::FailRun(grpc::CallbackServerContext* ctx,
                                                      const v1::FailRunRequest* req,
                                                      v1::FailRunResponse*) {
  return Finish(ctx, "FailRun",
                scheduler_->Fail(req->worker_id(), req->run_id(), req->attempt(), req->reason(),
                                 req->retryable(), req->checkpoint_unusable()));
}

grpc::ServerUnaryReactor* CoordinatorService::ReleaseRun(grpc::CallbackServerContext* ctx,
                                                         const v1::ReleaseRunRequest* req,
                                                         v1::ReleaseRunResponse*) {
  return Finish(ctx, "ReleaseRun",
                scheduler_->Release(req->worker_id(), req->run_id(), req->attempt(),
                                    req->reason()));
}

grpc::ServerUnaryReactor* CoordinatorService::PutCheckpointChunk(
    grpc::CallbackServerContext* ctx, const v1::PutCheckpointChunkRequest* req,
    v1::PutCheckpointChunkResponse* resp) {
  auto next = scheduler_->PutCheckpointChunk(req->worker_id(), req->run_id(), req->attempt(),
                                             req->epoch(), req->offset(), req->data(),
                                             req->last(), req->sha256());
  if (next.ok()) {
    resp->set_next_offset(*next);
    resp->set_committed(req->last());
  }
  return Finish(ctx, "PutCheckpointChunk", next.status());
}

grpc::ServerUnaryReactor* CoordinatorService::GetCheckpointChunk(
    grpc::CallbackServerContext* ctx, const v1::GetCheckpointChunkRequest* req,
    v1::GetCheckpointChunkResponse* resp) {
  int64_t total = 0;
  Status st = scheduler_->GetCheckpointChunk(req->worker_id(), req->run_id(), req->attempt(),
                                             req->epoch(), req->offset(), req->max_bytes(),
                                             resp->mutable_data(), &total);
  resp->set_total_size(total);
  return Finish(ctx, "GetCheckpointChunk", st);
}

}  // namespace resweep
