#include "coordinator/service.h"

#include <spdlog/spdlog.h>

#include <grpc/grpc_security_constants.h>

#include <algorithm>
#include <cstdio>

#include "common/channel.h"
#include "coordinator/convert.h"

namespace resweep {

void LatencyRecorder::Record(const char* method, double micros) {
  constexpr size_t kMaxSamples = 100000;
  MutexLock lock(&mutex_);
  Samples& s = by_method_[method];
  if (s.micros.size() < kMaxSamples) {
    s.micros.push_back(micros);
  } else {
    s.micros[s.next] = micros;
    s.next = (s.next + 1) % kMaxSamples;
  }
  ++s.count;
}

std::string LatencyRecorder::Summary() {
  MutexLock lock(&mutex_);
  std::string out;
  for (auto& [method, s] : by_method_) {
    std::vector<double> v = s.micros;
    std::sort(v.begin(), v.end());
    char line[256];
    std::snprintf(line, sizeof(line), "%s n=%lld p50=%.0fus p99=%.0fus max=%.0fus\n",
                  method.c_str(), static_cast<long long>(s.count), v[v.size() / 2],
                  v[std::min(v.size() - 1, v.size() * 99 / 100)], v.back());
    out += line;
  }
  return out;
}

namespace {

// The call's authorization metadata value, if any.
std::optional<std::string> AuthorizationOf(grpc::CallbackServerContext* ctx) {
  const auto& metadata = ctx->client_metadata();
  if (auto it = metadata.find(kTokenMetadataKey); it != metadata.end()) {
    return std::string(it->second.data(), it->second.size());
  }
  return std::nullopt;
}

}  // namespace

Status CoordinatorService::Authorize(grpc::CallbackServerContext* ctx, Role needed,
                                     const char* method) {
  if (!tokens_) return Status::Ok();
  return AuthorizeCall(tokens_, AuthorizationOf(ctx), needed, method);
}

std::string CoordinatorService::Identity(grpc::CallbackServerContext* ctx) {
  std::string certificate;
  if (auto auth = ctx->auth_context()) {
    const auto pem = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
    if (!pem.empty()) certificate.assign(pem.front().data(), pem.front().size());
  }
  return CallerIdentity(AuthorizationOf(ctx), certificate);
}

Status CoordinatorService::AuthorizeWorker(grpc::CallbackServerContext* ctx, const char* method,
                                           const std::string& worker_id) {
  RESWEEP_RETURN_IF_ERROR(Authorize(ctx, Role::kWorker, method));
  return scheduler_->CheckWorkerIdentity(worker_id, Identity(ctx)).WithContext(std::string(method));
}

grpc::ServerUnaryReactor* CoordinatorService::Finish(grpc::CallbackServerContext* ctx,
                                                     const char* method, const Status& status,
                                                     std::chrono::steady_clock::time_point start) {
  latency_.Record(
      method,
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
  // Refusals are logged at debug (they are part of normal operation, e.g. a stale
  // attempt), internal errors at error.
  if (!status.ok()) {
    const auto code = status.code();
    if (code == StatusCode::kInternal || code == StatusCode::kDataLoss ||
        code == StatusCode::kUnavailable) {
      spdlog::error("{} from {}: {}", method, ctx->peer(), status.ToString());
    } else if (code == StatusCode::kUnauthenticated || code == StatusCode::kPermissionDenied) {
      // Never the token itself: only what was refused and why.
      spdlog::warn("{} from {} refused: {}", method, ctx->peer(), status.ToString());
    } else {
      spdlog::debug("{} from {} refused: {}", method, ctx->peer(), status.ToString());
    }
  }
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::SubmitSweep(grpc::CallbackServerContext* ctx,
                                                          const v1::SubmitSweepRequest* req,
                                                          v1::SubmitSweepResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kAdmin, "SubmitSweep"); !denied.ok()) {
    return Finish(ctx, "SubmitSweep", denied, start);
  }
  auto r = scheduler_->Submit(req->spec_yaml(), req->source_name(),
                              {req->dry_run(), req->allow_name_reuse()});
  if (r.ok()) ToProto(*r, resp);
  return Finish(ctx, "SubmitSweep", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::ListSweeps(grpc::CallbackServerContext* ctx,
                                                         const v1::ListSweepsRequest* req,
                                                         v1::ListSweepsResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kRead, "ListSweeps"); !denied.ok()) {
    return Finish(ctx, "ListSweeps", denied, start);
  }
  auto r = scheduler_->ListSweeps(req->include_archived(), {req->page_size(), req->page_token()});
  if (r.ok()) ToProto(*r, resp);
  return Finish(ctx, "ListSweeps", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::GetSweep(grpc::CallbackServerContext* ctx,
                                                       const v1::GetSweepRequest* req,
                                                       v1::GetSweepResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kRead, "GetSweep"); !denied.ok()) {
    return Finish(ctx, "GetSweep", denied, start);
  }
  auto r = scheduler_->GetSweep(req->sweep_id());
  if (r.ok()) ToProto(*r, resp->mutable_sweep());
  return Finish(ctx, "GetSweep", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::ListRuns(grpc::CallbackServerContext* ctx,
                                                       const v1::ListRunsRequest* req,
                                                       v1::ListRunsResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kRead, "ListRuns"); !denied.ok()) {
    return Finish(ctx, "ListRuns", denied, start);
  }
  auto r =
      scheduler_->ListRuns(req->sweep_id(), req->state(), {req->page_size(), req->page_token()});
  if (r.ok()) ToProto(*r, resp);
  return Finish(ctx, "ListRuns", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::CancelSweep(grpc::CallbackServerContext* ctx,
                                                          const v1::CancelSweepRequest* req,
                                                          v1::CancelSweepResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kAdmin, "CancelSweep"); !denied.ok()) {
    return Finish(ctx, "CancelSweep", denied, start);
  }
  auto r = scheduler_->Cancel(req->sweep_id());
  if (r.ok()) {
    resp->set_sweep_id(req->sweep_id());
    resp->set_runs_cancelled(r->runs_cancelled);
    resp->set_runs_kept(r->runs_kept);
    resp->set_already_finished(r->already_finished);
    resp->set_message(r->message);
  }
  return Finish(ctx, "CancelSweep", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::RetryRuns(grpc::CallbackServerContext* ctx,
                                                        const v1::RetryRunsRequest* req,
                                                        v1::RetryRunsResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kAdmin, "RetryRuns"); !denied.ok()) {
    return Finish(ctx, "RetryRuns", denied, start);
  }
  RetryRequest request;
  request.failed = req->failed();
  request.cancelled = req->cancelled();
  request.run_ids.assign(req->run_ids().begin(), req->run_ids().end());
  request.restart = req->restart();
  auto r = scheduler_->Retry(req->sweep_id(), request);
  if (r.ok()) {
    resp->set_sweep_id(r->sweep_id);
    resp->set_runs_queued(r->runs_queued);
    for (const auto& s : r->skipped) resp->add_skipped(s);
    resp->set_restored(r->restored);
  }
  return Finish(ctx, "RetryRuns", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::DeleteSweep(grpc::CallbackServerContext* ctx,
                                                          const v1::DeleteSweepRequest* req,
                                                          v1::DeleteSweepResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kAdmin, "DeleteSweep"); !denied.ok()) {
    return Finish(ctx, "DeleteSweep", denied, start);
  }
  auto r = scheduler_->Delete(req->sweep_id(), req->force());
  if (r.ok()) {
    resp->set_sweep_id(r->sweep_id);
    resp->set_runs_cancelled(r->runs_cancelled);
    resp->set_runs_kept(r->runs_kept);
    resp->set_checkpoints_removed(r->checkpoints_removed);
  }
  return Finish(ctx, "DeleteSweep", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::ListWorkers(grpc::CallbackServerContext* ctx,
                                                          const v1::ListWorkersRequest* req,
                                                          v1::ListWorkersResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kRead, "ListWorkers"); !denied.ok()) {
    return Finish(ctx, "ListWorkers", denied, start);
  }
  auto r = scheduler_->ListWorkers(req->include_gone());
  if (r.ok()) {
    for (const auto& view : *r) ToProto(view, resp->add_workers());
  }
  return Finish(ctx, "ListWorkers", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::GetRun(grpc::CallbackServerContext* ctx,
                                                     const v1::GetRunRequest* req,
                                                     v1::GetRunResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kRead, "GetRun"); !denied.ok()) {
    return Finish(ctx, "GetRun", denied, start);
  }
  auto r = scheduler_->GetRun(req->run_id());
  if (r.ok()) ToProto(*r, resp);
  return Finish(ctx, "GetRun", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::GetCurves(grpc::CallbackServerContext* ctx,
                                                        const v1::GetCurvesRequest* req,
                                                        v1::GetCurvesResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kRead, "GetCurves"); !denied.ok()) {
    return Finish(ctx, "GetCurves", denied, start);
  }
  auto r = scheduler_->Curves(req->sweep_id(), req->max_points());
  if (r.ok()) ToProto(*r, resp);
  return Finish(ctx, "GetCurves", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::GetResults(grpc::CallbackServerContext* ctx,
                                                         const v1::GetResultsRequest* req,
                                                         v1::GetResultsResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kRead, "GetResults"); !denied.ok()) {
    return Finish(ctx, "GetResults", denied, start);
  }
  auto r = scheduler_->Results(req->sweep_id(), req->last_k());
  if (r.ok()) ToProto(*r, resp);
  return Finish(ctx, "GetResults", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::RegisterWorker(grpc::CallbackServerContext* ctx,
                                                             const v1::RegisterWorkerRequest* req,
                                                             v1::RegisterWorkerResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kWorker, "RegisterWorker"); !denied.ok()) {
    return Finish(ctx, "RegisterWorker", denied, start);
  }
  std::vector<std::string> devices(req->devices().begin(), req->devices().end());
  auto r = scheduler_->RegisterWorker(req->name(), req->host(), devices, Identity(ctx));
  if (r.ok()) {
    resp->set_worker_id(r->worker_id);
    resp->set_lease_ms(static_cast<int32_t>(r->lease_ms));
    resp->set_heartbeat_ms(static_cast<int32_t>(r->heartbeat_ms));
  }
  return Finish(ctx, "RegisterWorker", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::AcquireRun(grpc::CallbackServerContext* ctx,
                                                         const v1::AcquireRunRequest* req,
                                                         v1::AcquireRunResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = AuthorizeWorker(ctx, "AcquireRun", req->worker_id()); !denied.ok()) {
    return Finish(ctx, "AcquireRun", denied, start);
  }
  AcquireRefusal refusal;
  auto r = scheduler_->Acquire(req->worker_id(), req->slot(), &refusal);
  if (r.ok() && r->has_value()) {
    resp->set_has_run(true);
    ToProto(**r, resp->mutable_lease());
  } else if (r.ok() && !refusal.reason.empty()) {
    resp->set_quarantine_reason(refusal.reason);
    resp->set_quarantined_until_unix_ms(refusal.until_ms);
  }
  return Finish(ctx, "AcquireRun", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                        const v1::HeartbeatRequest* req,
                                                        v1::HeartbeatResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = AuthorizeWorker(ctx, "Heartbeat", req->worker_id()); !denied.ok()) {
    return Finish(ctx, "Heartbeat", denied, start);
  }
  std::vector<LeaseProgressReport> leases;
  for (const auto& l : req->leases()) {
    leases.push_back({l.run_id(), l.attempt(), l.epoch(), l.progress()});
  }
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
  return Finish(ctx, "Heartbeat", r.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::ReportEpoch(grpc::CallbackServerContext* ctx,
                                                          const v1::ReportEpochRequest* req,
                                                          v1::ReportEpochResponse*) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = AuthorizeWorker(ctx, "ReportEpoch", req->worker_id()); !denied.ok()) {
    return Finish(ctx, "ReportEpoch", denied, start);
  }
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
  return Finish(ctx, "ReportEpoch", scheduler_->ReportEpoch(req->worker_id(), e), start);
}

grpc::ServerUnaryReactor* CoordinatorService::CompleteRun(grpc::CallbackServerContext* ctx,
                                                          const v1::CompleteRunRequest* req,
                                                          v1::CompleteRunResponse*) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = AuthorizeWorker(ctx, "CompleteRun", req->worker_id()); !denied.ok()) {
    return Finish(ctx, "CompleteRun", denied, start);
  }
  return Finish(
      ctx, "CompleteRun",
      scheduler_->Complete(req->worker_id(), req->run_id(), req->attempt(), req->param_count()),
      start);
}

