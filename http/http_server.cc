#include "http/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string_view>

#include "common/file_util.h"
#include "http/elastic_pool.h"
#include "http/metrics_server.h"  // SplitListenAddress
#include "http/request_log.h"
#include "http/web_assets.h"

namespace resweep::http {

namespace {

void Reply(httplib::Response& res, const HttpReply& reply) {
  res.status = reply.status;
  res.set_content(reply.body, reply.content_type.c_str());
}

// A strong ETag for a reply body: its bytes hashed (FNV-1a, 64 bits), quoted.
std::string BodyEtag(std::string_view body) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : body) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  char text[24];
  std::snprintf(text, sizeof(text), "\"%016llx\"", static_cast<unsigned long long>(hash));
  return text;
}

// Answers 200 with `body` and its ETag, or 304 (no body) when the request's
// If-None-Match names that ETag. `cache_control` says how a browser may reuse it.
void ReplyWithEtag(const httplib::Request& req, httplib::Response& res, std::string_view etag,
                   std::string_view body, const char* content_type, const char* cache_control) {
  res.set_header("ETag", std::string(etag));
  res.set_header("Cache-Control", cache_control);
  if (req.has_header("If-None-Match") &&
      IfNoneMatchHolds(req.get_header_value("If-None-Match"), etag)) {
    // httplib adds "Content-Length: 0". RFC 9110 8.6 would have none or the 200's
    // length, but cpp-httplib 0.11's own client reads a 304 without one until the
    // connection closes (and one with the 200's length, until that many bytes came):
    // kept, as harmless elsewhere (a 304 ends at its header, RFC 9112 6.3; caches do
    // not take Content-Length from it, RFC 9111 3.2). docs/http-api.md.
    res.status = 304;
    return;
  }
  res.status = 200;
  res.set_content(body.data(), body.size(), content_type);
}

// The dashboard's pages and files (web/), which hold no data: served without a
// token, so that the page can load and ask for one.
bool IsDashboardPath(const std::string& path) {
  return path == "/" || path == "/index.html" || path.rfind("/static/", 0) == 0;
}

// The reply to a method other than GET and HEAD: 405 UNIMPLEMENTED (HttpStatusOf).
void ReplyMethodNotAllowed(httplib::Response& res, const std::string& what) {
  Reply(res, ErrorReply(UnimplementedError(what + ": the HTTP API is read-only (GET only)")));
  res.set_header("Allow", "GET, HEAD");
}

// Whether httplib refused a request (400, before any handler) for its method alone:
// a well-formed method token httplib does not know (it knows GET, HEAD, POST, PUT,
// DELETE, CONNECT, OPTIONS, TRACE, PATCH and PRI, and sends those to the handlers).
bool IsUnknownMethod(const httplib::Request& req) {
  static const std::string_view kKnown[] = {"GET",     "HEAD",    "POST",  "PUT",   "DELETE",
                                            "CONNECT", "OPTIONS", "TRACE", "PATCH", "PRI"};
  if (req.method.empty() || (req.version != "HTTP/1.1" && req.version != "HTTP/1.0")) {
    return false;
  }
  for (const std::string_view known : kKnown) {
    if (req.method == known) return false;
  }
  // RFC 9110 5.6.2: token = 1*tchar.
  for (const char c : req.method) {
    const bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!tchar) return false;
  }
  return true;
}

// The reply when even building an error reply failed: fixed bytes, nothing thrown.
void ReplyInternalFallback(httplib::Response& res) noexcept {
  try {
    res.status = 500;
    res.body.clear();
    res.set_content("{\"code\":\"INTERNAL\",\"message\":\"internal error\"}\n", "application/json");
  } catch (...) {
  }
}

// Threads for connections (elastic_pool.h): 8 kept (httplib's default pool), up to
// 256 while that many clients are connected at once; those beyond 8 end after 30 s
// without work.
constexpr size_t kMinThreads = 8;
constexpr size_t kMaxThreads = 256;
constexpr std::chrono::milliseconds kIdleThreadExit{30000};

}  // namespace

bool IfNoneMatchHolds(std::string_view if_none_match, std::string_view etag) {
  // A comma-separated list of ETags (weak ones W/-prefixed: compared weakly, as
  // RFC 9110 asks for If-None-Match), or "*".
  size_t start = 0;
  while (start < if_none_match.size()) {
    size_t end = if_none_match.find(',', start);
    if (end == std::string_view::npos) end = if_none_match.size();
    std::string_view tag = if_none_match.substr(start, end - start);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag == "*") return true;
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    std::string_view ours = etag.substr(0, 2) == "W/" ? etag.substr(2) : etag;
    if (!tag.empty() && tag == ours) return true;
    start = end + 1;
  }
  return false;
}

