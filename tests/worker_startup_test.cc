// What the worker says at start and while it cannot reach its coordinator, and
// --version / --help of the binaries: checked on the real processes.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <sstream>

#include "common/version.h"
#include "tests/cluster.h"
#include "tests/refusing_port.h"
#include "tests/tcp_proxy.h"

namespace resweep {
namespace {

using namespace resweep::testing;

bool LogHas(const std::string& path, const std::string& text) {
  return ReadFile(path).find(text) != std::string::npos;
}

TEST(Version, WorkerAndCoordinatorPrintItAndExitZero) {
  const std::string version = ResweepVersion();
  EXPECT_EQ(version.rfind(RESWEEP_PROJECT_VERSION, 0), 0u) << version;
  EXPECT_TRUE(std::regex_match(version, std::regex(R"(\d+\.\d+\.\d+( \([0-9a-f]{7,}\))?)")))
      << version;
  const std::vector<std::pair<std::string, std::string>> binaries = {
      {RESWEEP_WORKER_BIN, "resweep-worker"}, {RESWEEP_COORDINATOR_BIN, "resweep-coordinator"}};
  for (const auto& [binary, name] : binaries) {
    std::string out, err;
    EXPECT_EQ(RunCommand({binary, "--version"}, &out, &err, 30000), 0) << name << ": " << err;
    EXPECT_EQ(out, name + " " + version + "\n");
  }
}

TEST(WorkerHelp, NamesEveryEnvironmentVariableAndTheNameSuffix) {
  std::string out, err;
  ASSERT_EQ(RunCommand({RESWEEP_WORKER_BIN, "--help"}, &out, &err, 30000), 0) << err;
  for (const char* variable : {"$RESWEEP_COORDINATOR", "$RESWEEP_TLS_CA", "$RESWEEP_TLS_CERT",
                               "$RESWEEP_TLS_KEY", "$RESWEEP_TOKEN_FILE", "$RESWEEP_TOKEN]"}) {
    EXPECT_NE(out.find(variable), std::string::npos) << variable << " missing from:\n" << out;
  }
  EXPECT_NE(out.find("-<8 hex digits>"), std::string::npos) << out;
}

TEST(WorkerStartup, WarnsWhenTheDataRootIsMissingOrNotADirectory) {
  TempDir dir;
  RefusingPort refusing;  // no coordinator is needed to get past the start
  WriteFile(dir.File("a-file"), "not a folder");
  std::filesystem::create_directories(dir.File("data"));
  struct Case {
    std::string data_root;
    std::string warning;  // empty: none expected
  };
  const std::vector<Case> cases = {
      {dir.File("missing"), "--data-root " + dir.File("missing") + " does not exist"},
      {dir.File("a-file"), "--data-root " + dir.File("a-file") + " is not a directory"},
      {dir.File("data"), ""}};
  std::vector<std::unique_ptr<Process>> workers;
  for (size_t i = 0; i < cases.size(); ++i) {
    workers.push_back(std::make_unique<Process>(
        std::vector<std::string>{RESWEEP_WORKER_BIN, "--coordinator", refusing.address(),
                                 "--device", "cpu", "--threads", "1", "--data-root",
                                 cases[i].data_root},
        dir.File("worker-" + std::to_string(i) + ".log")));
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string log = workers[i]->log();
    // The first failed RegisterWorker comes after the start-up checks.
    ASSERT_TRUE(WaitFor([&] { return LogHas(log, "RegisterWorker"); }, 20000)) << ReadFile(log);
    if (cases[i].warning.empty()) {
      EXPECT_FALSE(LogHas(log, "--data-root")) << ReadFile(log);
    } else {
      EXPECT_TRUE(LogHas(log, "[warning] " + cases[i].warning)) << ReadFile(log);
    }
  }
  for (auto& w : workers) w->Kill(SIGTERM);
  for (auto& w : workers) EXPECT_EQ(w->Wait(20000), 0) << ReadFile(w->log());
}

// Lines of `log` that report a failed RegisterWorker to `address`: the attempt
// numbers, in order.
std::vector<int> LoggedRegisterAttempts(const std::string& log, const std::string& address) {
  const std::regex line(R"(\[warning\] RegisterWorker: coordinator )" +
                        std::regex_replace(address, std::regex(R"(\.)"), R"(\.)") +
                        R"( failed \(attempt (\d+), [0-9.]+ s so far\): UNAVAILABLE: .+; )"
                        R"(retrying in \d+ ms)");
  std::vector<int> attempts;
  std::istringstream in(ReadFile(log));
  for (std::string text; std::getline(in, text);) {
    std::smatch m;
    if (std::regex_search(text, m, line)) attempts.push_back(std::stoi(m[1]));
  }
  return attempts;
}

TEST(WorkerStartup, LogsTheRetriesOfAnUnreachableCoordinatorThenWhenItAnswers) {
  Cluster cluster({.heartbeat_seconds = 0.3});
  cluster.StartCoordinator();
  TcpProxy proxy(cluster.port());
  proxy.Pause();  // connections are closed on arrival: the coordinator is unreachable
  const std::string via = "127.0.0.1:" + std::to_string(proxy.port());
  const size_t w = cluster.StartWorker("patient", 1, {}, via);
  const std::string log = cluster.worker(w).log();
  // The first failure at once, then a line per interval (5 s), each with the address.
  ASSERT_TRUE(WaitFor([&] { return LoggedRegisterAttempts(log, via).size() >= 2; }, 30000))
      << ReadFile(log);
  const std::vector<int> attempts = LoggedRegisterAttempts(log, via);
  EXPECT_EQ(attempts[0], 1);
  // The fast early retries (0.1, 0.2, 0.4 s...) were not logged one by one.
  EXPECT_GE(attempts[1], 3) << ReadFile(log);
  proxy.Resume();
  ASSERT_TRUE(WaitFor([&] { return LogHas(log, "registered as patient-"); }, 30000))
      << ReadFile(log);
  EXPECT_TRUE(LogHas(log, "RegisterWorker: coordinator " + via + " answered after"))
      << ReadFile(log);
  cluster.worker(w).Kill(SIGTERM);
  EXPECT_EQ(cluster.worker(w).Wait(20000), 0) << ReadFile(log);
}

// The coordinator's own token file ("<role> <token>" lines) serves as the worker's
// and the CLI's: each takes its role's line.
TEST(ClientTokenFile, TheCoordinatorsTokenFileServesTheWorkerAndTheCli) {
  Cluster cluster({.heartbeat_seconds = 0.3});
  const std::string tokens = cluster.dir() + "/tokens";
  WriteFile(tokens,
            "# role token\nadmin admin-0123456789abcdef\nworker worker-0123456789abcdef\n"
            "read read-0123456789abcdef\n");
  chmod(tokens.c_str(), 0600);
  cluster.options().coordinator_args = {"--token-file", tokens};
  cluster.StartCoordinator();
  cluster.set_cli_args({"--token-file", tokens});
  const std::string out = cluster.Cli({"submit", cluster.WriteSweep("s.yaml", R"(name: tokens
trainer: {kind: synthetic, epoch_seconds: 0.05}
train: {epochs: 2}
)")});
  const std::string sweep_id = out.substr(0, out.find('\n'));
  cluster.StartWorker("tokened", 1, {"--token-file", tokens});
  int code = 0;
  cluster.Cli({"wait", sweep_id, "--limit", "60", "--poll", "0.3"}, &code);
  EXPECT_EQ(code, 0) << cluster.Logs();

  // A file with no worker line: the worker refuses to start, naming the file.
  const std::string cli_only = cluster.dir() + "/cli-tokens";
  WriteFile(cli_only, "admin admin-0123456789abcdef\nread read-0123456789abcdef\n");
  std::string stdout_text, stderr_text;
  EXPECT_EQ(
      RunCommand({RESWEEP_WORKER_BIN, "--coordinator", cluster.address(), "--token-file", cli_only},
                 &stdout_text, &stderr_text, 30000),
      2);
  EXPECT_NE(stderr_text.find(cli_only + " has no line for the worker role"), std::string::npos)
      << stderr_text;
}

}  // namespace
}  // namespace resweep
