#include "http/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string_view>

#include "common/file_util.h"
#include "http/metrics_server.h"  // SplitListenAddress
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
        spdlog::warn("http: GET {}: no change stamp, not cached: {}", path,
                     read.status().ToString());
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
  server_->set_read_timeout(10, 0);
  server_->set_write_timeout(30, 0);

  // Every request passes here first: only GET, and with tokens, a read (or admin) one.
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.method != "GET" && req.method != "HEAD") {
      Reply(res, ErrorReply(UnimplementedError(req.method + " " + req.path +
                                               ": the HTTP API is read-only (GET only)")));
      res.status = 405;
      res.set_header("Allow", "GET, HEAD");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!tokens_ || IsDashboardPath(req.path)) return httplib::Server::HandlerResponse::Unhandled;
    std::optional<std::string> authorization;
    if (req.has_header("Authorization")) authorization = req.get_header_value("Authorization");
    const std::string what = "GET " + req.path;
    const Status allowed = AuthorizeCall(tokens_, authorization, Role::kRead, what.c_str());
    if (allowed.ok()) return httplib::Server::HandlerResponse::Unhandled;
    // Never the token: only what was refused and why.
    spdlog::warn("http: {} from {} refused: {}", what, req.remote_addr, allowed.ToString());
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
  // Unknown paths (no handler matched): JSON like every other error.
  server_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      Reply(res, ErrorReply(NotFoundError("no such path: " + req.path +
                                          " (the API is under /api/v1, see docs/http-api.md)")));
    }
  });
  server_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr error) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("http: GET {}: {}", req.path, what);
        Reply(res, ErrorReply(InternalError("GET " + req.path + ": " + what)));
      });
  server_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("http: {} {} from {}: {}", req.method, req.path, req.remote_addr, res.status);
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
  thread_ = std::thread([this] {
    if (!server_->listen_after_bind()) spdlog::error("http: the server stopped unexpectedly");
  });
  spdlog::info(
      "http: serving the dashboard, the JSON API and /metrics on {} (port {}), {}, {}, reply "
      "cache {}",
      options.listen, port_, options.tls_cert_file.empty() ? "plaintext" : "TLS",
      tokens_ ? "read tokens required" : "no token required",
      cache_->enabled() ? fmt::format("of {} bytes", cache_->max_bytes()) : std::string("off"));
  return Status::Ok();
}

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace resweep::http
