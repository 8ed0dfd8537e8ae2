// resweep-coordinator: the gRPC service that queues, leases and records runs.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <memory>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "common/channel.h"
#include "common/logging.h"
#include "common/version.h"
#include "coordinator/server.h"
#include "http/http_server.h"

int main(int argc, char** argv) {
  CLI::App app{"resweep-coordinator: queues sweep runs, leases them to workers, records results"};
  resweep::CoordinatorOptions options;
  double lease_seconds = 30, heartbeat_seconds = 5, forget_workers_after_hours = 7 * 24;
  double quarantine_seconds = 60, quarantine_max_seconds = 3600, progress_timeout_seconds = 3600;
  std::string port_file, log_level = "info";
  bool insecure = false;
  app.set_version_flag("--version",
                       std::string("resweep-coordinator ") + resweep::ResweepVersion());
  app.add_option("--listen", options.listen, "address:port to serve on (port 0: pick one)")
      ->capture_default_str();
  app.add_option("--db", options.db_path, "SQLite database file (created if missing)")
      ->capture_default_str();
  app.add_flag("--allow-network-filesystem", options.allow_network_filesystem,
               "open a --db on a network filesystem (NFS, Lustre, GPFS, CIFS, ...) anyway; "
               "SQLite's write-ahead log can corrupt it there");
  app.add_option("--artifacts", options.artifacts_dir,
                 "directory for run checkpoints (default: <db>.artifacts)");
  app.add_option("--lease-seconds", lease_seconds,
                 "a run whose worker is silent this long is queued again")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--heartbeat-seconds", heartbeat_seconds, "how often workers heartbeat")
      ->capture_default_str()
      ->check(CLI::Range(0.02, 3600.0));
  app.add_option("--max-attempts", options.scheduler.default_max_attempts,
                 "leases a run may lose (or retryable failures) before it fails")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--quarantine-after", options.scheduler.quarantine_after_host_faults,
                 "host faults in a row (no success between) after which a worker gets no "
                 "leases for a while")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--quarantine-seconds", quarantine_seconds,
                 "a worker's first quarantine; each further one before a success doubles it")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 86400.0 * 7));
  app.add_option("--quarantine-max-seconds", quarantine_max_seconds, "longest quarantine")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 86400.0 * 30));
  app.add_option("--host-fault-workers", options.scheduler.host_fault_workers_to_fail,
                 "a run with host faults on this many different workers fails (with a single "
                 "worker, 1 fails such runs; otherwise they wait for a second worker)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--progress-timeout-seconds", progress_timeout_seconds,
                 "a lease whose heartbeats report no new batch or epoch for this long is given "
                 "back as a host fault (0: never; workers keep their own, shorter deadline)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0 * 30));
  app.add_option("--max-runs-per-sweep", options.scheduler.spec_limits.max_runs,
                 "largest grid x seeds accepted")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--submits-per-minute", options.scheduler.submits_per_minute,
                 "sustained rate of sweep submissions accepted (0: unlimited)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--submit-burst", options.scheduler.submit_burst,
                 "submissions accepted at once before the rate applies")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--max-active-runs", options.scheduler.max_active_runs,
                 "queued + running runs over all sweeps; larger submissions are refused")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--max-checkpoint-bytes", options.scheduler.max_checkpoint_bytes,
                 "largest checkpoint a worker may upload")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1} << 10, int64_t{1} << 40));
  app.add_option("--max-uploads-per-worker", options.scheduler.max_uploads_per_worker,
                 "checkpoint upload calls one worker may have in progress at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  double sweep_seconds = 600, stale_upload_seconds = 3600, keep_finished_hours = 168;
  double statistics_seconds = 5;
  app.add_option("--statistics-refresh-seconds", statistics_seconds,
                 "how often the statistics of sweeps whose results changed are computed and "
                 "stored, so that results (also offline with --db) need not compute them (0: "
                 "never)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--artifact-sweep-seconds", sweep_seconds,
                 "how often abandoned uploads and unneeded checkpoints are removed (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--stale-upload-seconds", stale_upload_seconds,
                 "an upload or unrecorded checkpoint file untouched this long is removed")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e8));
  app.add_option("--keep-finished-checkpoints-hours", keep_finished_hours,
                 "checkpoints of failed or cancelled runs are kept this long for `resweep retry`")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--max-workers-per-identity", options.scheduler.max_workers_per_identity,
                 "worker registrations per token (and client certificate); at the cap the "
                 "oldest silent ones are forgotten, and with none silent a registration is refused")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--forget-workers-after-hours", forget_workers_after_hours,
                 "registrations with no contact for this long are forgotten (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--max-message-bytes", options.max_message_bytes,
                 "largest gRPC message accepted or sent")
      ->capture_default_str()
      ->check(CLI::Range(1 << 16, 1 << 30));
  app.add_option("--tls-cert", options.tls_cert_file, "server certificate chain (PEM): serve TLS");
  app.add_option("--tls-key", options.tls_key_file, "server private key (PEM)");
  app.add_option("--tls-client-ca", options.tls_client_ca_file,
                 "require client certificates signed by this CA (PEM): mutual TLS");
  app.add_option("--token-file", options.token_file,
                 "role tokens, one '<worker|admin|read> <token>' per line: every call of the "
                 "Coordinator service needs one (health and reflection need none)");
  app.add_flag("--insecure", insecure,
               "allow listening beyond loopback without TLS and tokens (trusted networks only)");
  app.add_option("--port-file", port_file, "write the port actually bound to this file");
  std::string http_listen, http_port_file;
  app.add_option("--http", http_listen,
                 "also serve the JSON API and /metrics over HTTP on this address:port (port 0: "
                 "pick one); same TLS certificate and role tokens as gRPC (a read token "
                 "suffices). Off by default");
  app.add_option("--http-port-file", http_port_file,
                 "write the HTTP port actually bound to this file");
  size_t http_cache_bytes = resweep::http::HttpServerOptions::kDefaultCacheBytes;
  app.add_option("--http-cache-bytes", http_cache_bytes,
                 "bound of the HTTP reply cache: replies about a sweep (what a dashboard "
                 "polls) are kept until the sweep changes, so that an unchanged poll runs no "
                 "query (docs/http-api.md); 0: off")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, size_t{1} << 40));
  std::string health_port_file;
  app.add_option("--health-listen", options.health_listen,
                 "also serve grpc.health.v1.Health alone, in plaintext and without tokens, on "
                 "this address:port (port 0: pick one), for probes that cannot speak TLS "
                 "(Kubernetes gRPC probes); it serves nothing else. Off by default");
  app.add_option("--health-port-file", health_port_file,
                 "write the health port actually bound to this file");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  resweep::InitLogging("coordinator", log_level);
  // Secure by default: beyond loopback, both TLS and role tokens, unless the user
  // says --insecure.
  const bool secured = !options.tls_cert_file.empty() && !options.token_file.empty();
  // A host without a port listens on resweep's port, as clients assume.
  options.listen = resweep::NormalizeCoordinatorAddress(options.listen);
  if (!resweep::IsLoopbackListenAddress(options.listen) && !secured) {
    if (!insecure) {
      spdlog::critical(
          "refusing to listen on {} without TLS (--tls-cert/--tls-key) and role tokens "
          "(--token-file): only loopback addresses (127.0.0.0/8, [::1], localhost) may go "
          "without. Pass --insecure to serve a trusted network anyway.",
          options.listen);
      return 2;
    }
    spdlog::warn("--insecure: serving {} without {}", options.listen,
                 options.tls_cert_file.empty() ? "TLS" : "role tokens");
  }
  // The same rule for the HTTP face.
  if (!http_listen.empty() && !resweep::IsLoopbackListenAddress(http_listen) && !secured) {
    if (!insecure) {
      spdlog::critical(
          "refusing to serve HTTP on {} without TLS (--tls-cert/--tls-key) and role tokens "
          "(--token-file): only loopback addresses (127.0.0.0/8, [::1], localhost) may go "
          "without. Pass --insecure to serve a trusted network anyway.",
          http_listen);
      return 2;
    }
    spdlog::warn("--insecure: serving HTTP on {} without {}", http_listen,
                 options.tls_cert_file.empty() ? "TLS" : "role tokens");
  }
  options.scheduler.lease_ms = static_cast<int64_t>(lease_seconds * 1000);
  options.artifact_sweep_ms = static_cast<int64_t>(sweep_seconds * 1000);
  options.statistics_refresh_ms =
      statistics_seconds > 0 ? std::max<int64_t>(1, static_cast<int64_t>(statistics_seconds * 1000))
                             : 0;
  options.scheduler.stale_upload_ms = static_cast<int64_t>(stale_upload_seconds * 1000);
  options.scheduler.finished_checkpoint_retention_ms =
      static_cast<int64_t>(keep_finished_hours * 3600 * 1000);
  // TEST ONLY: RESWEEP_TEST_CRASH_AT=<point>[@<n>] makes the coordinator exit at once
  // (status 86, no cleanup, like a crash) the n-th time (default: first) it passes the
  // named crash point (see SchedulerOptions::test_crash_point). Read once, here; the
  // integration tests use it to kill the coordinator between two steps of a commit.
  if (const char* crash_at = std::getenv("RESWEEP_TEST_CRASH_AT"); crash_at && *crash_at) {
    std::string point = crash_at;
    int nth = 1;
    if (auto at = point.find('@'); at != std::string::npos) {
      nth = std::max(1, std::atoi(point.c_str() + at + 1));
      point.resize(at);
    }
    spdlog::warn("RESWEEP_TEST_CRASH_AT: test-only crash at {} (pass {})", point, nth);
    auto passes = std::make_shared<std::atomic<int>>(0);
    options.scheduler.test_crash_point = [point, nth, passes](const std::string& reached) {
      if (reached != point || ++*passes != nth) return;
      spdlog::critical("RESWEEP_TEST_CRASH_AT: crashing at {} (pass {})", point, nth);
      spdlog::default_logger()->flush();
      std::_Exit(86);
    };
  }
  options.scheduler.heartbeat_ms = static_cast<int64_t>(heartbeat_seconds * 1000);
  options.scheduler.forget_workers_after_ms =
      static_cast<int64_t>(forget_workers_after_hours * 3600 * 1000);
  options.scheduler.quarantine_base_ms = static_cast<int64_t>(quarantine_seconds * 1000);
  options.scheduler.progress_timeout_ms = static_cast<int64_t>(progress_timeout_seconds * 1000);
  options.scheduler.quarantine_max_ms = std::max(
      options.scheduler.quarantine_base_ms, static_cast<int64_t>(quarantine_max_seconds * 1000));
  if (options.scheduler.heartbeat_ms * 2 > options.scheduler.lease_ms) {
    spdlog::warn(
        "heartbeat interval {} ms is more than half the lease {} ms: leases may expire "
        "under a healthy worker",
        options.scheduler.heartbeat_ms, options.scheduler.lease_ms);
  }

  // Signals are taken by a dedicated thread; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  resweep::CoordinatorServer server;
  resweep::Status st = server.Start(options);
  if (!st.ok()) {
    spdlog::critical("cannot start: {}", st.ToString());
    return 1;
  }
  auto write_port = [](const std::string& path, int port) {
    const std::string tmp = path + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), path.c_str());
  };
  // The HTTP face reads through the running server's scheduler: started after it,
  // stopped before it.
  std::unique_ptr<resweep::http::HttpServer> http;
  if (!http_listen.empty()) {
    http = std::make_unique<resweep::http::HttpServer>(server.scheduler(), server.metrics());
    st = http->Start({.listen = http_listen,
                      .tls_cert_file = options.tls_cert_file,
                      .tls_key_file = options.tls_key_file,
                      .tls_client_ca_file = options.tls_client_ca_file,
                      .tokens = server.tokens(),
                      .cache_bytes = http_cache_bytes});
    if (!st.ok()) {
      spdlog::critical("cannot start the HTTP server: {}", st.ToString());
      server.Shutdown(0);
      return 1;
    }
    if (!http_port_file.empty()) write_port(http_port_file, http->port());
  }
  if (!health_port_file.empty() && server.health_port() != 0) {
    write_port(health_port_file, server.health_port());
  }
  if (!port_file.empty()) write_port(port_file, server.port());
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("signal {}: shutting down", signal_number);
  // Probes hear NOT_SERVING before any face closes.
  server.BeginShutdown();
  if (http) {
    http->Stop();
    spdlog::info("http: stopped");
  }
  server.Shutdown(2000);
  return 0;
}