grpc::ServerUnaryReactor* CoordinatorService::FailRun(grpc::CallbackServerContext* ctx,
                                                      const v1::FailRunRequest* req,
                                                      v1::FailRunResponse*) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = AuthorizeWorker(ctx, "FailRun", req->worker_id()); !denied.ok()) {
    return Finish(ctx, "FailRun", denied, start);
  }
  if (req->fault() == v1::FailRunRequest::FAULT_HOST) {
    return Finish(ctx, "FailRun",
                  scheduler_->HostFault(req->worker_id(), req->run_id(), req->attempt(),
                                        req->reason(), req->log_tail()),
                  start);
  }
  return Finish(ctx, "FailRun",
                scheduler_->Fail(req->worker_id(), req->run_id(), req->attempt(), req->reason(),
                                 req->retryable(), req->checkpoint_unusable(), req->log_tail()),
                start);
}

grpc::ServerUnaryReactor* CoordinatorService::ReleaseRun(grpc::CallbackServerContext* ctx,
                                                         const v1::ReleaseRunRequest* req,
                                                         v1::ReleaseRunResponse*) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = AuthorizeWorker(ctx, "ReleaseRun", req->worker_id()); !denied.ok()) {
    return Finish(ctx, "ReleaseRun", denied, start);
  }
  return Finish(ctx, "ReleaseRun",
                scheduler_->Release(req->worker_id(), req->run_id(), req->attempt(), req->reason()),
                start);
}

