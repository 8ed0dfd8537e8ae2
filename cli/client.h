// How the CLI reaches the coordinator's state: over gRPC (Client), or read-only
// straight from a database file (--db), both behind ReadApi so every command prints
// the same from either source.
#pragma once

#include <memory>
#include <string>

#include "common/channel.h"
#include "common/status.h"
#include "resweep/v1/resweep.grpc.pb.h"

namespace resweep {

class Client {
 public:
  Client(const std::string& address, double timeout_seconds, ClientSecurity security);

  template <typename Req, typename Resp, typename Method>
  Status Call(Method method, const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    PrepareCall(&ctx, security_, static_cast<int64_t>(timeout_seconds_ * 1000));
    return FromGrpcStatus((stub_.get()->*method)(&ctx, req, resp));
  }

  const std::string& address() const { return address_; }
  const ClientSecurity& security() const { return security_; }
  double timeout_seconds() const { return timeout_seconds_; }

 private:
  const std::string address_;
  const ClientSecurity security_;
  const std::unique_ptr<v1::Coordinator::Stub> stub_;
  const double timeout_seconds_;
};

class ReadApi {
 public:
  virtual ~ReadApi() = default;
  virtual Status ListSweeps(const v1::ListSweepsRequest& req, v1::ListSweepsResponse* resp) = 0;
  virtual Status GetSweep(const v1::GetSweepRequest& req, v1::GetSweepResponse* resp) = 0;
  virtual Status ListRuns(const v1::ListRunsRequest& req, v1::ListRunsResponse* resp) = 0;
  virtual Status GetResults(const v1::GetResultsRequest& req, v1::GetResultsResponse* resp) = 0;
  virtual Status ListWorkers(const v1::ListWorkersRequest& req, v1::ListWorkersResponse* resp) = 0;
  virtual Status GetRun(const v1::GetRunRequest& req, v1::GetRunResponse* resp) = 0;
  virtual Status GetCurves(const v1::GetCurvesRequest& req, v1::GetCurvesResponse* resp) = 0;
};

// `client` must outlive the result.
std::unique_ptr<ReadApi> MakeRemoteReadApi(Client* client);

// Opens `db_path` read-only (never creating, migrating or writing it). A missing
// file is NOT_FOUND naming it.
StatusOr<std::unique_ptr<ReadApi>> OpenOfflineReadApi(const std::string& db_path);

}  // namespace resweep
