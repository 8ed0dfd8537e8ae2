#include "http/json_api.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <climits>
#include <set>
#include <vector>

#include "coordinator/convert.h"
#include "http/request_log.h"
#include "resweep/v1/resweep.pb.h"

namespace resweep::http {

namespace {

// JSON text of `value`. Strings may hold request data (a path, a parameter), which
// need not be UTF-8: an invalid byte is replaced by U+FFFD rather than thrown about
// (nlohmann's default), so that printing never fails.
std::string Dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

int HttpStatusOf(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kCancelled:
      return 499;
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kAborted:
      return 409;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kUnimplemented:
      // The one code of ours that grpc-gateway maps otherwise (501): the API answers
      // UNIMPLEMENTED only for a method other than GET and HEAD, which is 405.
      return 405;
    case StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

HttpReply ErrorReply(const Status& status, const std::string& field) {
  nlohmann::json error = {{"code", StatusCodeName(status.code())}, {"message", status.message()}};
  if (!field.empty()) error["field"] = field;
  return {HttpStatusOf(status.code()), "application/json", Dump(error) + "\n"};
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  // Printing a message of our own (no Any, no unknown types) does not fail.
  const auto printed = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!printed.ok()) spdlog::error("http: cannot print JSON: {}", printed.ToString());
  return json + "\n";
}

namespace {

// The largest last_k: as the CLI's --last-k (a last-K mean over more epochs than any
// sweep trains is no statistic anyone asks for; each value is its own computation).
constexpr int kMaxLastK = 1000;

// A request's parameters, each checked against what the endpoint takes.
class Params {
 public:
  explicit Params(const QueryParams& params) : params_(params) {}

  // INVALID_ARGUMENT naming the first parameter not in `known` (or given twice).
  Status CheckKnown(const std::set<std::string>& known, std::string* field) const {
    for (auto it = params_.begin(); it != params_.end(); ++it) {
      *field = it->first;
      if (!known.count(it->first)) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        return InvalidArgumentError("unknown parameter '" + it->first + "' (this endpoint takes " +
                                    (list.empty() ? std::string("none") : list) + ")");
      }
      if (params_.count(it->first) > 1) {
        return InvalidArgumentError("parameter '" + it->first + "' is given more than once");
      }
    }
    field->clear();
    return Status::Ok();
  }

  std::string String(const std::string& name) const {
    auto it = params_.find(name);
    return it == params_.end() ? std::string() : it->second;
  }

  // Plain decimal digits (no sign, space or empty value) of a number from 0 to `max`;
  // absent: 0. Parameters passed on to a query are refused here only beyond int32 (or
  // a bound of the CLI's); the query decides the rest, as for gRPC.
  StatusOr<int> Int(const std::string& name, int max) const {
    auto it = params_.find(name);
    if (it == params_.end()) return 0;
    const std::string& text = it->second;
    long long value = 0;
    bool ok = !text.empty();
    for (const char c : text) {
      if (c < '0' || c > '9') {
        ok = false;
        break;
      }
      value = value * 10 + (c - '0');
      if (value > max) {
        ok = false;
        break;
      }
    }
    if (!ok) {
      return InvalidArgumentError(name + " must be a number from 0 to " + std::to_string(max) +
                                  " in decimal digits; got '" + text + "'");
    }
    return static_cast<int>(value);
  }

  // Exactly "true" or "false"; absent: false.
  StatusOr<bool> Bool(const std::string& name) const {
    auto it = params_.find(name);
    if (it == params_.end()) return false;
    if (it->second == "true") return true;
    if (it->second == "false") return false;
    return InvalidArgumentError(name + " must be true or false; got '" + it->second + "'");
  }

