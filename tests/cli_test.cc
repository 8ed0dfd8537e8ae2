// The `resweep` CLI as a user meets it: the real binary against a real coordinator
// (and synthetic workers) on loopback, and offline against the database file.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "common/channel.h"
#include "resweep/v1/resweep.grpc.pb.h"
#include "tests/cluster.h"

namespace resweep {
namespace {

using namespace resweep::testing;
using nlohmann::json;

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

// Runs the CLI and returns {exit code, stdout, stderr}.
struct CliResult {
  int code;
  std::string out, err;
};
CliResult RunCli(Cluster& cluster, std::vector<std::string> args) {
  CliResult r;
  r.code = cluster.CliAs({}, args, &r.out, &r.err);
  return r;
}
CliResult RunCliBare(std::vector<std::string> args) {
  CliResult r;
  args.insert(args.begin(), RESWEEP_CLI_BIN);
  r.code = RunCommand(args, &r.out, &r.err);
  return r;
}

const char* kSweepWithFailures = R"(name: everyday
trainer: {kind: synthetic, epoch_seconds: 0.02, fail_probability: 0.5}
train: {epochs: 4}
grid:
  model.depth_n: [1, 2]
seeds: 3
)";

TEST(Cli, EverydayCommandsOnlineAndOfflineAgree) {
  Cluster cluster({.lease_seconds = 10, .heartbeat_seconds = 0.3});
  cluster.StartCoordinator();
  cluster.StartWorker("w1");
  const std::string file = cluster.WriteSweep("everyday.yaml", kSweepWithFailures);
  const std::string sweep_id = FirstLine(cluster.Cli({"submit", file}));
  int code = 0;
  cluster.Cli({"wait", sweep_id, "--limit", "60", "--poll", "0.2"}, &code);
  ASSERT_EQ(code, 3) << "wait exits 3 when runs failed\n" << cluster.Logs();

  // status: epoch progress; JSON with numbers and nulls.
  const json status = json::parse(cluster.Cli({"status", sweep_id, "--format", "json"}));
  const json& s = status["sweeps"][0];
  EXPECT_EQ(s["sweep_id"], sweep_id);
  EXPECT_EQ(s["state"], "done");
  EXPECT_EQ(s["counts"]["total"], 6);
  const int failed = s["counts"]["failed"];
  ASSERT_GT(failed, 0) << "fail_probability 0.5 over 6 seeds";
  EXPECT_EQ(s["epochs_total"], 24);
  EXPECT_TRUE(s["eta_seconds"].is_null());  // done: nothing left
  EXPECT_TRUE(s["mean_epoch_seconds"].is_number());
  EXPECT_NE(cluster.Cli({"status"}).find("epochs "), std::string::npos);

  // runs: every finished run names the worker that ran it.
  const json runs = json::parse(cluster.Cli({"runs", sweep_id, "--format", "json"}));
  ASSERT_EQ(runs["runs"].size(), 6u);
  std::string failed_run;
  for (const auto& r : runs["runs"]) {
    ASSERT_TRUE(r["worker_id"].is_string()) << r.dump();
    EXPECT_EQ(r["worker_id"].get<std::string>().rfind("w1-", 0), 0u) << r.dump();
    if (r["state"] == "failed") {
      failed_run = r["run_id"];
      EXPECT_TRUE(r["error"].is_string());
    } else {
      EXPECT_TRUE(r["error"].is_null());
    }
  }
  const std::string table = cluster.Cli({"runs", sweep_id});
  EXPECT_NE(table.find("w1-"), std::string::npos) << table;

  // run: attempts with worker and reason, and the epochs.
  const json run = json::parse(cluster.Cli({"run", failed_run.substr(0, 8), "--format", "json"}));
  EXPECT_EQ(run["run_id"], failed_run);
  ASSERT_EQ(run["attempts"].size(), 1u);
  EXPECT_EQ(run["attempts"][0]["state"], "failed");
  EXPECT_TRUE(run["attempts"][0]["reason"].is_string());
  EXPECT_TRUE(run["config"].is_object());
  EXPECT_EQ(run["error_unit"], "fraction");
  const std::string run_text = cluster.Cli({"run", failed_run});
  EXPECT_NE(run_text.find("attempts:"), std::string::npos) << run_text;

  // workers: the worker with its slot.
  const json workers = json::parse(cluster.Cli({"workers", "--format", "json"}));
  ASSERT_EQ(workers["workers"].size(), 1u);
  EXPECT_EQ(workers["workers"][0]["state"], "alive");
  EXPECT_EQ(workers["workers"][0]["slots"], 1);

  // results: JSON with the comparison columns, nulls instead of -1.
  const json results = json::parse(cluster.Cli({"results", sweep_id, "--format", "json"}));
  EXPECT_EQ(results["error_unit"], "fraction");
  ASSERT_EQ(results["cells"].size(), 2u);
  int best = 0;
  for (const auto& c : results["cells"]) {
    best += c["is_best"].get<bool>();
    EXPECT_TRUE(c["paper_test_error"].is_null());  // depths 1 and 2: no published figure
    EXPECT_TRUE(c.contains("p_vs_best"));
    if (c["is_best"]) EXPECT_TRUE(c["p_vs_best"].is_null());
  }
  EXPECT_EQ(best, 1);
  const std::string csv = cluster.Cli({"results", sweep_id, "--format", "csv"});
  EXPECT_NE(csv.find("final_mean_frac"), std::string::npos) << csv;

  // report: the failed runs left out of each cell's curves are noted once, not once per
  // figure and format (six times).
  const CliResult report = RunCli(cluster, {"report", sweep_id, "-o", cluster.dir() + "/report"});
  ASSERT_EQ(report.code, 0) << report.out << report.err;
  std::vector<std::string> notes;
  std::istringstream err_lines(report.err);
  for (std::string line; std::getline(err_lines, line);) {
    if (line.rfind("note: ", 0) == 0) notes.push_back(line);
  }
  EXPECT_NE(report.err.find("failed or cancelled run(s) left out of the mean"), std::string::npos)
      << report.err;
  std::vector<std::string> distinct = notes;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  EXPECT_EQ(notes.size(), distinct.size()) << report.err;

  // Offline (--db) answers exactly as the coordinator does.
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"status", sweep_id, "--format", "json"},
                                             {"runs", sweep_id, "--format", "json"},
                                             {"run", failed_run, "--format", "json"},
                                             {"results", sweep_id, "--format", "json"}}) {
    std::vector<std::string> offline = args;
    offline.insert(offline.end(), {"--db", cluster.db()});
    EXPECT_EQ(cluster.Cli(offline), cluster.Cli(args)) << args[0];
  }
  std::vector<std::string> offline_workers = {"workers", "--format", "json", "--db", cluster.db()};
  EXPECT_EQ(json::parse(cluster.Cli(offline_workers))["workers"][0]["worker_id"],
            workers["workers"][0]["worker_id"]);

  // retry: the failed runs are queued with fresh attempts and run again (the
  // synthetic trainer fails the same seeds again: each then has two failed attempts).
  const std::string retried = cluster.Cli({"retry", sweep_id});
  EXPECT_NE(retried.find("queued " + std::to_string(failed) + " run(s)"), std::string::npos)
      << retried;
  cluster.Cli({"wait", sweep_id, "--limit", "60", "--poll", "0.2"}, &code);
  EXPECT_EQ(code, 3);
  const json after = json::parse(cluster.Cli({"run", failed_run, "--format", "json"}));
  ASSERT_EQ(after["attempts"].size(), 2u) << after.dump();
  EXPECT_EQ(after["attempts"][1]["attempt"], 2);

  // cancel on a finished sweep: says so, changes nothing.
  const std::string cancel = cluster.Cli({"cancel", sweep_id});
  EXPECT_NE(cancel.find("already finished"), std::string::npos) << cancel;
  EXPECT_EQ(
      json::parse(cluster.Cli({"status", sweep_id, "--format", "json"}))["sweeps"][0]["state"],
      "done");

  // delete: hidden from status, results still readable by id.
  EXPECT_NE(cluster.Cli({"delete", sweep_id}).find("deleted sweep"), std::string::npos);
  EXPECT_EQ(cluster.Cli({"status"}), "no sweeps\n");
  EXPECT_NE(cluster.Cli({"status", "--all"}).find(sweep_id), std::string::npos);
  EXPECT_NE(cluster.Cli({"results", sweep_id}).find("model.depth_n=1"), std::string::npos);
}

