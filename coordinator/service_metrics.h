// The gRPC service's metrics (exposed by /metrics, see docs/http-api.md): calls by
// method and status code with their latency, named as go-grpc-prometheus names them
// (grpc_server_handled_total, grpc_server_handling_seconds), epoch reports accepted
// and refused, and the time group commits take. Recording is lock-free.
#pragma once

#include <array>
#include <atomic>
#include <string_view>
#include <unordered_map>

#include "common/metrics.h"
#include "common/status.h"

namespace google::protobuf {
class ServiceDescriptor;
}

namespace resweep {

class ServiceMetrics {
 public:
  // Series for every method of `service` (unary calls), registered in `registry`,
  // which must outlive this object.
  ServiceMetrics(const google::protobuf::ServiceDescriptor* service, MetricsRegistry* registry);
  ServiceMetrics(const ServiceMetrics&) = delete;
  ServiceMetrics& operator=(const ServiceMetrics&) = delete;

  // One finished call of `method` (a method name of the service; others are ignored).
  void RecordCall(std::string_view method, StatusCode code, double seconds);
  // A group commit's two halves: the batch (its calls and the commit) and the sync
  // that makes it durable.
  void RecordCommit(double batch_seconds) { commit_batch_seconds_->Observe(batch_seconds); }
  void RecordSync(double sync_seconds) { commit_sync_seconds_->Observe(sync_seconds); }

 private:
  static constexpr int kCodes = 17;  // gRPC status codes 0..16
  struct Method {
    std::array<std::atomic<int64_t>, kCodes> handled{};
    Histogram* seconds = nullptr;
  };
  // Renders grpc_server_handled_total: the codes each method has answered with.
  void Collect(PrometheusText* out) const;

  const std::string service_name_;
  // Built once, read without a lock: keys view the descriptor's method names.
  std::unordered_map<std::string_view, Method> methods_;
  Counter* epochs_accepted_ = nullptr;
  Counter* epochs_refused_ = nullptr;
  Histogram* commit_batch_seconds_ = nullptr;
  Histogram* commit_sync_seconds_ = nullptr;
};

}  // namespace resweep
