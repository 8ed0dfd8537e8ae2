// A real coordinator process on a loopback port with a real SQLite file, plus
// worker processes and CLI calls against it.
#pragma once

#include <gtest/gtest.h>
#include <algorithm>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/sqlite_store.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace resweep::testing {

class Cluster {
 public:
  struct Options {
    double lease_seconds = 30;
    double heartbeat_seconds = 1;
    int max_attempts = 3;
    std::vector<std::string> coordinator_args;  // e.g. TLS files, --token-file
    std::string db_path;                        // default: coordinator.db in dir()
    std::string listen_host = "127.0.0.1";
    // Run the coordinator and the CLI under this, e.g. {"ip", "netns", "exec", NS}.
    std::vector<std::string> coordinator_prefix;
  };

  explicit Cluster(Options options) : options_(options) {}

  const std::string& dir() const { return dir_.path(); }
  // Changes apply from the next StartCoordinator().
  Options& options() { return options_; }
  std::string db() const {
    return options_.db_path.empty() ? dir_.File("coordinator.db") : options_.db_path;
  }
  std::string address() const { return options_.listen_host + ":" + std::to_string(port_); }

  // Starts (or restarts, on the same database) the coordinator.
  void StartCoordinator() {
    std::remove(dir_.File("port").c_str());
    std::vector<std::string> argv = options_.coordinator_prefix;
    argv.insert(argv.end(),
                {RESWEEP_COORDINATOR_BIN, "--listen",
                 port_ ? address() : options_.listen_host + ":0", "--port-file", dir_.File("port"),
                 "--db", db(), "--lease-seconds", std::to_string(options_.lease_seconds),
                 "--heartbeat-seconds", std::to_string(options_.heartbeat_seconds),
                 "--max-attempts", std::to_string(options_.max_attempts), "--log-level", "debug"});
    argv.insert(argv.end(), options_.coordinator_args.begin(), options_.coordinator_args.end());
    coordinator_ = std::make_unique<Process>(argv, dir_.File("coordinator.log"));
    ASSERT_TRUE(WaitFor([&] { return !ReadFile(dir_.File("port")).empty(); }, 20000))
        << "coordinator did not start:\n"
        << ReadFile(dir_.File("coordinator.log"));
    port_ = std::stoi(ReadFile(dir_.File("port")));
  }
  Process& coordinator() { return *coordinator_; }

  int port() const { return port_; }

  // Starts a CPU worker (talking to `via`, default the coordinator); returns its index.
  size_t StartWorker(const std::string& name, int threads = 1, std::vector<std::string> extra = {},
                     const std::string& via = "") {
    std::vector<std::string> argv = worker_prefix_;
    argv.insert(argv.end(),
                {RESWEEP_WORKER_BIN, "--coordinator", via.empty() ? address() : via, "--name", name,
                 "--device", "cpu", "--threads", std::to_string(threads)});
    if (std::find(extra.begin(), extra.end(), "--poll-seconds") == extra.end()) {
      argv.insert(argv.end(), {"--poll-seconds", "0.1"});
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    workers_.push_back(std::make_unique<Process>(argv, dir_.File("worker-" + name + ".log")));
    return workers_.size() - 1;
  }
  Process& worker(size_t i) { return *workers_[i]; }
  // Workers started from now on run under `prefix` (e.g. in a network namespace).
  void set_worker_prefix(std::vector<std::string> prefix) { worker_prefix_ = std::move(prefix); }

  // Runs the CLI against this coordinator; returns stdout, failing the test on a
  // non-zero exit.
  std::string Cli(std::vector<std::string> args, int* exit_code = nullptr,
                  int timeout_ms = 200000) {
    std::string out, err;
    const int code = CliAs(cli_args_, args, &out, &err, timeout_ms);
    if (exit_code) {
      *exit_code = code;
    } else {
      EXPECT_EQ(code, 0) << "resweep " << args[0] << " failed:\n" << out << err;
    }
    return out;
  }

  // The CLI with `credentials` (e.g. --token-file F, --tls-ca F) instead of the
  // default ones; returns the exit code.
  int CliAs(const std::vector<std::string>& credentials, const std::vector<std::string>& args,
            std::string* out, std::string* err, int timeout_ms = 60000) {
    std::vector<std::string> argv = options_.coordinator_prefix;
    argv.insert(argv.end(), {RESWEEP_CLI_BIN, "--coordinator", address()});
    argv.insert(argv.end(), credentials.begin(), credentials.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, out, err, timeout_ms);
  }
  // Credentials every Cli() call passes.
  void set_cli_args(std::vector<std::string> credentials) { cli_args_ = std::move(credentials); }

  std::string WriteSweep(const std::string& name, const std::string& yaml) {
    const std::string path = dir_.File(name);
    WriteFile(path, yaml);
    return path;
  }

  // A read-only view of the coordinator's database, as `resweep results --db` opens it.
  std::unique_ptr<Store> OpenDb() {
    auto store = OpenSqliteStore(db(), {.read_only = true});
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::string CoordinatorLog() { return ReadFile(dir_.File("coordinator.log")); }
  std::string Logs() {
    std::string all = "--- coordinator\n" + Tail(ReadFile(dir_.File("coordinator.log")));
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("worker-", 0) == 0) all += "--- " + name + "\n" + Tail(ReadFile(entry.path()));
    }
    return all;
  }