TEST(Cli, SubmitNamesDryRunAndWarnings) {
  Cluster cluster({.coordinator_args = {"--max-runs-per-sweep", "20000"}});
  cluster.StartCoordinator();
  // 12,000 runs: more than the CLI's built-in default, within this coordinator's limit.
  const std::string big = cluster.WriteSweep("big.yaml", R"(name: big
trainer: {kind: synthetic}
grid:
  model.depth_n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
  train.batch_size: [8, 16, 32, 64, 128, 256]
seeds: 100
)");
  CliResult dry = RunCli(cluster, {"submit", "--dry-run", big});
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_NE(dry.out.find("12000 runs (this coordinator allows 20000 per sweep)"), std::string::npos)
      << FirstLine(dry.out);
  EXPECT_EQ(cluster.Cli({"status"}), "no sweeps\n");

  // A different sweep under a name in use: refused with the way out, then allowed.
  const std::string a = cluster.WriteSweep("a.yaml", "name: same\ntrainer: {kind: synthetic}\n");
  const std::string b =
      cluster.WriteSweep("b.yaml", "name: same\ntrainer: {kind: synthetic}\ntrain: {epochs: 3}\n");
  const std::string first = FirstLine(cluster.Cli({"submit", a}));
  CliResult refused = RunCli(cluster, {"submit", b});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("--new-version"), std::string::npos) << refused.err;
  CliResult allowed = RunCli(cluster, {"submit", "--new-version", b});
  ASSERT_EQ(allowed.code, 0) << allowed.err;
  EXPECT_NE(allowed.err.find("warning: another sweep is named 'same' (" + first + ")"),
            std::string::npos)
      << allowed.err;

  // Silent traps are warned about in submit and dry-run (not refused).
  const std::string trap = cluster.WriteSweep(
      "trap.yaml", "name: trap\ntrain: {epochs: 10}\n");  // default milestones [80, 160]
  CliResult warned = RunCli(cluster, {"submit", "--dry-run", trap});
  EXPECT_EQ(warned.code, 0) << warned.err;
  EXPECT_NE(warned.err.find("warning: "), std::string::npos) << warned.err;
  EXPECT_NE(warned.err.find("milestones"), std::string::npos) << warned.err;

  // A dry run with no coordinator falls back to local validation and says so.
  CliResult local = RunCliBare({"--coordinator", "127.0.0.1:1", "submit", "--dry-run", a});
  EXPECT_EQ(local.code, 0) << local.err;
  EXPECT_NE(local.err.find("validating locally"), std::string::npos) << local.err;
}

