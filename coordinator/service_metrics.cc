#include "coordinator/service_metrics.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>

namespace resweep {

ServiceMetrics::ServiceMetrics(const google::protobuf::ServiceDescriptor* service,
                               MetricsRegistry* registry)
    : service_name_(service->full_name()) {
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string& name = service->method(i)->name();
    Method& method = methods_[name];
    method.seconds = registry->AddHistogram(
        "grpc_server_handling_seconds",
        "Time from a call's arrival to its reply, by method (unary calls).",
        {{"grpc_type", "unary"}, {"grpc_service", service_name_}, {"grpc_method", name}},
        LatencyBuckets());
  }
  epochs_accepted_ = registry->AddCounter("resweep_epoch_reports_total",
                                          "Epoch reports (ReportEpoch calls) by outcome.",
                                          {{"outcome", "accepted"}});
  epochs_refused_ = registry->AddCounter("resweep_epoch_reports_total",
                                         "Epoch reports (ReportEpoch calls) by outcome.",
                                         {{"outcome", "refused"}});
  const std::string commit_help =
      "Group commits of worker calls to SQLite: the batch (its calls and the commit) and "
      "the sync that makes it durable.";
  commit_batch_seconds_ = registry->AddHistogram("resweep_sqlite_commit_seconds", commit_help,
                                                 {{"phase", "batch"}}, LatencyBuckets());
  commit_sync_seconds_ = registry->AddHistogram("resweep_sqlite_commit_seconds", commit_help,
                                                {{"phase", "sync"}}, LatencyBuckets());
  registry->AddCollector([this](PrometheusText* out) { Collect(out); });
}

void ServiceMetrics::RecordCall(std::string_view method, StatusCode code, double seconds) {
  auto it = methods_.find(method);
  if (it == methods_.end()) return;
  const int index = std::clamp(static_cast<int>(code), 0, kCodes - 1);
  it->second.handled[index].fetch_add(1, std::memory_order_relaxed);
  it->second.seconds->Observe(seconds);
  if (method == "ReportEpoch") {
    (code == StatusCode::kOk ? epochs_accepted_ : epochs_refused_)->Increment();
  }
}

void ServiceMetrics::Collect(PrometheusText* out) const {
  const std::string name = "grpc_server_handled_total";
  out->Family(name, "Calls completed, by method and gRPC status code (unary calls).", "counter");
  // In the service's method order, whatever the map's.
  std::vector<std::pair<std::string_view, const Method*>> ordered;
  for (const auto& [method, counts] : methods_) ordered.emplace_back(method, &counts);
  std::sort(ordered.begin(), ordered.end());
  for (const auto& [method, counts] : ordered) {
    for (int code = 0; code < kCodes; ++code) {
      const int64_t n = counts->handled[code].load(std::memory_order_relaxed);
      if (n == 0) continue;
      out->Sample(name,
                  {{"grpc_type", "unary"},
                   {"grpc_service", service_name_},
                   {"grpc_method", std::string(method)},
                   {"grpc_code", StatusCodeName(static_cast<StatusCode>(code))}},
                  static_cast<double>(n));
    }
  }
}

}  // namespace resweep
