#include "coordinator/server.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "common/file_util.h"
#include "coordinator/service.h"
#include "coordinator/sqlite_store.h"

namespace resweep {

bool IsLoopbackListenAddress(const std::string& listen) {
  std::string host = listen;
  if (!host.empty() && host[0] == '[') {  // [v6]:port
    host = host.substr(1, host.find(']') == std::string::npos ? 0 : host.find(']') - 1);
    return host == "::1";
  }
  host = host.substr(0, host.rfind(':'));
  if (host == "localhost") return true;
  return host.rfind("127.", 0) == 0 && host.find_first_not_of("0123456789.") == std::string::npos;
}

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
  service_ = std::make_unique<CoordinatorService>(scheduler_.get(), tokens_.get());

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

size_t CoordinatorServer::parked_acquires() { return service_ ? service_->parked_acquires() : 0; }

void CoordinatorServer::ReapLoop() {
  const auto period =
      std::chrono::milliseconds(std::max<int64_t>(50, scheduler_->options().lease_ms / 4));
  auto next_sweep = std::chrono::steady_clock::now();
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
    auto expired = scheduler_->ExpireLeases();
    if (!expired.ok()) {
      spdlog::error("lease reaper: {}", expired.status().ToString());
    } else if (*expired > 0) {
      spdlog::warn("lease reaper: {} lease(s) expired", *expired);
    }
    // Worker contacts are kept in memory by acquires and heartbeats: stored here,
    // one transaction per period, before the silence rules read them.
    if (Status flushed = scheduler_->FlushWorkerContacts(); !flushed.ok()) {
      spdlog::error("worker contacts: {}", flushed.ToString());
    }
    // After lease expiry, so that a silent worker's runs are closed first.
    if (auto forgotten = scheduler_->ForgetSilentWorkers(); !forgotten.ok()) {
      spdlog::error("worker reaper: {}", forgotten.status().ToString());
    }
    mutex_.Lock();
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

void CoordinatorServer::Shutdown(int grace_ms) {
  {
    MutexLock lock(&mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.NotifyAll();
  // Parked long-poll acquires are answered first (no lease): the server's shutdown
  // waits for the calls in flight.
  if (service_) service_->AnswerParkedCalls();
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
    server_->Wait();
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
