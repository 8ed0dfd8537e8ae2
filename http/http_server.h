// The coordinator's HTTP face (resweep-coordinator --http): the dashboard (web/,
// embedded: `/` and `/static/...`, docs/dashboard.md), the JSON API (json_api.h,
// docs/http-api.md) and /metrics (Prometheus text format), served by cpp-httplib on
// threads of its own. Security as for gRPC: TLS from the same certificate and key
// (and client CA) when given, and with role tokens every request for data (the API,
// /metrics) needs "Authorization: Bearer <token>" of a read (or admin) token; the
// dashboard's own files hold no data and need none. Only GET. API replies carry an
// ETag and answer If-None-Match with 304. The replies about one sweep (what the
// dashboard polls) are kept in a ReplyCache (reply_cache.h) under the sweep's change
// stamp: while the sweep stands still, a poll is answered without its query.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/metrics.h"
#include "common/status.h"
#include "coordinator/auth.h"
#include "coordinator/scheduler.h"
#include "http/json_api.h"
#include "http/reply_cache.h"
#include "http/request_log.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace resweep::http {

struct HttpServerOptions {
  std::string listen = "127.0.0.1:8080";  // host:port ([v6]:port); port 0 picks one
  // TLS (PEM files): both or neither; with a client CA, clients need a certificate
  // it signed.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  const TokenTable* tokens = nullptr;  // null: no token needed
  // The reply cache's bound (--http-cache-bytes); 0: no cache, every request queries.
  size_t cache_bytes = kDefaultCacheBytes;
  static constexpr size_t kDefaultCacheBytes = 64 << 20;
};

// Whether a request's If-None-Match header value holds `etag` (a quoted ETag): then
// the reply is 304 Not Modified. Compares weakly (W/ prefixes ignored), "*" holds.
bool IfNoneMatchHolds(std::string_view if_none_match, std::string_view etag);

class HttpServer {
 public:
  // `scheduler` and `metrics` (null: no /metrics) must outlive the server. The reply
  // cache's counters are registered in `metrics` (resweep_http_cache_*).
  HttpServer(Scheduler* scheduler, MetricsRegistry* metrics);
  ~HttpServer();

  // Binds and starts serving; returns once listening.
  Status Start(const HttpServerOptions& options);
  int port() const { return port_; }
  // Stops accepting requests and waits for those in progress, for kStopGrace; then
  // ends the connections still open (a request still arriving, a slow reader) and
  // waits for their threads. Safe to call twice.
  void Stop();

 private:
  // GET /api/v1<path>: from the cache when it may answer, else by the query.
  void ServeApi(const httplib::Request& req, httplib::Response& res, const std::string& path);

  Scheduler* const scheduler_;
  JsonApi api_;
  MetricsRegistry* const metrics_;
  std::unique_ptr<ReplyCache> cache_;
  // In `metrics_` (null without one).
  Counter* cache_hits_ = nullptr;
  Counter* cache_misses_ = nullptr;
  Counter* cache_evictions_ = nullptr;
  Gauge* cache_bytes_ = nullptr;
  const TokenTable* tokens_ = nullptr;
  // Refused requests: the first 20 a minute logged at warn, the rest at debug.
  LogRateLimit refusal_log_{20, std::chrono::minutes(1)};
  std::unique_ptr<httplib::Server> server_;
  static constexpr std::chrono::seconds kStopGrace{2};
  std::thread thread_;
  // Set by thread_ when the server has stopped and every connection's thread ended.
  std::mutex stopped_mu_;
  std::condition_variable stopped_cv_;
  bool stopped_ = false;
  int port_ = 0;
  int listen_fd_ = -1;  // the listening socket (httplib's), once bound
};

}  // namespace resweep::http