TEST(Cli, UsageErrorsAndMessagesSayWhatIsWrong) {
  CliResult version = RunCliBare({"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_EQ(version.out.rfind("resweep 0.", 0), 0u) << version.out;
  CliResult bogus = RunCliBare({"bogus"});
  EXPECT_EQ(bogus.code, 2);
  EXPECT_NE(bogus.err.find("unknown command 'bogus'"), std::string::npos) << bogus.err;
  CliResult none = RunCliBare({});
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("Subcommands:"), std::string::npos);
  CliResult bad_option = RunCliBare({"status", "--frobnicate"});
  EXPECT_EQ(bad_option.code, 2);

  CliResult missing_db = RunCliBare({"results", "x", "--db", "/nonexistent/missing.db"});
  EXPECT_EQ(missing_db.code, 1);
  EXPECT_NE(missing_db.err.find("/nonexistent/missing.db: no such database file"),
            std::string::npos)
      << missing_db.err;
  EXPECT_EQ(missing_db.err.find("coordinator"), std::string::npos) << missing_db.err;

  CliResult refused = RunCliBare({"--coordinator", "127.0.0.1:1", "status"});
  EXPECT_EQ(refused.code, 5);
  EXPECT_NE(refused.err.find("cannot connect to 127.0.0.1:1 (Connection refused)"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(refused.err.find(".cc:"), std::string::npos) << "gRPC log line: " << refused.err;

  // A host without a port means resweep's default port, not HTTPS's 443.
  Cluster cluster({.listen_host = "127.0.0.1"});
  cluster.StartCoordinator();
  CliResult no_port = RunCliBare({"--coordinator", "127.0.0.1", "status"});
  if (cluster.port() == 50051) {
    EXPECT_EQ(no_port.code, 0) << no_port.err;
  } else {
    EXPECT_NE(no_port.err.find("127.0.0.1:50051"), std::string::npos) << no_port.err;
  }
}

TEST(Cli, AmbiguousPrefixListsCandidates) {
  Cluster cluster({});
  cluster.StartCoordinator();
  std::map<char, std::vector<std::string>> by_first;
  for (int i = 0; i < 17; ++i) {
    const std::string f =
        cluster.WriteSweep("s" + std::to_string(i) + ".yaml",
                           "name: s" + std::to_string(i) + "\ntrainer: {kind: synthetic}\n");
    const std::string id = FirstLine(cluster.Cli({"submit", f}));
    by_first[id[0]].push_back(id);
  }
  for (const auto& [first, ids] : by_first) {
    if (ids.size() < 2) continue;
    CliResult r = RunCli(cluster, {"status", std::string(1, first)});
    EXPECT_EQ(r.code, 2);
    for (const auto& id : ids) EXPECT_NE(r.err.find(id), std::string::npos) << r.err;
    return;
  }
  FAIL() << "17 ids over 16 first digits must share one";
}

// The ids of `known` in `text` (of `runs` in any format), in the order of its lines.
std::vector<std::string> RunIdsIn(const std::string& text, const std::set<std::string>& known) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    for (const auto& id : known) {
      if (line.find(id) != std::string::npos) out.push_back(id);
    }
  }
  return out;
}

// `resweep runs` on a sweep of more runs than a page holds lists every run exactly
// once, in every format, online and offline; the coordinator pages by page_size and
// page_token, and refuses a bad token naming it.
TEST(Cli, RunsListsEveryRunOfASweepLargerThanAPage) {
  Cluster cluster({});
  cluster.StartCoordinator();
  const std::string file = cluster.WriteSweep(
      "paged.yaml",
      "name: paged\ntrainer: {kind: synthetic}\ngrid:\n  train.optimizer.lr: [0.1, 0.2, 0.3]\n"
      "seeds: 7\n");
  const std::string sweep_id = FirstLine(cluster.Cli({"submit", file}));
  // Another sweep's runs come after this one's in the database.
  cluster.Cli({"submit", cluster.WriteSweep(
                             "later.yaml", "name: later\ntrainer: {kind: synthetic}\nseeds: 5\n")});

  // Straight over gRPC: pages of 4 and a token until the last.
  auto stub = v1::Coordinator::NewStub(
      MakeCoordinatorChannel({cluster.address(), 8 << 20, ClientSecurity()}));
  std::vector<std::string> paged;
  v1::ListRunsRequest req;
  req.set_sweep_id("paged");
  req.set_page_size(4);
  int pages = 0;
  do {
    grpc::ClientContext ctx;
    v1::ListRunsResponse resp;
    ASSERT_TRUE(stub->ListRuns(&ctx, req, &resp).ok());
    ASSERT_LE(resp.runs_size(), 4);
    for (const auto& r : resp.runs()) paged.push_back(r.run_id());
    req.set_page_token(resp.next_page_token());
    ++pages;
  } while (!req.page_token().empty() && pages < 100);
  EXPECT_EQ(pages, 6);  // 21 runs: 5 pages of 4, then 1
  const std::set<std::string> ids(paged.begin(), paged.end());
  ASSERT_EQ(ids.size(), 21u);
  {
    grpc::ClientContext ctx;
    v1::ListRunsResponse resp;
    req.set_page_token("not-a-token");
    const grpc::Status st = stub->ListRuns(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("page_token"), std::string::npos) << st.error_message();
  }

  // The CLI follows the pages: every run once, in the grid order of one page.
  const std::string one_page = cluster.Cli({"runs", "paged", "--format", "json"});
  EXPECT_EQ(cluster.Cli({"runs", "paged", "--format", "json", "--page-size", "4"}), one_page);
  const json runs = json::parse(one_page);
  std::vector<std::string> listed;
  for (const auto& r : runs["runs"]) listed.push_back(r["run_id"]);
  EXPECT_EQ(listed, paged);
  for (const std::string& size : {"1", "4", "20", "21", "0"}) {
    const std::string csv = cluster.Cli({"runs", sweep_id, "--format", "csv", "--page-size", size});
    EXPECT_EQ(csv.rfind("run_id,sweep_id,cell,seed,state,", 0), 0u) << csv;
    EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 22) << csv;  // header + 21
    EXPECT_EQ(RunIdsIn(csv, ids), paged) << csv;
    const std::string table = cluster.Cli({"runs", sweep_id, "--page-size", size});
    EXPECT_EQ(table.rfind("run ", 0), 0u) << table;
    EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 22) << table;
    EXPECT_EQ(RunIdsIn(table, ids), paged) << table;
  }
  // A state filter across pages, and offline from the database file.
  EXPECT_EQ(json::parse(cluster.Cli({"runs", sweep_id, "--state", "queued", "--format", "json",
                                     "--page-size", "2"}))["runs"]
                .size(),
            21u);
  EXPECT_EQ(
      cluster.Cli({"runs", sweep_id, "--format", "json", "--page-size", "3", "--db", cluster.db()}),
      one_page);
  EXPECT_EQ(json::parse(cluster.Cli({"runs", sweep_id, "--state", "failed", "--format", "json",
                                     "--page-size", "3"}))["runs"]
                .size(),
            0u);
}

TEST(Cli, InterruptedWaitSaysTheSweepGoesOn) {
  Cluster cluster({});
  cluster.StartCoordinator();
  const std::string file =
      cluster.WriteSweep("slow.yaml", "name: slow\ntrainer: {kind: synthetic, epoch_seconds: 1}\n");
  const std::string id = FirstLine(cluster.Cli({"submit", file}));
  const std::string err_path = cluster.dir() + "/wait.err";
  Process wait({RESWEEP_CLI_BIN, "--coordinator", cluster.address(), "wait", id, "--poll", "0.2"},
               cluster.dir() + "/wait.out", err_path);
  ASSERT_TRUE(
      WaitFor([&] { return ReadFile(err_path).find("queued") != std::string::npos; }, 10000));
  wait.Kill(SIGINT);
  EXPECT_EQ(wait.Wait(5000), 130);
  EXPECT_NE(ReadFile(err_path).find("The sweep goes on"), std::string::npos) << ReadFile(err_path);
  EXPECT_EQ(json::parse(cluster.Cli({"status", id, "--format", "json"}))["sweeps"][0]["state"],
            "active");
}

// `wait` and `watch` ride out a coordinator restart (a graceful one: its calls in
// flight are cancelled, then nothing listens): each says once that it lost the
// coordinator, asks again, says when it answers, and exits as usual when the sweep is done.
TEST(Cli, WaitAndWatchRideOutACoordinatorRestart) {
  Cluster cluster({});
  cluster.StartCoordinator();
  const std::string id = FirstLine(
      cluster.Cli({"submit", cluster.WriteSweep("restart.yaml",
                                                "name: restart\ntrainer: {kind: synthetic, "
                                                "epoch_seconds: 0.05}\ntrain: {epochs: 2}\n")}));
  std::vector<std::unique_ptr<Process>> watchers;
  for (const char* command : {"wait", "watch"}) {
    watchers.push_back(std::make_unique<Process>(
        std::vector<std::string>{RESWEEP_CLI_BIN, "--coordinator", cluster.address(), command, id,
                                 "--poll", "0.2"},
        cluster.dir() + "/" + command + ".out", cluster.dir() + "/" + command + ".err"));
  }
  auto err = [&](const char* command) { return ReadFile(cluster.dir() + "/" + command + ".err"); };
  auto out = [&](const char* command) { return ReadFile(cluster.dir() + "/" + command + ".out"); };
  ASSERT_TRUE(WaitFor([&] { return err("wait").find("queued") != std::string::npos; }, 10000));
  ASSERT_TRUE(WaitFor([&] { return out("watch").find("restart") != std::string::npos; }, 10000));
  cluster.coordinator().Kill(SIGTERM);
  ASSERT_EQ(cluster.coordinator().Wait(20000), 0) << cluster.CoordinatorLog();
  for (const char* command : {"wait", "watch"}) {
    ASSERT_TRUE(WaitFor(
        [&] { return err(command).find("lost the coordinator") != std::string::npos; }, 10000))
        << command << ": " << err(command);
  }
  cluster.StartCoordinator();
  cluster.StartWorker("w1", 1);
  for (size_t i = 0; i < watchers.size(); ++i) {
    const char* command = i == 0 ? "wait" : "watch";
    EXPECT_EQ(watchers[i]->Wait(60000), 0) << command << ": " << err(command);
    EXPECT_NE(err(command).find("the coordinator answers again"), std::string::npos)
        << err(command);
  }
  EXPECT_NE(err("wait").find("1/1 runs done (1 succeeded"), std::string::npos) << err("wait");

  // --limit holds while the coordinator is away too: exit 4, the sweep goes on.
  const std::string next =
      FirstLine(cluster.Cli({"submit", cluster.WriteSweep("next.yaml",
                                                          "name: next\ntrainer: {kind: synthetic, "
                                                          "epoch_seconds: 30}\n")}));
  Process limited({RESWEEP_CLI_BIN, "--coordinator", cluster.address(), "wait", next, "--poll",
                   "0.2", "--limit", "2"},
                  cluster.dir() + "/limited.out", cluster.dir() + "/limited.err");
  ASSERT_TRUE(WaitFor([&] { return err("limited").find("next") != std::string::npos; }, 10000));
  cluster.coordinator().Kill(SIGTERM);
  EXPECT_EQ(limited.Wait(20000), 4) << err("limited");
  EXPECT_NE(err("limited").find("gave up after 2 s without an answer"), std::string::npos)
      << err("limited");
}

