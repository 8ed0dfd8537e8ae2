// A plain HTTP server of one page: GET /metrics, a MetricsRegistry in the
// Prometheus text format. What the worker serves with --metrics-listen (plaintext,
// no token: loopback unless the user says otherwise). Needs only common/.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "common/status.h"

namespace httplib {
class Server;
}

namespace resweep::http {

class MetricsServer {
 public:
  // `metrics` must outlive the server.
  explicit MetricsServer(const MetricsRegistry* metrics);
  ~MetricsServer();

  // Binds `listen` (host:port or [v6]:port; port 0 picks one) and starts serving.
  Status Start(const std::string& listen);
  int port() const { return port_; }
  // Stops serving and waits for requests in progress. Safe to call twice.
  void Stop();

 private:
  const MetricsRegistry* const metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// host and port of "host:port" or "[v6]:port" (the host without brackets);
// INVALID_ARGUMENT naming `flag` otherwise.
StatusOr<std::pair<std::string, int>> SplitListenAddress(const std::string& listen,
                                                         const std::string& flag);

}  // namespace resweep::http