 private:
  static std::string Tail(const std::string& s) {
    return s.size() > 4000 ? "...\n" + s.substr(s.size() - 4000) : s;
  }

  Options options_;
  TempDir dir_;
  std::vector<std::string> cli_args_;
  std::vector<std::string> worker_prefix_;
  int port_ = 0;
  std::unique_ptr<Process> coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
};

// Writes `yaml` to `file` in the cluster's directory and submits it; returns the
// sweep's id (the CLI's first line).
inline std::string SubmitSweep(Cluster& cluster, const std::string& file, const std::string& yaml) {
  const std::string out = cluster.Cli({"submit", cluster.WriteSweep(file, yaml)});
  return out.substr(0, out.find('\n'));
}

// The first 12 characters of a sweep's id: what the CLI's tables and the dashboard show.
inline std::string ShortId(const std::string& sweep_id) { return sweep_id.substr(0, 12); }

// Submits a sweep of one synthetic run of one 10 ms epoch named `name`; returns its
// ShortId.
inline std::string SubmitOneRunSweep(Cluster& cluster, const std::string& name) {
  return ShortId(SubmitSweep(cluster, name + ".yaml", "name: " + name + R"(
dataset: {kind: cifar10}
model: {depth_n: 1}
trainer: {kind: synthetic, epoch_seconds: 0.01}
train: {epochs: 1}
seeds: 1
)"));
}

// Starts the cluster's coordinator with --http (and `extra` flags) on a loopback port
// of its choosing; returns that port (its file is written before the gRPC one).
inline int StartWithHttp(Cluster& cluster, std::vector<std::string> extra = {}) {
  auto& args = cluster.options().coordinator_args;
  args = {"--http", "127.0.0.1:0", "--http-port-file", cluster.dir() + "/http-port"};
  args.insert(args.end(), extra.begin(), extra.end());
  cluster.StartCoordinator();
  return std::stoi(ReadFile(cluster.dir() + "/http-port"));
}

// A test CA, server and client certificates, and an unrelated CA + client in `dir`
// (scripts/make-test-certs.sh).
inline ::testing::AssertionResult MakeTestCerts(const std::string& dir) {
  std::string out, err;
  const int code = RunCommand(
      {"/bin/bash", std::string(RESWEEP_SOURCE_DIR) + "/scripts/make-test-certs.sh", dir}, &out,
      &err, 60000);
  if (code == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "make-test-certs.sh exited " << code << ":\n"
                                       << out << err;
}

}  // namespace resweep::testing
