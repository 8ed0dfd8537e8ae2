#include "coordinator/server.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include <google/protobuf/descriptor.h>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "common/file_util.h"
#include "coordinator/service.h"
#include "coordinator/sqlite_store.h"

namespace resweep {

CoordinatorServer::CoordinatorServer() = default;

CoordinatorServer::~CoordinatorServer() {
  Shutdown(0);
  if (db_lock_fd_ >= 0) ::close(db_lock_fd_);
}

namespace {

StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const CoordinatorOptions& options) {
  if (options.tls_cert_file.empty() && options.tls_key_file.empty()) {
    if (!options.tls_client_ca_file.empty()) {
      return InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
    return InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  auto read = [](const std::string& path, const char* flag) -> StatusOr<std::string> {
    auto content = ReadNamedFile(path, flag);
    if (!content.ok()) return content;
    if (content->find("-----BEGIN") == std::string::npos) {
      return InvalidArgumentError(std::string(flag) + ": " + path + " is not a PEM file");
    }
    return content;
  };
  auto cert = read(options.tls_cert_file, "--tls-cert");
  if (!cert.ok()) return cert.status();
  auto key = read(options.tls_key_file, "--tls-key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!options.tls_client_ca_file.empty()) {
    auto ca = read(options.tls_client_ca_file, "--tls-client-ca");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

Status CoordinatorServer::LockDatabase(const std::string& db_path) {
  const std::string lock_path = db_path + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return UnavailableError("cannot open " + lock_path + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {0};
    const ssize_t n = ::pread(fd, holder, sizeof(holder) - 1, 0);
    ::close(fd);
    return FailedPreconditionError(
        "database " + db_path + " is in use by another resweep-coordinator" +
        (n > 0 ? " (pid " + std::string(holder, static_cast<size_t>(n)) + ")" : std::string()) +
        ": one coordinator per database");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    spdlog::debug("could not write the pid into {}", lock_path);
  }
  db_lock_fd_ = fd;  // held (and the lock with it) until the server object goes away
  return Status::Ok();
}

Status CoordinatorServer::Start(const CoordinatorOptions& options) {
  auto credentials = MakeServerCredentials(options);
  if (!credentials.ok()) return credentials.status();
  if (!options.token_file.empty()) {
    auto tokens = TokenTable::LoadFile(options.token_file);
    if (!tokens.ok()) return tokens.status();
    struct stat st;
    if (::stat(options.token_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      spdlog::warn("token file {} is readable by other users (mode {:o}); chmod 600 it",
                   options.token_file, st.st_mode & 0777);
    }
    tokens_ = std::make_unique<TokenTable>(std::move(*tokens));
  }
  if (Status local = CheckDatabaseOnLocalFilesystem(
          options.db_path,
          options.filesystem_type_lookup ? options.filesystem_type_lookup : StatfsFilesystemType);
      !local.ok()) {
    if (!options.allow_network_filesystem) return local;
    spdlog::warn("--allow-network-filesystem: {}", local.message());
  }
  // One coordinator per database: a second one would hand out the same runs twice.
  RESWEEP_RETURN_IF_ERROR(LockDatabase(options.db_path));
  auto store = OpenSqliteStore(options.db_path);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);
  const std::string artifacts =
      options.artifacts_dir.empty() ? options.db_path + ".artifacts" : options.artifacts_dir;
  checkpoints_ = std::make_unique<CheckpointStore>(artifacts);
  // Queries run on read-only connections of their own (WAL), off the scheduler's lock.
  reads_ = std::make_unique<ReadPool>(
      [path = options.db_path]() { return OpenSqliteStore(path, {.read_only = true}); },
      /*max_idle=*/4);
  scheduler_ = std::make_unique<Scheduler>(store_.get(), &clock_, options.scheduler,
                                           checkpoints_.get(), reads_.get());
  service_metrics_ = std::make_unique<ServiceMetrics>(
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          v1::Coordinator::service_full_name()),
      &metrics_);
  metrics_.AddCollector([this](PrometheusText* out) { CollectStateMetrics(out); });
  service_ =
      std::make_unique<CoordinatorService>(scheduler_.get(), tokens_.get(), service_metrics_.get());

  // grpc.health.v1.Health (gRPC's implementation: Check and Watch) and server
  // reflection, for standard gRPC tools and probes. Both are process-wide switches
  // read when a server is built.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Without this, gRPC sets SO_REUSEPORT and a second coordinator on the same port
  // would silently take half of the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, *credentials, &port_);
  builder.RegisterService(service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    return UnavailableError("cannot listen on " + options.listen);
  }
  if (!options.health_listen.empty()) {
    // No service is registered: the default health service (and reflection) only.
    grpc::ServerBuilder health_builder;
    health_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    health_builder.AddListeningPort(options.health_listen, grpc::InsecureServerCredentials(),
                                    &health_port_);
    health_server_ = health_builder.BuildAndStart();
    if (!health_server_ || health_port_ == 0) {
      return UnavailableError("cannot listen on " + options.health_listen + " (--health-listen)");
    }
    spdlog::info("health service alone, plaintext, on {} (port {})", options.health_listen,
                 health_port_);
  }
  {
    MutexLock lock(&mutex_);
    SetServingLocked(true, "started");
  }
  artifact_sweep_ms_ = options.artifact_sweep_ms;
  reaper_ = std::thread([this] { ReapLoop(); });
  statistics_refresh_ms_ = options.statistics_refresh_ms;
  if (statistics_refresh_ms_ > 0) statistics_ = std::thread([this] { StatisticsLoop(); });
  spdlog::info("coordinator listening on {} (port {}), database {}, checkpoints in {}, lease {} ms",
               options.listen, port_, options.db_path, artifacts, options.scheduler.lease_ms);
  spdlog::info("transport: {}; calls: {}",
               options.tls_cert_file.empty()        ? "plaintext"
               : options.tls_client_ca_file.empty() ? "TLS"
                                                    : "mutual TLS (client certificates required)",
               tokens_ ? fmt::format("role tokens required ({} tokens)", tokens_->size())
                       : std::string("no token required"));
  return Status::Ok();
}

void CoordinatorServer::SetServingLocked(bool serving, const char* why) {
  if (stopping_ || !server_) return;
  if (shutting_down_) {
    serving = false;
    why = "shutting down";
  }
  if (serving_ == serving) return;
  if (serving) {
    spdlog::info("health: SERVING ({})", why);
  } else {
    spdlog::warn("health: NOT_SERVING ({})", why);
  }
  serving_ = serving;
  for (grpc::Server* server : {server_.get(), health_server_.get()}) {
    grpc::HealthCheckServiceInterface* health = server ? server->GetHealthCheckService() : nullptr;
    if (!health) continue;
    health->SetServingStatus("", serving);
    health->SetServingStatus(v1::Coordinator::service_full_name(), serving);
  }
}

void CoordinatorServer::CollectStateMetrics(PrometheusText* out) {
  {
    MutexLock lock(&mutex_);
    if (stopping_) return;
  }
  // Runs by state over the sweeps not archived, a run that several sweeps share once.
  auto counted = scheduler_->CountRunsOfLiveSweeps();
  if (!counted.ok()) {
    spdlog::warn("metrics: cannot count runs: {}", counted.status().ToString());
  } else {
    const RunCountsRecord& runs = *counted;
    out->Family("resweep_runs",
                "Runs of the sweeps not archived, by state (a run that sweeps share, once).",
                "gauge");
    for (const auto& [state, n] : {std::pair{"queued", runs.queued},
                                   {"leased", runs.leased},
                                   {"running", runs.running},
                                   {"succeeded", runs.succeeded},
                                   {"failed", runs.failed},
                                   {"cancelled", runs.cancelled}}) {
      out->Sample("resweep_runs", {{"state", state}}, n);
    }
    out->Family("resweep_queue_depth", "Runs queued, waiting for a lease.", "gauge");
    out->Sample("resweep_queue_depth", {}, runs.queued);
  }

  auto workers = scheduler_->ListWorkers(/*include_gone=*/false);
  if (!workers.ok()) {
    spdlog::warn("metrics: cannot list workers: {}", workers.status().ToString());
  } else {
    int64_t leases = 0;
    std::map<std::string, int64_t> by_state = {{"alive", 0}, {"silent", 0}, {"gone", 0}};
    int64_t quarantined = 0;
    for (const auto& worker : *workers) {
      leases += static_cast<int64_t>(worker.runs_held.size());
      ++by_state[worker.state];
      if (worker.quarantined) ++quarantined;
    }
    out->Family("resweep_leases_held", "Leases that workers hold now.", "gauge");
    out->Sample("resweep_leases_held", {}, static_cast<double>(leases));
    out->Family("resweep_workers",
                "Registered workers by state (alive: seen within a lease; silent: within ten).",
                "gauge");
    for (const auto& [state, n] : by_state) {
      out->Sample("resweep_workers", {{"state", state}}, static_cast<double>(n));
    }
    out->Family("resweep_workers_quarantined", "Workers that get no leases for a while now.",
                "gauge");
    out->Sample("resweep_workers_quarantined", {}, static_cast<double>(quarantined));
  }

  int64_t checkpoint_bytes = 0, upload_bytes = 0;
  for (const auto& file : checkpoints_->List()) {
    if (file.kind == ArtifactFile::Kind::kCheckpoint) checkpoint_bytes += file.bytes;
    if (file.kind == ArtifactFile::Kind::kUpload) upload_bytes += file.bytes;
  }
  out->Family("resweep_checkpoint_bytes",
              "Bytes in the artifact directory: checkpoint files, and uploads in progress.",
              "gauge");
  out->Sample("resweep_checkpoint_bytes", {{"kind", "checkpoint"}},
              static_cast<double>(checkpoint_bytes));
  out->Sample("resweep_checkpoint_bytes", {{"kind", "upload"}}, static_cast<double>(upload_bytes));
}

size_t CoordinatorServer::parked_acquires() { return service_ ? service_->parked_acquires() : 0; }

void CoordinatorServer::ReapLoop() {
  const auto period =
      std::chrono::milliseconds(std::max<int64_t>(50, scheduler_->options().lease_ms / 4));
  auto next_sweep = std::chrono::steady_clock::now();
  int64_t failed_commits_before = service_->batcher_counts().failed_commits;
  mutex_.Lock();
  while (!stopping_) {
    stop_cv_.WaitFor(&mutex_, period);
    if (stopping_) break;
    mutex_.Unlock();
    if (artifact_sweep_ms_ > 0 && std::chrono::steady_clock::now() >= next_sweep) {
      next_sweep = std::chrono::steady_clock::now() + std::chrono::milliseconds(artifact_sweep_ms_);
      auto swept = scheduler_->SweepArtifacts();
      if (!swept.ok()) spdlog::error("artifact sweep-up: {}", swept.status().ToString());
    }
    // The health service says NOT_SERVING while writes fail: those of this round,
    // and the worker calls' group commits since the round before.
    bool writes_ok = true;
    auto expired = scheduler_->ExpireLeases();
    if (!expired.ok()) {
      writes_ok = false;
      spdlog::error("lease reaper: {}", expired.status().ToString());
    } else if (*expired > 0) {
      spdlog::warn("lease reaper: {} lease(s) expired", *expired);
    }
    // Worker contacts are kept in memory by acquires and heartbeats: stored here,
    // one transaction per period, before the silence rules read them.
    if (Status flushed = scheduler_->FlushWorkerContacts(); !flushed.ok()) {
      writes_ok = false;
      spdlog::error("worker contacts: {}", flushed.ToString());
    }
    // After lease expiry, so that a silent worker's runs are closed first.
    if (auto forgotten = scheduler_->ForgetSilentWorkers(); !forgotten.ok()) {
      writes_ok = false;
      spdlog::error("worker reaper: {}", forgotten.status().ToString());
    }
    const int64_t failed_commits = service_->batcher_counts().failed_commits;
    if (failed_commits != failed_commits_before) writes_ok = false;
    failed_commits_before = failed_commits;
    mutex_.Lock();
    SetServingLocked(writes_ok,
                     writes_ok ? "the database takes writes" : "writes to the database fail");
  }
  mutex_.Unlock();
}

void CoordinatorServer::StatisticsLoop() {
  // At most this many sweeps per round, so that a round ends and the loop can stop.
  constexpr int kSweepsPerRound = 16;
  auto stopping = [this] {
    MutexLock lock(&mutex_);
    return stopping_;
  };
  mutex_.Lock();
  while (!stopping_) {
    stop_cv_.WaitFor(&mutex_, std::chrono::milliseconds(statistics_refresh_ms_));
    if (stopping_) break;
    mutex_.Unlock();
    auto stored = scheduler_->RefreshStatistics(kSweepsPerRound, stopping);
    if (!stored.ok()) spdlog::error("statistics refresher: {}", stored.status().ToString());
    mutex_.Lock();
  }
  mutex_.Unlock();
}

void CoordinatorServer::BeginShutdown() {
  MutexLock lock(&mutex_);
  shutting_down_ = true;
  SetServingLocked(false, "shutting down");
}

void CoordinatorServer::Shutdown(int grace_ms) {
  BeginShutdown();
  {
    MutexLock lock(&mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.NotifyAll();
  // Parked long-poll acquires are answered first (no lease): the server's shutdown
  // waits for the calls in flight.
  if (service_) service_->AnswerParkedCalls();
  // One deadline for both servers: a health watcher told NOT_SERVING above has until
  // then to hang up, as the main port's callers do (cancelling gRPC's health reactor
  // while it sends that update races inside gRPC).
  const auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms);
  if (server_) {
    server_->Shutdown(deadline);
    server_->Wait();
  }
  if (health_server_) {
    health_server_->Shutdown(deadline);
    health_server_->Wait();
  }
  if (service_) service_->StopBatcher();
  if (reaper_.joinable()) reaper_.join();
  if (statistics_.joinable()) statistics_.join();
  if (scheduler_) {
    if (Status flushed = scheduler_->FlushWorkerContacts(); !flushed.ok()) {
      spdlog::error("worker contacts: {}", flushed.ToString());
    }
  }
  if (service_) {
    const std::string latency = service_->latency().Summary();
    if (!latency.empty()) spdlog::info("handler latency since start:\n{}", latency);
    const auto counts = service_->batcher_counts();
    if (counts.batches > 0) {
      spdlog::info("worker writes: {} calls in {} batches ({:.1f} per commit), {} failed commits",
                   counts.calls, counts.batches,
                   static_cast<double>(counts.calls) / static_cast<double>(counts.batches),
                   counts.failed_commits);
    }
  }
  scheduler_.reset();
  checkpoints_.reset();
  reads_.reset();
  store_.reset();
  spdlog::info("coordinator stopped");
}

}  // namespace resweep