// `resweep watch` in a pseudo-terminal (a real one: forkpty): it redraws in place
// (home + clear) a bar per cell and the results table, follows the sweep from nothing
// done to done, and exits 0 with the final frame on the screen.
TEST(Cli, WatchRedrawsEachCellsProgressInATerminalUntilTheSweepIsDone) {
  Cluster cluster({});
  cluster.StartCoordinator();
  const std::string id =
      FirstLine(cluster.Cli({"submit", cluster.WriteSweep("watched.yaml", R"(name: watched
trainer: {kind: synthetic, epoch_seconds: 0.05}
train: {epochs: 6}
grid:
  model.depth_n: [1, 2]
seeds: 2
)")}));
  int terminal = -1;
  winsize size{};
  size.ws_row = 50;
  size.ws_col = 120;
  const pid_t pid = forkpty(&terminal, nullptr, nullptr, &size);
  ASSERT_GE(pid, 0) << strerror(errno);
  if (pid == 0) {
    execl(RESWEEP_CLI_BIN, RESWEEP_CLI_BIN, "--coordinator", cluster.address().c_str(), "watch",
          id.c_str(), "--poll", "0.2", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::mutex mutex;
  std::string screen;  // everything the terminal received
  std::thread reader([&] {
    char buffer[4096];
    while (true) {
      const ssize_t n = read(terminal, buffer, sizeof buffer);
      if (n <= 0) break;  // EIO once the child is gone
      std::lock_guard<std::mutex> lock(mutex);
      screen.append(buffer, static_cast<size_t>(n));
    }
  });
  auto received = [&] {
    std::lock_guard<std::mutex> lock(mutex);
    return screen;
  };
  const std::string clear = "\x1b[H\x1b[2J";
  // The first frame, before any worker: every cell at 0%.
  ASSERT_TRUE(WaitFor([&] { return received().find("last-") != std::string::npos; }, 20000))
      << received();
  cluster.StartWorker("w1", 2);
  int exit_status = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        int wstatus = 0;
        if (waitpid(pid, &wstatus, WNOHANG) != pid) return false;
        exit_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
        return true;
      },
      60000))
      << received();
  reader.join();
  close(terminal);
  EXPECT_EQ(exit_status, 0) << received();

  // Frames, each drawn over the last.
  std::vector<std::string> frames;
  const std::string all = received();
  for (size_t at = all.find(clear); at != std::string::npos;) {
    const size_t next = all.find(clear, at + clear.size());
    frames.push_back(all.substr(at + clear.size(), next == std::string::npos
                                                       ? std::string::npos
                                                       : next - at - clear.size()));
    at = next;
  }
  ASSERT_GE(frames.size(), 3u) << all;
  const std::regex empty_bar(R"(\[\.+\]   0%  0/2 runs done)");
  const std::regex full_bar(R"(\[#+\] 100%  2/2 runs done)");
  for (const char* cell : {"model.depth_n=1", "model.depth_n=2"}) {
    const std::regex line(std::string("(^|\n)") + cell + " +\\[");
    EXPECT_TRUE(std::regex_search(frames.front(), line)) << frames.front();
    EXPECT_TRUE(std::regex_search(frames.back(), line)) << frames.back();
  }
  EXPECT_EQ(
      std::distance(std::sregex_iterator(frames.front().begin(), frames.front().end(), empty_bar),
                    std::sregex_iterator()),
      2)
      << frames.front();
  EXPECT_EQ(
      std::distance(std::sregex_iterator(frames.back().begin(), frames.back().end(), full_bar),
                    std::sregex_iterator()),
      2)
      << frames.back();
  EXPECT_NE(frames.back().find("  done  "), std::string::npos) << frames.back();
  EXPECT_NE(frames.back().find("last-"), std::string::npos) << frames.back();  // the table
  // Some frame in between shows a cell part way.
  const std::regex partial(R"(\[#+\.+\] +[1-9][0-9]?%)");
  EXPECT_TRUE(std::any_of(frames.begin(), frames.end(), [&](const std::string& f) {
    return std::regex_search(f, partial);
  })) << all;
  // The bars fit the terminal (the results table is as wide as `resweep results`').
  std::istringstream lines(frames.back());
  for (std::string l; std::getline(lines, l);) {
    if (l.find(" runs done") != std::string::npos) EXPECT_LE(l.size(), 120u) << l;
  }
}

TEST(Cli, CompletionScriptsAreValidShell) {
  for (const char* shell : {"bash", "zsh"}) {
    CliResult r = RunCliBare({"completion", shell});
    ASSERT_EQ(r.code, 0) << shell;
    EXPECT_NE(r.out.find("resweep"), std::string::npos);
    const std::string path = std::string("/tmp/resweep-completion-test.") + shell;
    WriteFile(path, r.out);
    const std::string interpreter = std::string("/bin/") + shell;
    if (access(interpreter.c_str(), X_OK) != 0) continue;  // zsh is optional
    std::string out, err;
    EXPECT_EQ(RunCommand({interpreter, "-n", path}, &out, &err), 0) << shell << ": " << err;
  }
  // bash: completing the command word lists the commands.
  std::string out, err;
  ASSERT_EQ(RunCommand({"/bin/bash", "-c",
                        "source /tmp/resweep-completion-test.bash; COMP_WORDS=(resweep re); "
                        "COMP_CWORD=1; _resweep; echo \"${COMPREPLY[@]}\""},
                       &out, &err),
            0)
      << err;
  EXPECT_NE(out.find("results"), std::string::npos) << out;
  EXPECT_NE(out.find("retry"), std::string::npos) << out;
}

TEST(Cli, BadFilesAndArgumentsAreUsageErrors) {
  TempDir dir;
  const std::string latin1 = dir.File("latin1.yaml");
  WriteFile(latin1, "name: ok\ndescription: caf\xe9\n");
  CliResult r = RunCliBare({"--coordinator", "127.0.0.1:1", "submit", latin1});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("not valid UTF-8 at line 2"), std::string::npos) << r.err;
  r = RunCliBare({"submit", dir.File("missing.yaml")});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("missing.yaml: no such file"), std::string::npos) << r.err;
  r = RunCliBare({"submit", dir.path()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  EXPECT_EQ(RunCliBare({"--timeout", "0", "status"}).code, 2);
  EXPECT_EQ(RunCliBare({"runs", "x", "--state", "bogus"}).code, 2);
  WriteFile(dir.File("empty.db"), "");
  r = RunCliBare({"status", "--db", dir.File("empty.db")});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("not a resweep database"), std::string::npos) << r.err;
  // Not SQLite at all: the same kind of mistake, the same exit code.
  WriteFile(dir.File("notes.db"), std::string(4096, 'x'));
  r = RunCliBare({"results", "x", "--db", dir.File("notes.db")});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("notes.db"), std::string::npos) << r.err;
}

