// resweep-worker: trains leased runs, one slot per device.
#include <csignal>
#include <cstdlib>
#include <thread>

#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include "common/channel.h"
#include "common/logging.h"
#include "common/version.h"
#include "http/metrics_server.h"
#include "worker/trainer_log.h"
#include "worker/worker.h"

namespace {

// The signals that stop the worker: every thread blocks them, and only the sigwait
// thread in main() takes them. A thread that did not block them would be picked by
// the kernel and killed with the whole process (exit 143), with no lease given back.
sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

void BlockStopSignals(int, char**, char**) {
  const sigset_t signals = StopSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

// Run by the dynamic loader before the static initialisers of every library and of
// this program, so every thread started from then on (LibTorch's intra-op pool,
// gRPC's executors, anything a static initialiser starts) inherits the mask.
using PreinitFunction = void (*)(int, char**, char**);
__attribute__((section(".preinit_array"), used)) PreinitFunction g_block_stop_signals =
    &BlockStopSignals;

}  // namespace

int main(int argc, char** argv) {
  // Already done before any initialiser ran; again here so that main() alone keeps
  // the contract.
  BlockStopSignals(argc, argv, nullptr);
  CLI::App app{"resweep-worker: pulls runs from the coordinator and trains them with LibTorch"};
  resweep::WorkerOptions options;
  options.coordinator = resweep::DefaultCoordinatorAddress();
  std::string device = "auto", log_level = "info";
  int slots = 1, threads = 0, runs_per_gpu = resweep::kDefaultRunsPerGpu;
  double poll_seconds = 1.0;
  double acquire_wait_seconds = 20.0;
  int64_t dataset_cache_mb = 2048;
  double progress_floor_seconds = 600, stuck_grace_seconds = 30;
  app.set_version_flag("--version", std::string("resweep-worker ") + resweep::ResweepVersion());
  app.add_option("--coordinator,-c", options.coordinator,
                 "coordinator address host:port [$RESWEEP_COORDINATOR]")
      ->capture_default_str();
  app.add_option("--device", device,
                 "auto | cpu | all | cuda:N[,cuda:M...]  (--runs-per-gpu slots per GPU)")
      ->capture_default_str();
  app.add_option("--runs-per-gpu", runs_per_gpu,
                 "runs trained at once on each GPU, each its own slot and CUDA stream")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--fuse-seeds", options.fuse_seeds,
                 "train up to F runs of one grid cell (its seeds) as one fused network per slot, "
                 "each run keeping its own lease and result (SGD sweeps without fp16 or gradient "
                 "clipping; others train one run per slot); 1 = off")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  app.add_option("--slots", slots, "CPU slots (runs at once) when training on the CPU")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--threads", threads, "intra-op CPU threads for LibTorch (0: cores / CPU slots)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--data-root", options.data_root,
                 "where relative dataset paths are found (a warning at start if it is missing)")
      ->capture_default_str();
  app.add_flag("--allow-test-hooks", options.allow_test_hooks,
               "run sweeps that use the synthetic trainer's hang settings (for testing the "
               "progress watchdog; otherwise such runs fail)");
  app.add_flag("--allow-absolute-data-paths", options.allow_absolute_data_paths,
               "let sweeps read data sets at absolute paths (by default dataset.path is "
               "relative and stays under --data-root)");
  app.add_option("--dataset-cache-mb", dataset_cache_mb,
                 "data sets kept loaded between runs, least recently used dropped first")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 24));
  app.add_option("--checkpoint-dir", options.checkpoint_dir,
                 "write checkpoints to this shared filesystem (mounted by every worker) "
                 "instead of uploading them to the coordinator");
  app.add_option("--name", options.name,
                 "worker name (default: host name); the coordinator appends -<8 hex digits> "
                 "to make this process's worker id, e.g. NAME-1a2b3c4d in `resweep runs`");
  app.add_option("--poll-seconds", poll_seconds,
                 "idle wait between acquire attempts when the coordinator does not long-poll")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 60.0));
  app.add_option("--acquire-wait-seconds", acquire_wait_seconds,
                 "an idle slot's AcquireRun waits up to this long at the coordinator for a run "
                 "(long-poll; 0 = ask and wait --poll-seconds between asks)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 60.0));
  app.add_option("--progress-floor-seconds", progress_floor_seconds,
                 "a run with no new batch or epoch for the larger of this and "
                 "--progress-factor x its longest epoch is given back as a host fault")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0 * 7));
  app.add_option("--progress-factor", options.progress_factor,
                 "progress deadline as a multiple of the run's longest epoch so far")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1000.0));
  app.add_option("--stuck-trainer-grace-seconds", stuck_grace_seconds,
                 "a trainer still running this long after being told to stop is left behind "
                 "(its slot takes no more runs)")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  resweep::ClientSecurityFlags security;
  app.add_option("--tls-ca", security.tls_ca_file,
                 "connect with TLS, trusting this CA (PEM) [$RESWEEP_TLS_CA]");
  app.add_option("--tls-cert", security.tls_cert_file,
                 "client certificate for mutual TLS (PEM) [$RESWEEP_TLS_CERT]");
  app.add_option("--tls-key", security.tls_key_file, "its private key (PEM) [$RESWEEP_TLS_KEY]");
  app.add_option("--token-file", security.token_file,
                 "file holding this worker's token, alone or on a 'worker <token>' line "
                 "[$RESWEEP_TOKEN_FILE, or $RESWEEP_TOKEN]");
  std::string metrics_listen;
  bool metrics_beyond_loopback = false;
  app.add_option("--metrics-listen", metrics_listen,
                 "serve Prometheus metrics (GET /metrics: images/s and epoch time per slot, "
                 "device memory, runs by outcome) on this address:port; plaintext, no token");
  app.add_flag("--metrics-beyond-loopback", metrics_beyond_loopback,
               "allow --metrics-listen on an address beyond loopback (a trusted network)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  resweep::InitLogging("worker", log_level);
  resweep::SetTrainerLogSink([](resweep::TrainerLogLevel level, const std::string& message) {
    switch (level) {
      case resweep::TrainerLogLevel::kDebug:
        spdlog::debug("{}", message);
        break;
      case resweep::TrainerLogLevel::kInfo:
        spdlog::info("{}", message);
        break;
      case resweep::TrainerLogLevel::kWarn:
        spdlog::warn("{}", message);
        break;
      case resweep::TrainerLogLevel::kError:
        spdlog::error("{}", message);
        break;
    }
  });

  auto client_security = resweep::LoadClientSecurity(security, {"worker"});
  if (!client_security.ok()) {
    spdlog::critical("{}", client_security.status().message());
    return 2;
  }
  options.security = std::move(*client_security);

  auto devices = resweep::ResolveDevices(device, slots, runs_per_gpu);
  if (!devices.ok()) {
    spdlog::critical("{}", devices.status().message());
    return 2;
  }
  options.devices = *devices;
  // The coordinator takes at most 64 lease slots per worker: F for each slot.
  if (options.devices.size() * static_cast<size_t>(options.fuse_seeds) > 64) {
    spdlog::critical(
        "{} slot(s) x --fuse-seeds {} = {} lease slots; the coordinator takes at most 64 per "
        "worker: lower --fuse-seeds, --runs-per-gpu or --slots, or start one worker per GPU",
        options.devices.size(), options.fuse_seeds,
        options.devices.size() * static_cast<size_t>(options.fuse_seeds));
    return 2;
  }
  options.poll_ms = static_cast<int>(poll_seconds * 1000);
  options.acquire_wait_ms = static_cast<int>(acquire_wait_seconds * 1000);
  options.dataset_cache_bytes = dataset_cache_mb << 20;
  options.progress_floor_ms = static_cast<int64_t>(progress_floor_seconds * 1000);
  options.stuck_trainer_grace_ms = static_cast<int64_t>(stuck_grace_seconds * 1000);
  if (threads == 0) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::max(1, cores / static_cast<int>(options.devices.size()));
  }
  torch::set_num_threads(threads);
  torch::set_num_interop_threads(1);

  // Metrics are served in plaintext without tokens: loopback only unless asked.
  resweep::MetricsRegistry metrics;
  std::unique_ptr<resweep::http::MetricsServer> metrics_server;
  if (!metrics_listen.empty()) {
    if (!resweep::IsLoopbackListenAddress(metrics_listen) && !metrics_beyond_loopback) {
      spdlog::critical(
          "refusing to serve metrics on {}: they are plaintext and need no token, so only "
          "loopback addresses (127.0.0.0/8, [::1], localhost) unless --metrics-beyond-loopback",
          metrics_listen);
      return 2;
    }
    options.metrics = &metrics;
  }

  resweep::Worker worker(options);
  if (!metrics_listen.empty()) {
    metrics_server = std::make_unique<resweep::http::MetricsServer>(&metrics);
    if (resweep::Status st = metrics_server->Start(metrics_listen); !st.ok()) {
      spdlog::critical("{}", st.ToString());
      return 2;
    }
  }
  // A signal that came earlier is pending (blocked since start-up) and taken here.
  std::thread signal_thread([&] {
    const sigset_t signals = StopSignals();
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    spdlog::info("signal {}: finishing up (leases are given back)", signal_number);
    worker.Stop();
  });
  signal_thread.detach();
  resweep::Status st = worker.Run();
  const int code = st.ok() ? 0 : 1;
  if (!st.ok()) spdlog::critical("{}", st.ToString());
  if (worker.stuck_trainers() > 0) {
    // A trainer thread is still blocked (in a device call, say) and uses the worker:
    // end the process without destroying anything under it.
    spdlog::warn("exiting with {} stuck trainer thread(s) left blocked", worker.stuck_trainers());
    spdlog::default_logger()->flush();
    std::_Exit(code);
  }
  return code;
}