HttpServer::HttpServer(Scheduler* scheduler, MetricsRegistry* metrics)
    : scheduler_(scheduler), api_(scheduler), metrics_(metrics) {
  if (metrics_) {
    cache_hits_ = metrics_->AddCounter(
        "resweep_http_cache_hits_total",
        "JSON API replies about a sweep answered from the reply cache (the sweep unchanged).");
    cache_misses_ = metrics_->AddCounter(
        "resweep_http_cache_misses_total",
        "JSON API replies about a sweep computed by their query (none cached, or the sweep "
        "changed since), with the reply cache on.");
    cache_evictions_ = metrics_->AddCounter(
        "resweep_http_cache_evictions_total",
        "Replies dropped from the reply cache to make room (--http-cache-bytes).");
    cache_bytes_ =
        metrics_->AddGauge("resweep_http_cache_bytes", "Bytes the reply cache holds (about).");
  }
}

void HttpServer::ServeApi(const httplib::Request& req, httplib::Response& res,
                          const std::string& path) {
  const QueryParams params(req.params.begin(), req.params.end());
  // A reply about one sweep may come from the cache. The sweep's id and stamp are read
  // first, and the query then asks for that id: the entry is about exactly that sweep
  // (a name or prefix may name another one later) and of its data at that stamp or
  // newer (ReplyCache's contract). When the sweep is not found (or the reference is
  // ambiguous) the query runs as given and says so.
  std::string key;
  int64_t stamp = 0;
  std::string query_path = path;
  if (cache_->enabled()) {
    if (const std::string sweep = SweepOfPath(path); !sweep.empty()) {
      auto read = scheduler_->SweepChangeStamp(sweep);
      if (read.ok()) {
        query_path = PathWithSweep(path, read->sweep_id);
        key = ReplyCacheKey(query_path, params);
        stamp = read->stamp;
        if (auto hit = cache_->Find(key, stamp)) {
          if (cache_hits_) cache_hits_->Increment();
          ReplyWithEtag(req, res, hit->etag, hit->body, hit->content_type.c_str(), "no-cache");
          return;
        }
        if (cache_misses_) cache_misses_->Increment();
      } else if (read.status().code() != StatusCode::kNotFound &&
                 read.status().code() != StatusCode::kInvalidArgument) {
        spdlog::warn("http: GET {}: no change stamp, not cached: {}", EscapeForLog(path),
                     EscapeForLog(read.status().ToString()));
      }
    }
  }
  HttpReply reply = api_.Get(query_path, params);
  // An error is told about the sweep as the caller named it (and nothing is cached:
  // the query as given may be about another sweep by now).
  if (reply.status != 200 && query_path != path) {
    reply = api_.Get(path, params);
    key.clear();
  }
  if (reply.status != 200) {
    Reply(res, reply);
    return;
  }
  auto computed = std::make_shared<CachedReply>(
      CachedReply{std::move(reply.content_type), std::move(reply.body), std::string()});
  computed->etag = BodyEtag(computed->body);
  // Pollers (the dashboard) send the ETag back and get a 304 while nothing changed.
  // no-cache: a browser keeps the reply but asks again each time.
  ReplyWithEtag(req, res, computed->etag, computed->body, computed->content_type.c_str(),
                "no-cache");
  if (key.empty()) return;
  const int evicted = cache_->Insert(key, stamp, std::move(computed));
  if (cache_evictions_ && evicted > 0) cache_evictions_->Increment(evicted);
  if (cache_bytes_) cache_bytes_->Set(static_cast<double>(cache_->bytes()));
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start(const HttpServerOptions& options) {
  RESWEEP_ASSIGN_OR_RETURN(auto host_port, SplitListenAddress(options.listen, "--http"));
  tokens_ = options.tokens;
  cache_ = std::make_unique<ReplyCache>(options.cache_bytes);
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  if (!options.tls_cert_file.empty()) {
    // Read here first, so that a missing file is named (the server only says "invalid").
    for (const auto& [path, flag] : {std::pair{options.tls_cert_file, "--tls-cert"},
                                     {options.tls_key_file, "--tls-key"},
                                     {options.tls_client_ca_file, "--tls-client-ca"}}) {
      if (!path.empty()) RESWEEP_RETURN_IF_ERROR(ReadNamedFile(path, flag).status());
    }
    auto tls = std::make_unique<httplib::SSLServer>(
        options.tls_cert_file.c_str(), options.tls_key_file.c_str(),
        options.tls_client_ca_file.empty() ? nullptr : options.tls_client_ca_file.c_str());
    if (!tls->is_valid()) {
      return InvalidArgumentError("--http: cannot use TLS certificate " + options.tls_cert_file +
                                  " with key " + options.tls_key_file);
    }
    server_ = std::move(tls);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  // Requests are GETs: no body worth more than this.
  server_->set_payload_max_length(64 << 10);
  // Each connection has a thread while it lasts (also while a client sends its request
  // slowly): threads as connections come, up to a bound (slowloris, elastic_pool.h).
  server_->new_task_queue = [] {
    return new ElasticThreadPool(kMinThreads, kMaxThreads, kIdleThreadExit);
  };
  // A client silent for this long (per read, not per request) is dropped.
  server_->set_read_timeout(5, 0);
  server_->set_write_timeout(30, 0);
  // Replies are whole (Range is ignored, below): say so on every reply, also HEAD's
  // (httplib would say "bytes").
  server_->set_default_headers({{"Accept-Ranges", "none"}});
  // httplib 0.11 listens with a backlog of 5: a burst of connections (while the pool
  // starts threads for the ones before) overflowed it, and a client's connect was
  // refused or retried a second later. The listening socket is noted here (httplib's
  // own options set as well) and told the system's bound after the bind, below.
  server_->set_socket_options([this](int sock) {
    httplib::default_socket_options(sock);
    listen_fd_ = sock;
  });

  // Every request passes here first: only GET, and with tokens, a read (or admin) one.
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // Whole replies only: httplib would cut a reply's body to a Range header and keep
    // its status (200, never 206 as our handlers set it), so the header is ignored
    // (RFC 9110 14.2 lets a server). `req` is httplib's own non-const Request (a local
    // of its request loop) handed here as const. (A Range value that httplib cannot
    // parse is refused 416 before any handler.)
    const_cast<httplib::Request&>(req).ranges.clear();
    if (req.method != "GET" && req.method != "HEAD") {
      ReplyMethodNotAllowed(res, req.method + " " + req.path);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!tokens_ || IsDashboardPath(req.path)) return httplib::Server::HandlerResponse::Unhandled;
    std::optional<std::string> authorization;
    if (req.has_header("Authorization")) authorization = req.get_header_value("Authorization");
    const std::string what = "GET " + req.path;
    const Status allowed = AuthorizeCall(tokens_, authorization, Role::kRead, what.c_str());
    if (allowed.ok()) return httplib::Server::HandlerResponse::Unhandled;
    // Never the token: only what was refused and why, escaped (the path is the
    // client's). Any client can make these, so beyond a few a minute they go to debug.
    const LogRateLimit::Decision decision = refusal_log_.Admit();
    if (decision.demoted > 0) {
      spdlog::warn("http: {} more requests refused since (logged at debug level)",
                   decision.demoted);
    }
    spdlog::log(decision.loud ? spdlog::level::warn : spdlog::level::debug,
                "http: {} from {} refused: {}", EscapeForLog(what), req.remote_addr,
                EscapeForLog(allowed.ToString()));
    Reply(res, ErrorReply(allowed));
    if (allowed.code() == StatusCode::kUnauthenticated) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"resweep\"");
    }
    return httplib::Server::HandlerResponse::Handled;
  });

  server_->Get(R"(/api/v1(/.*)?)", [this](const httplib::Request& req, httplib::Response& res) {
    ServeApi(req, res, req.matches.size() > 1 ? req.matches[1].str() : std::string());
  });
  // The dashboard (docs/dashboard.md): one page, its script, style and library.
  // no-cache: a browser revalidates each file with its ETag (a 304 until the binary
  // serves different bytes), so that a new coordinator never runs an old script.
  auto serve_asset = [](const httplib::Request& req, httplib::Response& res,
                        const std::string& path) {
    const WebAsset* asset = FindWebAsset(path);
    if (!asset) {
      Reply(res, ErrorReply(NotFoundError("no such dashboard file: " + req.path)));
      return;
    }
    res.set_header("X-Content-Type-Options", "nosniff");
    // Scripts only from the dashboard's own files (none inline, no eval): text that
    // reaches the page as HTML cannot run. Inline styles: dygraphs sets them.
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                   "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                   "form-action 'none'; frame-ancestors 'none'");
    ReplyWithEtag(req, res, asset->etag, asset->bytes, std::string(asset->content_type).c_str(),
                  "no-cache");
  };
  server_->Get("/", [serve_asset](const httplib::Request& req, httplib::Response& res) {
    serve_asset(req, res, "index.html");
  });
  server_->Get("/index.html", [serve_asset](const httplib::Request& req, httplib::Response& res) {
    serve_asset(req, res, "index.html");
  });
  server_->Get(R"(/static/(.+))",
               [serve_asset](const httplib::Request& req, httplib::Response& res) {
                 serve_asset(req, res, req.matches[1].str());
               });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    if (!metrics_) {
      Reply(res, ErrorReply(NotFoundError("this server has no metrics")));
      return;
    }
    res.status = 200;
    res.set_content(metrics_->RenderPrometheus(), "text/plain; version=0.0.4; charset=utf-8");
  });
  // Every error reply without a body of ours passes here (outside httplib's try: it
  // must not throw). Unknown paths (no handler matched): JSON like every other error;
  // a method httplib does not know: 405 like the ones it knows.
  server_->set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                     httplib::Response& res) {
    try {
      if (res.status == 404 && res.body.empty()) {
        Reply(res, ErrorReply(NotFoundError("no such path: " + req.path +
                                            " (the API is under /api/v1, see docs/http-api.md)")));
        return httplib::Server::HandlerResponse::Handled;
      }
      if (res.status == 400 && res.body.empty() && IsUnknownMethod(req)) {
        ReplyMethodNotAllowed(res, req.method + " " + req.target);
        // httplib stopped reading at the request line: the rest of this request is not
        // a request, and the connection is no use after it.
        res.set_header("Connection", "close");
        return httplib::Server::HandlerResponse::Handled;
      }
    } catch (...) {
      ReplyInternalFallback(res);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }));
  // Must not throw either: httplib calls it from its catch block, and a throw from
  // there ends the process.
  server_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr error) {
        try {
          std::string what = "unknown exception";
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          spdlog::error("http: {} {}: {}", EscapeForLog(req.method), EscapeForLog(req.path),
                        EscapeForLog(what));
          Reply(res, ErrorReply(InternalError(req.method + " " + req.path + ": " + what)));
        } catch (...) {
          ReplyInternalFallback(res);
        }
      });
  // Last before a reply goes out: a reply that closes its connection (the 405 for an
  // unknown method) does not also offer to keep it alive (httplib adds Keep-Alive).
  server_->set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.get_header_value("Connection") == "close") res.headers.erase("Keep-Alive");
  });
  server_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("http: {} {} from {}: {}", EscapeForLog(req.method), EscapeForLog(req.path),
                  req.remote_addr, res.status);
  });

  const auto& [host, port] = host_port;
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
  } else {
    port_ = server_->bind_to_port(host, port) ? port : 0;
  }
  if (port_ <= 0) {
    port_ = 0;
    return UnavailableError("--http: cannot listen on " + options.listen);
  }
  if (listen_fd_ < 0 || ::listen(listen_fd_, SOMAXCONN) != 0) {
    spdlog::warn("http: the listen backlog stays httplib's (5)");
  }
  thread_ = std::thread([this] {
    if (!server_->listen_after_bind()) spdlog::error("http: the server stopped unexpectedly");
    std::lock_guard<std::mutex> lock(stopped_mu_);
    stopped_ = true;
    stopped_cv_.notify_all();
  });
  spdlog::info(
      "http: serving the dashboard, the JSON API and /metrics on {} (port {}), {}, {}, reply "
      "cache {}",
      options.listen, port_, options.tls_cert_file.empty() ? "plaintext" : "TLS",
      tokens_ ? "read tokens required" : "no token required",
      cache_->enabled() ? fmt::format("of {} bytes", cache_->max_bytes()) : std::string("off"));
  return Status::Ok();
}