TEST(Cli, WaitOnACancelledSweepExitsSixAndStateFilterIgnoresCase) {
  Cluster cluster({});
  cluster.StartCoordinator();
  const std::string id = FirstLine(cluster.Cli(
      {"submit", cluster.WriteSweep("c.yaml", "name: c\ntrainer: {kind: synthetic}\nseeds: 2\n")}));
  cluster.Cli({"cancel", id});
  int code = 0;
  cluster.Cli({"wait", id, "--poll", "0.1"}, &code);
  EXPECT_EQ(code, 6);
  const std::string runs = cluster.Cli({"runs", id, "--state", "CANCELLED", "--format", "json"});
  EXPECT_EQ(json::parse(runs)["runs"].size(), 2u);
}

TEST(Cli, OneCoordinatorPerDatabaseAndPort) {
  Cluster cluster({});
  cluster.StartCoordinator();
  std::string out, err;
  // The same database from another coordinator: refused, naming the holder.
  EXPECT_EQ(RunCommand({RESWEEP_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db", cluster.db()},
                       &out, &err, 20000),
            1);
  EXPECT_NE((out + err).find("is in use by another resweep-coordinator (pid"), std::string::npos)
      << out << err;
  // The same port with another database: refused (no SO_REUSEPORT sharing).
  EXPECT_NE(RunCommand({RESWEEP_COORDINATOR_BIN, "--listen", cluster.address(), "--db",
                        cluster.dir() + "/other.db"},
                       &out, &err, 20000),
            0);
  EXPECT_NE((out + err).find("cannot listen"), std::string::npos) << out << err;
  // The first one still answers.
  EXPECT_EQ(cluster.Cli({"status"}), "no sweeps\n");
}

const char* kPlotSweep = R"(name: plotted
trainer: {kind: synthetic, epoch_seconds: 0.01}
train: {epochs: 6}
grid:
  model.depth_n: [1, 2]
seeds: 2
)";

// Legend entries in an SVG written by gnuplot's svg terminal: each titled plot element
// draws its title as <text>TITLE</text>; the mean lines' titles end in "(n=RUNS)".
std::vector<std::string> SvgLegend(const std::string& svg) {
  std::vector<std::string> out;
  static const std::regex kEntry("<text>([^<]* \\(n=[0-9]+\\))</text>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), kEntry); it != std::sregex_iterator();
       ++it) {
    out.push_back((*it)[1]);
  }
  return out;
}

TEST(Cli, PlotDrawsCurvesAndSummaryWithGnuplotOnlineAndOffline) {
  Cluster cluster({.lease_seconds = 10, .heartbeat_seconds = 0.3});
  cluster.StartCoordinator();
  cluster.StartWorker("w1");
  const std::string file = cluster.WriteSweep("plotted.yaml", kPlotSweep);
  const std::string sweep_id = FirstLine(cluster.Cli({"submit", file}));
  int code = -1;
  cluster.Cli({"wait", sweep_id, "--limit", "60", "--poll", "0.2"}, &code);
  ASSERT_EQ(code, 0) << cluster.Logs();

  // SVG, with per-seed lines: one legend entry per cell, in grid order, and one plot
  // element per band, per run and per cell mean.
  const std::string svg = cluster.dir() + "/curves.svg";
  CliResult r =
      RunCli(cluster, {"plot", sweep_id, "--metric", "train_loss", "--seeds", "--out", svg});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("wrote " + svg), std::string::npos) << r.out;
  const std::string svg_text = ReadFile(svg);
  ASSERT_NE(svg_text.find("<svg"), std::string::npos);
  EXPECT_EQ(SvgLegend(svg_text),
            (std::vector<std::string>{"model.depth_n=1 (n=2)", "model.depth_n=2 (n=2)"}))
      << svg_text.substr(0, 2000);
  int elements = 0;
  for (size_t at = svg_text.find("<g id=\"gnuplot_plot_"); at != std::string::npos;
       at = svg_text.find("<g id=\"gnuplot_plot_", at + 1)) {
    ++elements;
  }
  EXPECT_EQ(elements, 2 + 4 + 2);  // bands, runs, means
  // The data and the script stay beside the figure, named after all of its name.
  const std::string data = ReadFile(cluster.dir() + "/curves.svg.dat");
  EXPECT_NE(data.find("# cell model.depth_n=1: mean of 2 run(s)"), std::string::npos) << data;
  EXPECT_NE(ReadFile(cluster.dir() + "/curves.svg.gp").find("set output"), std::string::npos);
  // A PNG of the same name beside it keeps its own data and script: the SVG's script
  // still draws the SVG.
  r = RunCli(cluster,
             {"plot", sweep_id, "--metric", "test_error", "--out", cluster.dir() + "/curves.png"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(ReadFile(cluster.dir() + "/curves.svg.dat"), data);
  EXPECT_NE(ReadFile(cluster.dir() + "/curves.svg.gp").find("set output '" + svg + "'"),
            std::string::npos);
  EXPECT_NE(ReadFile(cluster.dir() + "/curves.png.gp").find("curves.png.dat"), std::string::npos);

  // PNG of the rolling test error over an x range, CI band, log scale.
  const std::string png = cluster.dir() + "/test-error.png";
  r = RunCli(cluster, {"plot", sweep_id, "--metric", "test_error", "--rolling", "2", "--xrange",
                       "2:6", "--band", "ci95", "--logy", "--out", png});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(ReadFile(png).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));

  // Offline from the database file: the same data, the same figure's legend.
  const std::string offline_svg = cluster.dir() + "/offline.svg";
  r = RunCli(cluster, {"plot", sweep_id, "--metric", "train_loss", "--seeds", "--out", offline_svg,
                       "--db", cluster.db()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(ReadFile(cluster.dir() + "/offline.svg.dat"), data);
  EXPECT_EQ(SvgLegend(ReadFile(offline_svg)), SvgLegend(svg_text));

  // The summary: last-K test error against depth, one series (no other axis) with bars.
  const std::string summary = cluster.dir() + "/summary.svg";
  r = RunCli(cluster, {"plot", sweep_id, "--summary", "--x", "model.depth_n", "--out", summary});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const std::string summary_data = ReadFile(cluster.dir() + "/summary.svg.dat");
  int points = 0;  // lines that are neither comments nor block separators
  std::istringstream lines(summary_data);
  for (std::string line; std::getline(lines, line);) points += !line.empty() && line[0] != '#';
  EXPECT_EQ(points, 2) << summary_data;  // one per depth
  EXPECT_NE(ReadFile(summary).find("<text>mean of last"), std::string::npos);

  // Without gnuplot: a clear error naming the package; the data and script are written.
  const std::string no_gnuplot = cluster.dir() + "/no-gnuplot.svg";
  std::string out, err;
  code = RunCommand({"/usr/bin/env", "PATH=/nonexistent", RESWEEP_CLI_BIN, "plot", sweep_id, "--db",
                     cluster.db(), "--out", no_gnuplot},
                    &out, &err);
  EXPECT_EQ(code, 1) << out << err;
  EXPECT_NE(err.find("gnuplot is not installed"), std::string::npos) << err;
  EXPECT_NE(err.find("gnuplot-nox"), std::string::npos) << err;
  EXPECT_FALSE(ReadFile(cluster.dir() + "/no-gnuplot.svg.dat").empty());
  EXPECT_FALSE(std::filesystem::exists(no_gnuplot));

  // Bad input names the option and draws nothing.
  r = RunCli(cluster, {"plot", sweep_id, "--out", cluster.dir() + "/x.jpg"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--out"), std::string::npos) << r.err;
  r = RunCli(cluster, {"plot", sweep_id, "--summary", "--x", "model.width", "--out", summary});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--x: 'model.width' is not a grid axis"), std::string::npos) << r.err;
}

const char* kReportSweep = R"(name: reported
trainer: {kind: synthetic, epoch_seconds: 0.01}
train: {epochs: 6}
grid:
  model.depth_n: [3, 5]
  model.block: [reference, preact]
seeds: 3
results: {last_k: 2}
)";

// The PNG signature, then an IHDR chunk first with a width and height > 0.
void ExpectPng(const std::string& path) {
  const std::string png = ReadFile(path);
  ASSERT_GE(png.size(), 33u) << path;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << path;
  EXPECT_EQ(png.substr(12, 4), "IHDR") << path;
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<unsigned char>(png[at + i]);
    return v;
  };
  EXPECT_GT(be32(16), 0u) << path;
  EXPECT_GT(be32(20), 0u) << path;
  // Curves, a legend and axes, not an empty canvas (an empty 1200x750 PNG is ~6 KiB).
  EXPECT_GT(png.size(), 15000u) << path;
}

// Well-formed XML as far as an SVG needs: every element closed in order, one root.
// Returns "" or what is wrong.
std::string XmlProblem(const std::string& xml) {
  std::vector<std::string> open;
  int roots = 0;
  for (size_t at = xml.find('<'); at != std::string::npos; at = xml.find('<', at + 1)) {
    if (xml.compare(at, 4, "<!--") == 0) {
      at = xml.find("-->", at);
      if (at == std::string::npos) return "unclosed comment";
      continue;
    }
    if (xml.compare(at, 9, "<![CDATA[") == 0) {
      at = xml.find("]]>", at);
      if (at == std::string::npos) return "unclosed CDATA";
      continue;
    }
    const size_t end = xml.find('>', at);
    if (end == std::string::npos) return "unclosed tag at " + std::to_string(at);
    const std::string tag = xml.substr(at + 1, end - at - 1);
    if (tag.empty() || tag[0] == '?' || tag[0] == '!') continue;
    if (tag[0] == '/') {
      const std::string name = tag.substr(1, tag.find_first_of(" \t\n") - 1);
      if (open.empty() || open.back() != name) return "</" + name + "> closes nothing open";
      open.pop_back();
      continue;
    }
    if (open.empty()) ++roots;
    if (tag.back() != '/') open.push_back(tag.substr(0, tag.find_first_of(" \t\n/")));
  }
  if (!open.empty()) return "<" + open.back() + "> never closed";
  return roots == 1 ? "" : std::to_string(roots) + " root elements";
}

// The README's results table: header and rows, cells trimmed.
std::vector<std::vector<std::string>> ReadmeTable(const std::string& readme) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(readme.substr(readme.find("## Results")));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("|", 0) != 0) {
      if (!rows.empty()) break;
      continue;
    }
    if (line.find("---") != std::string::npos) continue;  // the alignment row
    std::vector<std::string> cells;
    std::istringstream parts(line.substr(1));
    for (std::string cell; std::getline(parts, cell, '|');) {
      const size_t a = cell.find_first_not_of(' '), b = cell.find_last_not_of(' ');
      cells.push_back(a == std::string::npos ? "" : cell.substr(a, b - a + 1));
    }
    rows.push_back(cells);
  }
  return rows;
}

