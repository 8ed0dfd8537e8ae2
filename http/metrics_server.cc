#include "http/metrics_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

namespace resweep::http {

StatusOr<std::pair<std::string, int>> SplitListenAddress(const std::string& listen,
                                                         const std::string& flag) {
  std::string host;
  std::string port;
  if (!listen.empty() && listen[0] == '[') {
    const size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return InvalidArgumentError(flag + " " + listen + ": expected [v6 address]:port");
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) {
      return InvalidArgumentError(flag + " " + listen + ": expected host:port");
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
      port.size() > 5 || std::stoi(port) > 65535) {
    return InvalidArgumentError(flag + " " + listen + ": expected host:port (port 0 to 65535)");
  }
  return std::make_pair(host, std::stoi(port));
}

MetricsServer::MetricsServer(const MetricsRegistry* metrics) : metrics_(metrics) {}

MetricsServer::~MetricsServer() { Stop(); }

Status MetricsServer::Start(const std::string& listen) {
  RESWEEP_ASSIGN_OR_RETURN(auto host_port, SplitListenAddress(listen, "--metrics-listen"));
  server_ = std::make_unique<httplib::Server>();
  server_->set_payload_max_length(64 << 10);
  server_->set_read_timeout(10, 0);
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_->RenderPrometheus(), "text/plain; version=0.0.4; charset=utf-8");
  });
  const auto& [host, port] = host_port;
  port_ =
      port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : 0);
  if (port_ <= 0) {
    port_ = 0;
    return UnavailableError("--metrics-listen: cannot listen on " + listen);
  }
  thread_ = std::thread([this] {
    if (!server_->listen_after_bind()) spdlog::error("metrics: the server stopped unexpectedly");
  });
  spdlog::info("metrics: serving /metrics on {} (port {})", listen, port_);
  return Status::Ok();
}

void MetricsServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace resweep::http
