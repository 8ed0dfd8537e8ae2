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

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

CoordinatorService::CoordinatorService(Scheduler* scheduler, const TokenTable* tokens,
                                       ServiceMetrics* metrics, WriteBatcherOptions batcher_options)
    : scheduler_(scheduler),
      tokens_(tokens),
      metrics_(metrics),
      batcher_(
          [scheduler, metrics](const std::function<void()>& calls) {
            const auto start = std::chrono::steady_clock::now();
            Status committed = scheduler->RunBatchBeforeSync(calls);
            if (metrics) metrics->RecordCommit(SecondsSince(start));
            return committed;
          },
          batcher_options,
          [scheduler, metrics] {
            const auto start = std::chrono::steady_clock::now();
            Status synced = scheduler->SyncCommitted();
            if (metrics) metrics->RecordSync(SecondsSince(start));
            return synced;
          }) {
  scheduler_->SetRunsQueuedListener([this](int64_t runs) { parked_.Notify(runs); });
}

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
  auto* reactor = ctx->DefaultReactor();
  FinishReactor(ctx, reactor, method, status, start);
  return reactor;
}

void CoordinatorService::FinishReactor(grpc::CallbackServerContext* ctx,
                                       grpc::ServerUnaryReactor* reactor, const char* method,
                                       const Status& status,
                                       std::chrono::steady_clock::time_point start) {
  const double seconds = SecondsSince(start);
  latency_.Record(method, seconds * 1e6);
  if (metrics_) metrics_->RecordCall(method, status.code(), seconds);
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
  reactor->Finish(ToGrpcStatus(status));
}

grpc::ServerUnaryReactor* CoordinatorService::Batched(grpc::CallbackServerContext* ctx,
                                                      const char* method,
                                                      const std::string& worker_id,
                                                      std::function<Status()> run) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kWorker, method); !denied.ok()) {
    return Finish(ctx, method, denied, start);
  }
  auto* reactor = ctx->DefaultReactor();
  batcher_.Submit(
      [this, method, worker_id, identity = Identity(ctx), run = std::move(run)]() -> Status {
        RESWEEP_RETURN_IF_ERROR(
            scheduler_->CheckWorkerIdentity(worker_id, identity).WithContext(std::string(method)));
        return run();
      },
      [this, ctx, reactor, method, start](const Status& status) {
        FinishReactor(ctx, reactor, method, status, start);
      });
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
  auto r = scheduler_->ListSweeps(
      req->include_archived(), {req->page_size(), req->page_token()},
      req->newest_first() ? SweepOrder::kNewestFirst : SweepOrder::kOldestFirst);
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

struct CoordinatorService::AcquireCall {
  grpc::CallbackServerContext* ctx = nullptr;
  const v1::AcquireRunRequest* req = nullptr;
  v1::AcquireRunResponse* resp = nullptr;
  grpc::ServerUnaryReactor* reactor = nullptr;
  std::string identity;
  std::chrono::steady_clock::time_point start, deadline;
  // Set on the batcher's thread by each look, read after it (the batcher orders them).
  uint64_t generation = 0;  // ParkedCalls' before the look
  bool answered = false;    // the look found a lease or a refusal
  bool leased = false;      // ... a lease
  bool woken = false;       // the look follows a wake-up (runs were queued)
};

grpc::ServerUnaryReactor* CoordinatorService::AcquireRun(grpc::CallbackServerContext* ctx,
                                                         const v1::AcquireRunRequest* req,
                                                         v1::AcquireRunResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  if (Status denied = Authorize(ctx, Role::kWorker, "AcquireRun"); !denied.ok()) {
    return Finish(ctx, "AcquireRun", denied, start);
  }
  if (req->wait_ms() < 0) {
    return Finish(ctx, "AcquireRun",
                  InvalidArgumentError(fmt::format(
                      "AcquireRun.wait_ms = {}: must be 0 (answer at once) or a positive bound",
                      req->wait_ms())),
                  start);
  }
  auto call = std::make_shared<AcquireCall>();
  call->ctx = ctx;
  call->req = req;
  call->resp = resp;
  call->reactor = ctx->DefaultReactor();
  call->identity = Identity(ctx);
  call->start = start;
  call->deadline = start + std::chrono::milliseconds(std::min(req->wait_ms(), kMaxAcquireWaitMs));
  LookForLease(call);
  return call->reactor;
}