grpc::ServerUnaryReactor* CoordinatorService::PutCheckpointChunk(
    grpc::CallbackServerContext* ctx, const v1::PutCheckpointChunkRequest* req,
    v1::PutCheckpointChunkResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = AuthorizeWorker(ctx, "PutCheckpointChunk", req->worker_id()); !denied.ok()) {
    return Finish(ctx, "PutCheckpointChunk", denied, start);
  }
  auto next = scheduler_->PutCheckpointChunk(req->worker_id(), req->run_id(), req->attempt(),
                                             req->epoch(), req->offset(), req->data(), req->last(),
                                             req->sha256(), req->iteration());
  if (next.ok()) {
    resp->set_next_offset(*next);
    resp->set_committed(req->last());
  }
  return Finish(ctx, "PutCheckpointChunk", next.status(), start);
}

grpc::ServerUnaryReactor* CoordinatorService::GetCheckpointChunk(
    grpc::CallbackServerContext* ctx, const v1::GetCheckpointChunkRequest* req,
    v1::GetCheckpointChunkResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = AuthorizeWorker(ctx, "GetCheckpointChunk", req->worker_id()); !denied.ok()) {
    return Finish(ctx, "GetCheckpointChunk", denied, start);
  }
  int64_t total = 0;
  Status st =
      scheduler_->GetCheckpointChunk(req->worker_id(), req->run_id(), req->attempt(), req->epoch(),
                                     req->offset(), req->max_bytes(), resp->mutable_data(), &total);
  resp->set_total_size(total);
  return Finish(ctx, "GetCheckpointChunk", st, start);
}

grpc::ServerUnaryReactor* CoordinatorService::RecordSharedCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::RecordSharedCheckpointRequest* req,
    v1::RecordSharedCheckpointResponse*) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = AuthorizeWorker(ctx, "RecordSharedCheckpoint", req->worker_id());
      !denied.ok()) {
    return Finish(ctx, "RecordSharedCheckpoint", denied, start);
  }
  return Finish(
      ctx, "RecordSharedCheckpoint",
      scheduler_->RecordSharedCheckpoint(req->worker_id(), req->run_id(), req->attempt(),
                                         req->epoch(), req->relative_path(), req->iteration()),
      start);
}

}  // namespace resweep