namespace {

// shutdown(2) on every connected TCP socket of this process whose local port is
// `port`: their threads, blocked reading a request a client sends slowly (or never
// finishes), see the end of it. The sockets are found in /proc/self/fd; a listening
// socket, or any other, is left alone.
void ShutDownConnectionsTo(int port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    sockaddr_storage addr{};
    socklen_t length = sizeof(addr);
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      continue;  // not a socket
    }
    int local_port = -1;
    if (addr.ss_family == AF_INET) {
      local_port = ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
    } else if (addr.ss_family == AF_INET6) {
      local_port = ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
    }
    int type = 0, listening = 0;
    socklen_t size = sizeof(int);
    if (local_port != port ||
        getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &size) != 0 ||
        type != SOCK_STREAM) {
      continue;
    }
    size = sizeof(int);
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 ||
        listening) {
      continue;
    }
    ::shutdown(static_cast<int>(fd), SHUT_RDWR);
  }
  closedir(dir);
}

}  // namespace

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (!thread_.joinable()) return;
  // The requests in progress get kStopGrace to finish; then the connections still
  // open are ended, so that clients that send slowly (or hold a connection open
  // without a request) cannot hold up a shutdown.
  {
    std::unique_lock<std::mutex> lock(stopped_mu_);
    if (!stopped_cv_.wait_for(lock, kStopGrace, [this] { return stopped_; })) {
      lock.unlock();
      spdlog::info("http: ending the connections still open");
      ShutDownConnectionsTo(port_);
    }
  }
  thread_.join();
}

}  // namespace resweep::http