// `text` ("12.34", "12.34 ± 0.56", "0.25 [0.00, 1.00]") as its numbers.
std::vector<double> Numbers(const std::string& text) {
  std::vector<double> out;
  static const std::regex kNumber("-?[0-9]+(\\.[0-9]+)?");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kNumber);
       it != std::sregex_iterator(); ++it) {
    out.push_back(std::stod(it->str()));
  }
  return out;
}

// Every number of the README's table equals `results --format json`'s at the printed
// precision (errors in percent with 2 decimals, p with 3, probabilities with 2).
void ExpectTableEqualsJson(const std::string& readme, const json& results) {
  const auto rows = ReadmeTable(readme);
  ASSERT_EQ(rows.size(), results["cells"].size() + 1) << readme;
  const auto& header = rows[0];
  ASSERT_EQ(header.size(), 12u) << readme;
  EXPECT_EQ(header[2], "last-2 err % (mean ± 95% CI)");
  EXPECT_EQ(header[10], "paper %");
  EXPECT_EQ(header[11], "2016 run %");
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto& row = rows[i];
    const json& c = results["cells"][i - 1];
    SCOPED_TRACE(row[0]);
    EXPECT_EQ(row[0], c["cell"].get<std::string>());
    EXPECT_EQ(row[1], std::to_string(c["runs_succeeded"].get<int>()) + "/" +
                          std::to_string(c["runs_total"].get<int>()));
    const json& l = c["last_k_test_error"];
    auto near = [](double printed, const json& fraction, double scale, double half_unit) {
      EXPECT_NEAR(printed, fraction.get<double>() * scale, half_unit + 1e-9);
    };
    auto mean_ci = Numbers(row[2]);
    ASSERT_EQ(mean_ci.size(), 2u) << row[2];
    near(mean_ci[0], l["mean"], 100, 0.005);
    near(mean_ci[1], json((l["ci95"][1].get<double>() - l["ci95"][0].get<double>()) / 2), 100,
         0.005);
    near(Numbers(row[3]).at(0), l["std"], 100, 0.005);
    const json& v = c["comparison"];
    EXPECT_EQ(row[4], v["is_best"].get<bool>()                       ? "best"
                      : v["indistinguishable_from_best"].get<bool>() ? "≈ best"
                                                                     : "worse");
    if (v["is_best"].get<bool>()) {
      EXPECT_EQ(row[5], "-");
      EXPECT_EQ(row[6], "-");
      EXPECT_EQ(row[7], "-");
    } else {
      if (row[5] == "<0.001") {
        EXPECT_LT(v["p_holm"].get<double>(), 0.001);
      } else {
        near(Numbers(row[5]).at(0), v["p_holm"], 1, 0.0005);
      }
      auto p = Numbers(row[6]);
      ASSERT_EQ(p.size(), 3u) << row[6];
      near(p[0], v["probability_better"], 1, 0.005);
      near(p[1], v["probability_better_ci95"][0], 1, 0.005);
      near(p[2], v["probability_better_ci95"][1], 1, 0.005);
      EXPECT_EQ(row[7],
                v["seeds_needed"].is_null() ? "-" : std::to_string(v["seeds_needed"].get<int>()));
    }
    auto final = Numbers(row[8]);
    ASSERT_EQ(final.size(), 2u) << row[8];
    near(final[0], c["final_test_error"]["mean"], 100, 0.005);
    near(final[1], c["final_test_error"]["std"], 100, 0.005);
    for (const auto& [column, key] : std::vector<std::pair<int, std::string>>{
             {10, "paper_test_error"}, {11, "source_test_error"}}) {
      if (c[key].is_null()) {
        EXPECT_EQ(row[column], "-");
      } else {
        near(Numbers(row[column]).at(0), c[key], 100, 0.005);
      }
    }
  }
}