void CoordinatorService::LookForLease(const std::shared_ptr<AcquireCall>& call) {
  batcher_.Submit(
      [this, call]() -> Status {
        if (call->ctx->IsCancelled()) {
          // Its worker gave up waiting (it asks again): lease it nothing.
          return CancelledError("AcquireRun: cancelled by the caller");
        }
        call->generation = parked_.Generation();
        RESWEEP_RETURN_IF_ERROR(
            scheduler_->CheckWorkerIdentity(call->req->worker_id(), call->identity)
                .WithContext("AcquireRun"));
        AcquireRefusal refusal;
        auto r = scheduler_->AcquireGang(call->req->worker_id(), call->req->slot(),
                                         call->req->gang_size() == 0 ? 1 : call->req->gang_size(),
                                         &refusal);
        if (!r.ok()) return r.status();
        v1::AcquireRunResponse* resp = call->resp;
        resp->Clear();
        resp->set_long_poll(true);
        if (!r->empty()) {
          resp->set_has_run(true);
          ToProto(r->front(), resp->mutable_lease());
          for (size_t i = 1; i < r->size(); ++i) ToProto((*r)[i], resp->add_gang_members());
        } else if (!refusal.reason.empty()) {
          resp->set_quarantine_reason(refusal.reason);
          resp->set_quarantined_until_unix_ms(refusal.until_ms);
        }
        call->answered = !r->empty() || !refusal.reason.empty();
        call->leased = !r->empty();
        return Status::Ok();
      },
      [this, call](const Status& status) {
        if (call->woken && !call->leased && (!status.ok() || call->answered)) {
          // Woken for a queued run it cannot take (quarantined, gone): another parked
          // call takes the wake-up. (One that found nothing queued does not: the run
          // went elsewhere.)
          parked_.Notify(1);
        }
        call->woken = false;
        if (!status.ok() || call->answered || std::chrono::steady_clock::now() >= call->deadline) {
          FinishReactor(call->ctx, call->reactor, "AcquireRun", status, call->start);
          return;
        }
        // Nothing queued: wait for a run (or the bound) without holding a thread.
        spdlog::debug("AcquireRun of {} slot {} parked until a run is queued (at most {} ms)",
                      call->req->worker_id(), call->req->slot(),
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          call->deadline - std::chrono::steady_clock::now())
                          .count());
        parked_.Park(
            call->generation, call->deadline,
            [this, call] {
              call->woken = true;
              LookForLease(call);
            },
            [this, call] {
              FinishReactor(call->ctx, call->reactor, "AcquireRun", Status::Ok(), call->start);
            });
      });
}

grpc::ServerUnaryReactor* CoordinatorService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                        const v1::HeartbeatRequest* req,
                                                        v1::HeartbeatResponse* resp) {
  return Batched(ctx, "Heartbeat", req->worker_id(), [this, req, resp]() -> Status {
    std::vector<LeaseProgressReport> leases;
    for (const auto& l : req->leases()) {
      leases.push_back({l.run_id(), l.attempt(), l.epoch(), l.progress()});
    }
    auto r = scheduler_->Heartbeat(req->worker_id(), leases);
    if (!r.ok()) return r.status();
    resp->set_unknown_worker(r->unknown_worker);
    for (const auto& d : r->decisions) {
      auto* v = resp->add_verdicts();
      v->set_run_id(d.run_id);
      v->set_attempt(d.attempt);
      v->set_action(d.stop ? v1::LeaseVerdict::STOP : v1::LeaseVerdict::CONTINUE);
      v->set_reason(d.reason);
    }
    return Status::Ok();
  });
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
  return Batched(ctx, "ReportEpoch", req->worker_id(),
                 [this, req, e] { return scheduler_->ReportEpoch(req->worker_id(), e); });
}

grpc::ServerUnaryReactor* CoordinatorService::CompleteRun(grpc::CallbackServerContext* ctx,
                                                          const v1::CompleteRunRequest* req,
                                                          v1::CompleteRunResponse*) {
  return Batched(ctx, "CompleteRun", req->worker_id(), [this, req] {
    return scheduler_->Complete(req->worker_id(), req->run_id(), req->attempt(),
                                req->param_count());
  });
}

grpc::ServerUnaryReactor* CoordinatorService::FailRun(grpc::CallbackServerContext* ctx,
                                                      const v1::FailRunRequest* req,
                                                      v1::FailRunResponse*) {
  return Batched(ctx, "FailRun", req->worker_id(), [this, req] {
    if (req->fault() == v1::FailRunRequest::FAULT_HOST) {
      return scheduler_->HostFault(req->worker_id(), req->run_id(), req->attempt(), req->reason(),
                                   req->log_tail());
    }
    return scheduler_->Fail(req->worker_id(), req->run_id(), req->attempt(), req->reason(),
                            req->retryable(), req->checkpoint_unusable(), req->log_tail());
  });
}

grpc::ServerUnaryReactor* CoordinatorService::ReleaseRun(grpc::CallbackServerContext* ctx,
                                                         const v1::ReleaseRunRequest* req,
                                                         v1::ReleaseRunResponse*) {
  return Batched(ctx, "ReleaseRun", req->worker_id(), [this, req] {
    return scheduler_->Release(req->worker_id(), req->run_id(), req->attempt(), req->reason());
  });
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
  return Batched(ctx, "RecordSharedCheckpoint", req->worker_id(), [this, req] {
    return scheduler_->RecordSharedCheckpoint(req->worker_id(), req->run_id(), req->attempt(),
                                              req->epoch(), req->relative_path(), req->iteration());
  });
}

}  // namespace resweep
