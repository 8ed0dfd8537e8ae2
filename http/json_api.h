// The coordinator's JSON API (docs/http-api.md): read-only GET endpoints under
// /api/v1 answered by the same Scheduler read queries as the gRPC read RPCs, each
// reply being protobuf's JSON mapping of the gRPC reply message (lowerCamelCase
// names, every field printed). Free of HTTP plumbing: HttpServer (http_server.h)
// routes requests here after checking their token.
#pragma once

#include <map>
#include <string>

#include "common/status.h"
#include "coordinator/scheduler.h"

namespace google::protobuf {
class Message;
}

namespace resweep::http {

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// Query parameters, decoded (a name may repeat).
using QueryParams = std::multimap<std::string, std::string>;

// The HTTP status for a gRPC status code (as grpc-gateway maps them).
int HttpStatusOf(StatusCode code);

// {"code": "<gRPC code name>", "message": "..."} (and "field": the parameter at
// fault, when known) with HttpStatusOf(status.code()). `status` must not be OK.
HttpReply ErrorReply(const Status& status, const std::string& field = "");

// `message` in protobuf's JSON mapping, as every reply of the API prints it.
std::string ToJson(const google::protobuf::Message& message);

// For the path of one sweep's endpoint (/sweeps/<sweep>, and its /results, /runs and
// /curves): the sweep it names (an id, a name or an id prefix); "" for other paths.
std::string SweepOfPath(const std::string& path);
// Such a path naming sweep `sweep` instead (the same endpoint).
std::string PathWithSweep(const std::string& path, const std::string& sweep);

class JsonApi {
 public:
  // `scheduler` must outlive this object. Thread-safe (as the scheduler's queries).
  explicit JsonApi(Scheduler* scheduler) : scheduler_(scheduler) {}

  // Answers GET `path` (the part after /api/v1, e.g. "/sweeps/abc/runs"): 200 with
  // the reply, or an ErrorReply (404 for an unknown path, 400 naming the parameter
  // for an unknown or malformed one, the query's own error otherwise).
  HttpReply Get(const std::string& path, const QueryParams& params);

 private:
  Scheduler* const scheduler_;
};

}  // namespace resweep::http