// Checks a report folder: every file, every figure (PNG and SVG), the table against
// `results_json`, the reading against its verdicts. Returns the README.
std::string ExpectReport(const std::string& dir, const json& results_json) {
  for (const char* file : {"README.md", "results.csv", "runs.csv", "epochs.csv"}) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + file)) << file;
  }
  for (const char* figure : {"train-loss", "test-error", "first-epochs", "summary"}) {
    SCOPED_TRACE(figure);
    const std::string stem = dir + "/figures/" + figure;
    ExpectPng(stem + ".png");
    const std::string svg = ReadFile(stem + ".svg");
    EXPECT_NE(svg.find("<svg"), std::string::npos);
    EXPECT_EQ(XmlProblem(svg), "");
    EXPECT_FALSE(ReadFile(stem + ".png.dat").empty());
    EXPECT_FALSE(ReadFile(stem + ".svg.gp").empty());
    if (std::string(figure) != "summary") {  // one series per cell, in grid order
      EXPECT_EQ(SvgLegend(svg),
                (std::vector<std::string>{"model.depth_n=3 model.block=reference (n=3)",
                                          "model.depth_n=3 model.block=preact (n=3)",
                                          "model.depth_n=5 model.block=reference (n=3)",
                                          "model.depth_n=5 model.block=preact (n=3)"}))
          << svg.substr(0, 3000);
    }
  }
  // The zoom shows the first 2 of the 6 epochs.
  EXPECT_NE(ReadFile(dir + "/figures/first-epochs.svg.gp").find("set xrange [*:2]"),
            std::string::npos);
  const std::string readme = ReadFile(dir + "/README.md");
  ExpectTableEqualsJson(readme, results_json);
  // The reading lists exactly the cells JSON calls indistinguishable from the best.
  std::vector<std::string> same;
  for (const auto& c : results_json["cells"]) {
    if (c["comparison"]["indistinguishable_from_best"].get<bool>() &&
        !c["comparison"]["is_best"].get<bool>()) {
      same.push_back("`" + c["cell"].get<std::string>() + "`");
    }
  }
  std::string listed;
  for (const auto& s : same) listed += (listed.empty() ? "" : ", ") + s;
  EXPECT_NE(readme.find("Cells indistinguishable from the best at 95% (Welch t-test, "
                        "Holm-adjusted): " +
                        (listed.empty() ? std::string("none") : listed) + ".\n"),
            std::string::npos)
      << readme;
  for (const char* figure : {"train-loss", "test-error", "first-epochs", "summary"}) {
    EXPECT_NE(readme.find(std::string("](figures/") + figure + ".png)"), std::string::npos);
  }
  EXPECT_NE(readme.find("- **Trainer**: **synthetic**"), std::string::npos) << readme;
  EXPECT_NE(readme.find("- **Grid**: `model.block` (reference, preact); `model.depth_n` (3, 5)"),
            std::string::npos)
      << readme;
  // results.csv is `results --format csv`; runs.csv one line per run; epochs.csv one per
  // (run, epoch).
  int runs = -1, epochs = -1;
  for (std::istringstream in(ReadFile(dir + "/runs.csv")); std::getline(in, listed);) ++runs;
  for (std::istringstream in(ReadFile(dir + "/epochs.csv")); std::getline(in, listed);) ++epochs;
  EXPECT_EQ(runs, 12);
  EXPECT_EQ(epochs, 12 * 6);
  return readme;
}

