// A running coordinator: store + scheduler + gRPC server + lease reaper (which
// also sweeps up the artifact directory) + statistics refresher. The gRPC server
// also serves grpc.health.v1.Health (NOT_SERVING while shutting down or while writes
// to the database fail) and server reflection.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/channel.h"  // IsLoopbackListenAddress
#include "common/clock.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "common/status.h"
#include "coordinator/auth.h"
#include "coordinator/database_filesystem.h"
#include "coordinator/read_pool.h"
#include "coordinator/scheduler.h"
#include "coordinator/service_metrics.h"
#include "coordinator/store.h"

namespace grpc {
class Server;
}

namespace resweep {

class CoordinatorService;

struct CoordinatorOptions {
  std::string listen = "127.0.0.1:50051";  // port 0 picks a free port
  std::string db_path = "resweep.db";
  std::string artifacts_dir;  // checkpoints; empty = "<db_path>.artifacts"
  // A database on a network filesystem (NFS, Lustre, GPFS, CIFS, ...) is refused
  // (coordinator/database_filesystem.h) unless this is set. The lookup says which
  // filesystem a directory is on; empty = statfs(2). Tests fake it.
  bool allow_network_filesystem = false;
  FilesystemTypeLookup filesystem_type_lookup;
  SchedulerOptions scheduler;
  // How often the artifact directory is swept up (Scheduler::SweepArtifacts); the
  // first sweep-up runs at start. 0 = never.
  int64_t artifact_sweep_ms = 600 * 1000;
  // How often sweeps whose results changed get their statistics computed and stored
  // (Scheduler::RefreshStatistics), on a thread of their own. 0 = never (results then
  // compute what the coordinator's memory does not hold).
  int64_t statistics_refresh_ms = 5000;
  int max_message_bytes = 8 << 20;
  // TLS: the server certificate chain and key (PEM files); both or neither. With
  // tls_client_ca_file, clients must present a certificate signed by that CA.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // Role tokens (see coordinator/auth.h); empty = calls need no token.
  std::string token_file;
  // Where to serve grpc.health.v1.Health alone, in plaintext (port 0 picks a free
  // port): for probes that cannot speak TLS or send tokens, such as Kubernetes' gRPC
  // probes. It says what the main port's health service says and serves nothing else.
  // Empty = none.
  std::string health_listen;
};

class CoordinatorServer {
 public:
  CoordinatorServer();
  ~CoordinatorServer();

  // Opens the database, starts serving and the reaper. Returns once listening.
  Status Start(const CoordinatorOptions& options);
  int port() const { return port_; }
  // The plaintext health port (CoordinatorOptions::health_listen); 0 when there is none.
  int health_port() const { return health_port_; }
  // After a successful Start, until Shutdown: what an HTTP face (http/) serves from.
  Scheduler* scheduler() { return scheduler_.get(); }
  const TokenTable* tokens() const { return tokens_.get(); }
  // The coordinator's metrics (see docs/http-api.md); rendering them queries the
  // scheduler, so only until Shutdown.
  const MetricsRegistry* metrics() const { return &metrics_; }
  // For an HTTP face to register its own series in.
  MetricsRegistry* metrics() { return &metrics_; }
  // AcquireRun calls waiting for a run now (long-poll); 0 before Start.
  size_t parked_acquires();
  // The start of a shutdown: health says NOT_SERVING from now on (watchers are told),
  // while calls are still served; for whatever stops before the server itself (an
  // HTTP face). Shutdown does it too.
  void BeginShutdown();
  // Stops accepting calls, waits up to `grace_ms` for calls in flight, stops the
  // reaper and closes the database. Safe to call more than once.
  void Shutdown(int grace_ms);

 private:
  void ReapLoop();
  void StatisticsLoop();

  // Takes an exclusive lock (flock) on <db>.lock, or FAILED_PRECONDITION naming the
  // holder's pid when another coordinator has it.
  Status LockDatabase(const std::string& db_path);

  // Writes the series computed at each scrape: runs, leases, workers, checkpoints.
  void CollectStateMetrics(PrometheusText* out);

  // Sets what grpc.health.v1.Health answers (for "" and resweep.v1.Coordinator) when
  // it changes (Watch streams a message per change only), logging `why`; NOT_SERVING
  // whatever `serving` says once a shutdown has begun; nothing once stopping.
  void SetServingLocked(bool serving, const char* why) RESWEEP_REQUIRES(mutex_);

  int db_lock_fd_ = -1;
  SystemClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<CheckpointStore> checkpoints_;
  std::unique_ptr<ReadPool> reads_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<TokenTable> tokens_;
  MetricsRegistry metrics_;
  std::unique_ptr<ServiceMetrics> service_metrics_;
  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;  // health_listen's; null without one
  std::thread reaper_;
  std::thread statistics_;
  int port_ = 0;
  int health_port_ = 0;
  int64_t artifact_sweep_ms_ = 0;
  int64_t statistics_refresh_ms_ = 0;

  Mutex mutex_;
  CondVar stop_cv_;
  bool stopping_ RESWEEP_GUARDED_BY(mutex_) = false;
  bool shutting_down_ RESWEEP_GUARDED_BY(mutex_) = false;  // BeginShutdown was called
  // What the health service says; none before Start sets it.
  std::optional<bool> serving_ RESWEEP_GUARDED_BY(mutex_);
};

}  // namespace resweep
