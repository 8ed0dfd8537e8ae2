#include "cli/client.h"

#include <sys/stat.h>

#include "common/clock.h"
#include "coordinator/convert.h"
#include "coordinator/queries.h"
#include "coordinator/sqlite_store.h"

namespace resweep {

Client::Client(const std::string& address, double timeout_seconds, ClientSecurity security)
    : address_(NormalizeCoordinatorAddress(address)),
      security_(std::move(security)),
      stub_(v1::Coordinator::NewStub(MakeCoordinatorChannel({address_, 8 << 20, security_}))),
      timeout_seconds_(timeout_seconds) {}

namespace {

class RemoteReadApi : public ReadApi {
 public:
  explicit RemoteReadApi(Client* client) : client_(client) {}
  using Stub = v1::Coordinator::Stub;
  Status ListSweeps(const v1::ListSweepsRequest& req, v1::ListSweepsResponse* resp) override {
    return client_->Call(&Stub::ListSweeps, req, resp);
  }
  Status GetSweep(const v1::GetSweepRequest& req, v1::GetSweepResponse* resp) override {
    return client_->Call(&Stub::GetSweep, req, resp);
  }
  Status ListRuns(const v1::ListRunsRequest& req, v1::ListRunsResponse* resp) override {
    return client_->Call(&Stub::ListRuns, req, resp);
  }
  Status GetResults(const v1::GetResultsRequest& req, v1::GetResultsResponse* resp) override {
    return client_->Call(&Stub::GetResults, req, resp);
  }
  Status ListWorkers(const v1::ListWorkersRequest& req, v1::ListWorkersResponse* resp) override {
    return client_->Call(&Stub::ListWorkers, req, resp);
  }
  Status GetRun(const v1::GetRunRequest& req, v1::GetRunResponse* resp) override {
    return client_->Call(&Stub::GetRun, req, resp);
  }
  Status GetCurves(const v1::GetCurvesRequest& req, v1::GetCurvesResponse* resp) override {
    return client_->Call(&Stub::GetCurves, req, resp);
  }

 private:
  Client* const client_;
};

// The coordinator's default lease, for telling alive from silent workers offline.
constexpr int64_t kDefaultLeaseMs = 30000;

class OfflineReadApi : public ReadApi {
 public:
  explicit OfflineReadApi(std::unique_ptr<Store> store)
      : store_(std::move(store)), queries_(store_.get(), &clock_, kDefaultLeaseMs) {}

  Status ListSweeps(const v1::ListSweepsRequest& req, v1::ListSweepsResponse* resp) override {
    auto r = queries_.ListSweeps(
        req.include_archived(), {req.page_size(), req.page_token()},
        req.newest_first() ? SweepOrder::kNewestFirst : SweepOrder::kOldestFirst);
    if (!r.ok()) return r.status();
    ToProto(*r, resp);
    return Status::Ok();
  }
  Status GetSweep(const v1::GetSweepRequest& req, v1::GetSweepResponse* resp) override {
    auto r = queries_.GetSweep(req.sweep_id());
    if (!r.ok()) return r.status();
    ToProto(*r, resp->mutable_sweep());
    return Status::Ok();
  }
  Status ListRuns(const v1::ListRunsRequest& req, v1::ListRunsResponse* resp) override {
    auto r = queries_.ListRuns(req.sweep_id(), req.state(), {req.page_size(), req.page_token()});
    if (!r.ok()) return r.status();
    ToProto(*r, resp);
    return Status::Ok();
  }
  Status GetResults(const v1::GetResultsRequest& req, v1::GetResultsResponse* resp) override {
    auto r = queries_.Results(req.sweep_id(), req.last_k());
    if (!r.ok()) return r.status();
    ToProto(*r, resp);
    return Status::Ok();
  }
  Status ListWorkers(const v1::ListWorkersRequest& req, v1::ListWorkersResponse* resp) override {
    auto r = queries_.ListWorkers(req.include_gone());
    if (!r.ok()) return r.status();
    for (const auto& view : *r) ToProto(view, resp->add_workers());
    return Status::Ok();
  }
  Status GetRun(const v1::GetRunRequest& req, v1::GetRunResponse* resp) override {
    auto r = queries_.GetRun(req.run_id());
    if (!r.ok()) return r.status();
    ToProto(*r, resp);
    return Status::Ok();
  }
  Status GetCurves(const v1::GetCurvesRequest& req, v1::GetCurvesResponse* resp) override {
    auto r = queries_.Curves(req.sweep_id(), req.max_points());
    if (!r.ok()) return r.status();
    ToProto(*r, resp);
    return Status::Ok();
  }

 private:
  SystemClock clock_;
  std::unique_ptr<Store> store_;
  Queries queries_;
};

}  // namespace

std::unique_ptr<ReadApi> MakeRemoteReadApi(Client* client) {
  return std::make_unique<RemoteReadApi>(client);
}

StatusOr<std::unique_ptr<ReadApi>> OpenOfflineReadApi(const std::string& db_path) {
  struct stat st;
  if (stat(db_path.c_str(), &st) != 0) {
    return NotFoundError(db_path + ": no such database file");
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError(db_path + ": not a regular file");
  if (st.st_size == 0)
    return InvalidArgumentError(db_path + ": empty file, not a resweep database");
  auto store = OpenSqliteStore(db_path, {.read_only = true});
  if (!store.ok()) {
    if (store.status().message().find("schema version 0;") != std::string::npos) {
      return InvalidArgumentError(db_path + ": not a resweep database (no resweep schema)");
    }
    return store.status();
  }
  return std::unique_ptr<ReadApi>(std::make_unique<OfflineReadApi>(std::move(*store)));
}

}  // namespace resweep