TEST(Cli, ReportWritesTheReadmeCsvFilesAndEveryFigureOnlineAndOffline) {
  Cluster cluster({.lease_seconds = 10, .heartbeat_seconds = 0.3});
  cluster.StartCoordinator();
  cluster.StartWorker("w1");
  const std::string file = cluster.WriteSweep("reported.yaml", kReportSweep);
  const std::string sweep_id = FirstLine(cluster.Cli({"submit", file}));
  int code = -1;
  cluster.Cli({"wait", sweep_id, "--limit", "60", "--poll", "0.2"}, &code);
  ASSERT_EQ(code, 0) << cluster.Logs();
  const json results = json::parse(cluster.Cli({"results", sweep_id, "--format", "json"}));

  const std::string online = cluster.dir() + "/report";
  CliResult r = RunCli(cluster, {"report", "reported", "-o", online});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "wrote " + online + "/README.md (with results.csv, runs.csv, epochs.csv and 4 " +
                       "figures in " + online + "/figures)\n");
  EXPECT_NE(r.err.find("[8/8] " + online + "/figures/summary.svg"), std::string::npos) << r.err;
  const std::string readme = ExpectReport(online, results);
  EXPECT_EQ(ReadFile(online + "/results.csv"),
            cluster.Cli({"results", sweep_id, "--format", "csv"}));
  EXPECT_EQ(ReadFile(online + "/runs.csv"), cluster.Cli({"runs", sweep_id, "--format", "csv"}));
  // The summary against the blocks (the first of two axes of two values): one series per
  // depth, side by side at each block.
  const std::string summary = ReadFile(online + "/figures/summary.svg.dat");
  EXPECT_NE(summary.find("# series model.depth_n=3 (drawn at x - 0.03)"), std::string::npos)
      << summary;
  EXPECT_NE(summary.find("# series model.depth_n=5 (drawn at x + 0.03)"), std::string::npos)
      << summary;

  // Offline from the database file: the same numbers, the same protocol and reading.
  const std::string offline = cluster.dir() + "/offline-report";
  r = RunCli(cluster, {"report", sweep_id, "--out", offline, "--db", cluster.db()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const std::string offline_readme = ExpectReport(offline, results);
  auto body = [](const std::string& m) { return m.substr(0, m.find("## Figures")); };
  EXPECT_EQ(body(offline_readme), body(readme));
  EXPECT_NE(offline_readme.find("--db " + cluster.db()), std::string::npos);

  // Errors: an unknown sweep, a folder that cannot be made, no gnuplot.
  r = RunCli(cluster, {"report", "no-such-sweep", "-o", cluster.dir() + "/x"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("resweep report: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no-such-sweep"), std::string::npos) << r.err;
  r = RunCli(cluster, {"report", sweep_id, "-o", online + "/README.md/sub"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("-o " + online + "/README.md/sub: cannot create the folder"),
            std::string::npos)
      << r.err;
  std::string out, err;
  const std::string bare = cluster.dir() + "/bare";
  code = RunCommand({"/usr/bin/env", "PATH=/nonexistent", RESWEEP_CLI_BIN, "report", sweep_id,
                     "--db", cluster.db(), "-o", bare},
                    &out, &err);
  EXPECT_EQ(code, 1) << out << err;
  EXPECT_NE(err.find("gnuplot is not installed"), std::string::npos) << err;
  EXPECT_NE(err.find("--no-figures"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(bare + "/README.md"));
  // Without figures, no gnuplot is needed: the same tables.
  code = RunCommand({"/usr/bin/env", "PATH=/nonexistent", RESWEEP_CLI_BIN, "report", sweep_id,
                     "--db", cluster.db(), "-o", bare, "--no-figures"},
                    &out, &err);
  ASSERT_EQ(code, 0) << out << err;
  const std::string bare_readme = ReadFile(bare + "/README.md");
  EXPECT_EQ(bare_readme.find("## Figures"), std::string::npos);
  ExpectTableEqualsJson(bare_readme, results);
}

// The simplest study, one configuration and repeated seeds, has no grid: its report
// must still be written, with its summary one CI bar (it once failed on the summary
// with "--x: '' is not a grid axis" and wrote no README).
TEST(Cli, ReportOfASweepWithoutAGridAndItsCommandsAsWritten) {
  Cluster cluster({.lease_seconds = 10, .heartbeat_seconds = 0.3});
  cluster.StartCoordinator();
  cluster.StartWorker("w1");
  const std::string file = cluster.WriteSweep("one-cell.yaml", R"(name: one-cell
trainer: {kind: synthetic, epoch_seconds: 0.01}
train: {epochs: 3}
seeds: 3
results: {last_k: 2}
)");
  const std::string sweep_id = FirstLine(cluster.Cli({"submit", file}));
  int code = -1;
  cluster.Cli({"wait", sweep_id, "--limit", "60", "--poll", "0.2"}, &code);
  ASSERT_EQ(code, 0) << cluster.Logs();
  const std::string dir = cluster.dir() + "/report";
  CliResult r = RunCli(cluster, {"report", sweep_id, "-o", dir});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const std::string readme = ReadFile(dir + "/README.md");
  EXPECT_NE(readme.find("- **Grid**: one cell\n"), std::string::npos) << readme;
  EXPECT_NE(readme.find("![Summary](figures/summary.png)"), std::string::npos) << readme;
  ExpectPng(dir + "/figures/summary.png");
  EXPECT_EQ(XmlProblem(ReadFile(dir + "/figures/summary.svg")), "");
  // The reading names the one cell and claims no comparison.
  EXPECT_NE(readme.find("- Lowest mean: `"), std::string::npos) << readme;
  EXPECT_EQ(readme.find("indistinguishable from the best at"), std::string::npos) << readme;

  // The README's commands work as written: a plot command from the report's folder, the
  // report command from where it ran, with a relative --db and a folder with a space
  // (they once kept the relative database path, which the report's folder does not have,
  // and left the folder unquoted).
  const std::string quoted_dir = "'" + cluster.dir() + "'";
  std::string out, err;
  code = RunCommand({"/bin/sh", "-c",
                     "cd " + quoted_dir + " && " + RESWEEP_CLI_BIN + " report " + sweep_id +
                         " -o 'my report' --db coordinator.db"},
                    &out, &err);
  ASSERT_EQ(code, 0) << out << err;
  const std::string spaced = ReadFile(cluster.dir() + "/my report/README.md");
  auto command_after = [&](const std::string& marker) {
    const size_t at = spaced.find(marker + "`resweep ");
    EXPECT_NE(at, std::string::npos) << marker << "\n" << spaced;
    if (at == std::string::npos) return std::string("false");
    const size_t from = at + marker.size() + 1;
    // `resweep` stands for the binary under test.
    return std::string(RESWEEP_CLI_BIN) +
           spaced.substr(from + 7, spaced.find('`', from) - from - 7);
  };
  const std::string plot = command_after("Drawn by ");
  EXPECT_NE(plot.find("--db " + cluster.db()), std::string::npos) << plot;
  code = RunCommand({"/bin/sh", "-c", "cd " + quoted_dir + "/'my report' && " + plot}, &out, &err);
  EXPECT_EQ(code, 0) << plot << "\n" << out << err;
  const std::string report = command_after("Written by ");
  EXPECT_NE(report.find(" -o 'my report' "), std::string::npos) << report;
  code = RunCommand({"/bin/sh", "-c", "cd " + quoted_dir + " && " + report}, &out, &err);
  EXPECT_EQ(code, 0) << report << "\n" << out << err;
  // The Files section's commands print the CSV files, from the same database (they once
  // left out --db, and --last-k, so an offline report's command found no coordinator).
  for (const auto& [marker, file] :
       {std::pair<std::string, std::string>{"every statistic per cell, as ", "results.csv"},
        {"one line per run, as ", "runs.csv"}}) {
    const std::string command = command_after(marker);
    EXPECT_NE(command.find("--db " + cluster.db()), std::string::npos) << command;
    code = RunCommand({"/bin/sh", "-c", "cd " + quoted_dir + "/'my report' && " + command}, &out,
                      &err);
    EXPECT_EQ(code, 0) << command << "\n" << err;
    EXPECT_EQ(out, ReadFile(cluster.dir() + "/my report/" + file)) << command;
  }

  // The folder again, without figures and with a K above the 3 epochs the runs have:
  // the old report's figures go (they would show an older state), a file of the user's
  // in figures/ stays, and the README says the K each run really averaged.
  const std::string mine = dir + "/figures/mine.txt";
  { std::ofstream(mine) << "mine\n"; }
  r = RunCli(cluster, {"report", sweep_id, "-o", dir, "--no-figures", "--last-k", "50"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  for (const char* figure : {"train-loss", "test-error", "first-epochs", "summary"}) {
    for (const char* ext : {".png", ".svg", ".png.dat", ".png.gp", ".svg.dat", ".svg.gp"}) {
      EXPECT_FALSE(std::filesystem::exists(dir + "/figures/" + figure + ext)) << figure << ext;
    }
  }
  EXPECT_EQ(ReadFile(mine), "mine\n");
  const std::string clamped = ReadFile(dir + "/README.md");
  EXPECT_EQ(clamped.find("last 50"), std::string::npos) << clamped;
  EXPECT_NE(clamped.find("the mean test error of its last 3 evaluated epochs"), std::string::npos)
      << clamped;
  EXPECT_NE(clamped.find("| last-3 err % (mean ± 95% CI) |"), std::string::npos) << clamped;
  EXPECT_NE(clamped.find(" --last-k 3"), std::string::npos) << clamped;
  // results.csv holds last-3 numbers: the command said to print it says so.
  EXPECT_NE(clamped.find("`resweep results " + sweep_id + " --format csv --last-k 3`"),
            std::string::npos)
      << clamped;
  EXPECT_NE(r.err.find("--last-k 50 is more than the 3 evaluated epochs"), std::string::npos)
      << r.err;
  // Nothing of the user's left: the report's own folder goes too.
  std::filesystem::remove(mine);
  r = RunCli(cluster, {"report", sweep_id, "-o", dir, "--no-figures"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/figures"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/README.md"));
}

}  // namespace
}  // namespace resweep