 private:
  const QueryParams& params_;
};

HttpReply Ok(const google::protobuf::Message& message) {
  return {200, "application/json", ToJson(message)};
}

// For replies with map fields (CellResult.params, RunCurve.params): protobuf prints a
// map's entries in an unspecified order that differs from one call to the next, so
// the same data would give other bytes and another ETag (no 304 for a poller). The
// JSON re-printed with its object keys sorted: the same data, the same bytes.
HttpReply OkSorted(const google::protobuf::Message& message) {
  return {200, "application/json", Dump(nlohmann::json::parse(ToJson(message))) + "\n"};
}

// The reply for a failed query: its status; `field` when the failure is a parameter's.
HttpReply Failed(const Status& status, const std::string& field = "") {
  if (status.code() == StatusCode::kInternal || status.code() == StatusCode::kDataLoss ||
      status.code() == StatusCode::kUnavailable) {
    spdlog::error("http: {}", EscapeForLog(status.ToString()));
  }
  return ErrorReply(status, field);
}

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

// Keeps, in every point of a GetCurvesResponse's JSON, the epoch, the iteration and
// the metric `json_name` only (re-printed, its object keys sorted, as OkSorted).
std::string KeepCurveMetric(const std::string& json, const std::string& json_name) {
  nlohmann::json reply = nlohmann::json::parse(json);
  for (auto& run : reply["runs"]) {
    for (auto& point : run["points"]) {
      nlohmann::json kept = nlohmann::json::object();
      for (const char* key : {"epoch", "iteration"}) {
        if (point.contains(key)) kept[key] = point[key];
      }
      if (point.contains(json_name)) kept[json_name] = point[json_name];
      point = std::move(kept);
    }
  }
  return Dump(reply) + "\n";
}

bool IsSweepPath(const std::vector<std::string>& parts) {
  if (parts.empty() || parts[0] != "sweeps") return false;
  if (parts.size() == 2) return true;
  return parts.size() == 3 && (parts[2] == "results" || parts[2] == "runs" || parts[2] == "curves");
}

}  // namespace

std::string SweepOfPath(const std::string& path) {
  const std::vector<std::string> parts = SplitPath(path);
  return IsSweepPath(parts) ? parts[1] : std::string();
}

std::string PathWithSweep(const std::string& path, const std::string& sweep) {
  const std::vector<std::string> parts = SplitPath(path);
  if (!IsSweepPath(parts)) return path;
  return "/sweeps/" + sweep + (parts.size() == 3 ? "/" + parts[2] : std::string());
}

HttpReply JsonApi::Get(const std::string& path, const QueryParams& query) {
  const std::vector<std::string> parts = SplitPath(path);
  const Params params(query);
  std::string field;
  auto check = [&](const std::set<std::string>& known) { return params.CheckKnown(known, &field); };

  if (parts.size() == 1 && parts[0] == "sweeps") {
    if (Status st = check({"include_archived", "newest_first", "page_size", "page_token"});
        !st.ok()) {
      return Failed(st, field);
    }
    auto archived = params.Bool("include_archived");
    if (!archived.ok()) return Failed(archived.status(), "include_archived");
    auto newest_first = params.Bool("newest_first");
    if (!newest_first.ok()) return Failed(newest_first.status(), "newest_first");
    auto page_size = params.Int("page_size", INT_MAX);
    if (!page_size.ok()) return Failed(page_size.status(), "page_size");
    auto r =
        scheduler_->ListSweeps(*archived, {*page_size, params.String("page_token")},
                               *newest_first ? SweepOrder::kNewestFirst : SweepOrder::kOldestFirst);
    if (!r.ok()) return Failed(r.status());
    v1::ListSweepsResponse reply;
    ToProto(*r, &reply);
    return Ok(reply);
  }
  if (parts.size() == 1 && parts[0] == "workers") {
    if (Status st = check({"include_gone"}); !st.ok()) return Failed(st, field);
    auto gone = params.Bool("include_gone");
    if (!gone.ok()) return Failed(gone.status(), "include_gone");
    auto r = scheduler_->ListWorkers(*gone);
    if (!r.ok()) return Failed(r.status());
    v1::ListWorkersResponse reply;
    for (const auto& view : *r) ToProto(view, reply.add_workers());
    return Ok(reply);
  }
  if (parts.size() == 2 && parts[0] == "sweeps") {
    if (Status st = check({}); !st.ok()) return Failed(st, field);
    auto r = scheduler_->GetSweep(parts[1]);
    if (!r.ok()) return Failed(r.status());
    v1::GetSweepResponse reply;
    ToProto(*r, reply.mutable_sweep());
    return Ok(reply);
  }
  if (parts.size() == 3 && parts[0] == "sweeps" && parts[2] == "results") {
    if (Status st = check({"last_k"}); !st.ok()) return Failed(st, field);
    // As the CLI's --last-k.
    auto last_k = params.Int("last_k", kMaxLastK);
    if (!last_k.ok()) return Failed(last_k.status(), "last_k");
    auto r = scheduler_->Results(parts[1], *last_k);
    if (!r.ok()) return Failed(r.status());
    v1::GetResultsResponse reply;
    ToProto(*r, &reply);
    return OkSorted(reply);
  }
  if (parts.size() == 3 && parts[0] == "sweeps" && parts[2] == "runs") {
    if (Status st = check({"state", "page_size", "page_token"}); !st.ok()) {
      return Failed(st, field);
    }
    auto page_size = params.Int("page_size", INT_MAX);
    if (!page_size.ok()) return Failed(page_size.status(), "page_size");
    auto r = scheduler_->ListRuns(parts[1], params.String("state"),
                                  {*page_size, params.String("page_token")});
    if (!r.ok()) return Failed(r.status());
    v1::ListRunsResponse reply;
    ToProto(*r, &reply);
    return Ok(reply);
  }
  if (parts.size() == 3 && parts[0] == "sweeps" && parts[2] == "curves") {
    if (Status st = check({"metric", "downsample"}); !st.ok()) return Failed(st, field);
    auto downsample = params.Int("downsample", INT_MAX);
    if (!downsample.ok()) return Failed(downsample.status(), "downsample");
    // The metrics are CurvePoint's fields other than where the point is.
    const std::string metric = params.String("metric");
    const google::protobuf::FieldDescriptor* metric_field = nullptr;
    if (!metric.empty()) {
      const auto* point = v1::CurvePoint::descriptor();
      metric_field = point->FindFieldByName(metric);
      if (!metric_field) metric_field = point->FindFieldByCamelcaseName(metric);
      if (!metric_field || metric_field->name() == "epoch" || metric_field->name() == "iteration") {
        std::string names;
        for (int i = 0; i < point->field_count(); ++i) {
          const std::string& name = point->field(i)->name();
          if (name != "epoch" && name != "iteration") names += (names.empty() ? "" : ", ") + name;
        }
        return Failed(InvalidArgumentError("metric '" + metric + "' is not one of " + names),
                      "metric");
      }
    }
    auto r = scheduler_->Curves(parts[1], *downsample);
    if (!r.ok()) return Failed(r.status());
    v1::GetCurvesResponse reply;
    ToProto(*r, &reply);
    if (!metric_field) return OkSorted(reply);
    return {200, "application/json", KeepCurveMetric(ToJson(reply), metric_field->json_name())};
  }
  return Failed(
      NotFoundError("no such API endpoint: GET /api/v1" + path + " (see docs/http-api.md)"));
}

}  // namespace resweep::http
