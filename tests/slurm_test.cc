// deploy/slurm's batch scripts against real Slurm daemons (tests/slurm_cluster.h)
// and a real coordinator: workers started by sbatch train a synthetic sweep; the
// job is sent SIGTERM mid-run the way the time-limit warning (--signal=B:TERM@...)
// sends it, to the batch script alone; the runs checkpoint, are given back, the job
// requeues itself, and in the next job the runs continue from those checkpoints
// with every epoch recorded exactly once.
#include <gtest/gtest.h>

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "coordinator/sqlite_store.h"
#include "tests/cluster.h"
#include "tests/slurm_cluster.h"

namespace resweep {
namespace {

using namespace resweep::testing;

constexpr int kEpochs = 8;

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string Script(const std::string& name) {
  return std::string(RESWEEP_SOURCE_DIR) + "/deploy/slurm/" + name;
}

// A sweep of two runs that a 2-slot worker trains at once; checkpoints only when
// stopped (every 1000 epochs), so any checkpoint a run has was written on SIGTERM.
std::string SweepYaml() {
  return "name: slurm\n"
         "trainer: {kind: synthetic, epoch_seconds: 0.4}\n"
         "train: {epochs: " +
         std::to_string(kEpochs) +
         ", checkpoint_every: 1000}\n"
         "seeds: 2\n";
}

class SlurmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = SlurmCluster::SkipReason(); !why.empty()) {
      GTEST_SKIP() << "real-Slurm test skipped: " << why;
    }
    std::string error;
    ASSERT_TRUE(slurm_.Start(&error)) << error;
    // The cluster schedules and runs a step.
    std::string out;
    ASSERT_EQ(slurm_.Run({"srun", "--nodes", "1", "hostname"}, &out), 0) << out << slurm_.Logs();
    ASSERT_FALSE(out.empty());
  }

  // Submits `script` with two GPUs per node; the worker trains on the CPU (two
  // slots) since the GPUs are fake. Returns the job id.
  std::string Submit(const std::string& script, const std::string& exports) {
    std::string out;
    const int code =
        slurm_.Run({"sbatch",
                    "--parsable",
                    "--nodes",
                    "1",
                    "--gpus-per-node",
                    "2",
                    "--chdir",
                    slurm_.dir(),
                    "--output",
                    slurm_.dir() + "/job-%j.out",
                    "--export",
                    "ALL,RESWEEP_WORKER=" RESWEEP_WORKER_BIN ",RESWEEP_DEVICE=cpu," + exports,
                    script,
                    "--slots",
                    "2",
                    "--threads",
                    "1",
                    "--poll-seconds",
                    "0.1",
                    "--name",
                    "slurm"},
                   &out);
    EXPECT_EQ(code, 0) << out << slurm_.Logs();
    return FirstLine(out);
  }
  std::string JobLog(const std::string& job) {
    return ReadFile(slurm_.dir() + "/job-" + job + ".out");
  }

  // SIGTERM to the batch script only, as the time-limit warning sends it. The job
  // gives its runs back (`runs_back`), requeues itself, and runs again once
  // Slurm's requeue delay (cred_expire, a few seconds here) has passed.
  void InterruptAndExpectRequeued(const std::string& job, const std::function<bool()>& runs_back) {
    std::string out;
    ASSERT_EQ(slurm_.Run({"scancel", "--signal=TERM", "--batch", job}, &out), 0) << out;
    ASSERT_TRUE(WaitFor([&] { return runs_back() && slurm_.JobState(job) == "PENDING"; }, 30000))
        << "job " << slurm_.JobState(job) << "\n"
        << JobLog(job) << slurm_.Logs();
    ASSERT_TRUE(WaitFor([&] { return slurm_.JobState(job) == "RUNNING"; }, 30000))
        << Show(job) << JobLog(job) << slurm_.Logs();
  }
  std::string Show(const std::string& job) {
    std::string out;
    slurm_.Run({"scontrol", "show", "job", job}, &out);
    return out;
  }

  SlurmCluster slurm_;
};

// The runs of `sweep_id` in `db`, with epochs 1..kEpochs each recorded once, the
// epochs up to the checkpoint each run was interrupted at (`saved`) by its first
// attempt and the rest by its second; the first attempt was given back.
void ExpectResumedWithNoEpochLostOrRepeated(Store& db, const std::string& sweep_id,
                                            const std::map<std::string, int>& saved) {
  auto rows = db.ListSweepRuns(sweep_id, std::nullopt);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  for (const auto& [link, run] : *rows) {
    EXPECT_EQ(run.state, RunState::kSucceeded) << run.run_id << ": " << run.error;
    EXPECT_EQ(run.failures, 0) << run.run_id;  // giving a run back costs no attempt
    ASSERT_EQ(saved.count(run.run_id), 1u) << run.run_id;
    const int checkpoint = saved.at(run.run_id);
    EXPECT_GE(checkpoint, 1) << run.run_id;
    auto attempts = db.ListAttempts(run.run_id);
    ASSERT_TRUE(attempts.ok());
    ASSERT_EQ(attempts->size(), 2u) << run.run_id;
    EXPECT_EQ((*attempts)[0].state, "released") << run.run_id;
    EXPECT_EQ((*attempts)[1].state, "succeeded") << run.run_id;
    EXPECT_NE((*attempts)[0].worker_id, (*attempts)[1].worker_id);  // the next job's worker
    auto epochs = db.ListEpochs(run.run_id);
    ASSERT_TRUE(epochs.ok());
    ASSERT_EQ(epochs->size(), static_cast<size_t>(kEpochs)) << run.run_id;
    for (int e = 0; e < kEpochs; ++e) {
      EXPECT_EQ((*epochs)[e].epoch, e + 1) << run.run_id;
      EXPECT_EQ((*epochs)[e].attempt, e + 1 <= checkpoint ? 1 : 2)
          << run.run_id << " epoch " << e + 1 << " (checkpoint at " << checkpoint << ")";
    }
  }
}

TEST_F(SlurmTest, WorkersJobInterruptedBySigtermCheckpointsRequeuesAndResumes) {
  Cluster cluster({.lease_seconds = 60, .heartbeat_seconds = 0.3});
  cluster.StartCoordinator();
  const std::string sweep_id =
      FirstLine(cluster.Cli({"submit", cluster.WriteSweep("slurm.yaml", SweepYaml())}));
  ASSERT_EQ(sweep_id.size(), 12u);

  const std::string job =
      Submit(Script("resweep-workers.sbatch"), "RESWEEP_COORDINATOR=" + cluster.address());
  ASSERT_FALSE(job.empty());
  // Both runs train, past their second epoch.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto rows = cluster.OpenDb()->ListSweepRuns(sweep_id, RunState::kRunning);
        return rows.ok() && rows->size() == 2 &&
               std::all_of(rows->begin(), rows->end(),
                           [](const auto& r) { return r.second.epoch >= 2; });
      },
      30000))
      << JobLog(job) << cluster.Logs() << slurm_.Logs();

  // Given back with a checkpoint, long before the 60 s lease would expire.
  std::map<std::string, int> saved;
  InterruptAndExpectRequeued(job, [&] {
    auto rows = cluster.OpenDb()->ListSweepRuns(sweep_id, RunState::kQueued);
    if (!rows.ok() || rows->size() != 2) return false;
    for (const auto& [link, run] : *rows) saved[run.run_id] = run.checkpoint_epoch;
    return true;
  });
  if (HasFatalFailure()) return;

  int code = 0;
  cluster.Cli({"wait", sweep_id, "--limit", "60", "--poll", "0.3"}, &code);
  ASSERT_EQ(code, 0) << JobLog(job) << cluster.Logs();
  auto db = cluster.OpenDb();
  ASSERT_TRUE(db);
  ExpectResumedWithNoEpochLostOrRepeated(*db, sweep_id, saved);

  const std::string log = JobLog(job);
  EXPECT_NE(log.find("GPUs 0,1"), std::string::npos) << log;  // --gpus-per-node reached it
  EXPECT_NE(log.find("requeueing job " + job), std::string::npos) << log;
  EXPECT_NE(log.find("(restart 1)"), std::string::npos) << log;
  // A plain scancel ends the job for good: no requeue.
  std::string out;
  ASSERT_EQ(slurm_.Run({"scancel", job}, &out), 0) << out;
  EXPECT_TRUE(WaitFor([&] { return slurm_.JobState(job).empty(); }, 20000))
      << slurm_.JobState(job) << "\n"
      << JobLog(job);
  EXPECT_EQ(JobLog(job).find("(restart 2)"), std::string::npos) << JobLog(job);
}

// A read-only copy of the database `path`, opened as `resweep results --db` would.
std::unique_ptr<Store> OpenCopy(const std::string& path, const std::string& copy) {
  std::filesystem::copy_file(path, copy, std::filesystem::copy_options::overwrite_existing);
  auto store = OpenSqliteStore(copy, {.read_only = true});
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

TEST_F(SlurmTest, WithCoordinatorJobKeepsItsDatabaseOnLocalDiskAndAcrossARequeue) {
  const std::string state = slurm_.dir() + "/shared-state";
  const std::string local = slurm_.dir() + "/node-local";
  const std::string address_file = state + "/coordinator-address";
  const std::string job =
      Submit(Script("resweep-with-coordinator.sbatch"),
             "RESWEEP_COORDINATOR_BIN=" RESWEEP_COORDINATOR_BIN
             ",RESWEEP_LISTEN=127.0.0.1:0,"
             "RESWEEP_STATE_DIR=" +
                 state + ",RESWEEP_LOCAL_DIR=" + local + ",RESWEEP_BACKUP_SECONDS=1" +
                 ",RESWEEP_COORDINATOR_ARGS=--lease-seconds 60 --heartbeat-seconds 0.3");
  ASSERT_FALSE(job.empty());
  auto cli = [&](std::vector<std::string> args, std::string* out) {
    std::vector<std::string> argv = {RESWEEP_CLI_BIN, "--coordinator",
                                     FirstLine(ReadFile(address_file))};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string err;
    const int code = RunCommand(argv, out, &err, 90000);
    *out += err;
    return code;
  };
  ASSERT_TRUE(WaitFor([&] { return !ReadFile(address_file).empty(); }, 30000))
      << JobLog(job) << slurm_.Logs();
  TempDir scratch;
  WriteFile(scratch.File("slurm.yaml"), SweepYaml());
  std::string out;
  ASSERT_EQ(cli({"submit", scratch.File("slurm.yaml")}, &out), 0) << out << JobLog(job);
  const std::string sweep_id = FirstLine(out);
  ASSERT_EQ(sweep_id.size(), 12u) << out;
  // The live database is on the node-local disk.
  const std::string live_db = local + "/resweep-" + job + "/resweep.db";
  ASSERT_TRUE(WaitFor(
      [&] {
        auto db = OpenSqliteStore(live_db, {.read_only = true});
        if (!db.ok()) return false;
        auto rows = (*db)->ListSweepRuns(sweep_id, RunState::kRunning);
        return rows.ok() && rows->size() == 2 &&
               std::all_of(rows->begin(), rows->end(),
                           [](const auto& r) { return r.second.epoch >= 2; });
      },
      30000))
      << JobLog(job) << slurm_.Logs();

  // While it runs, the job backs the live database up to the shared state directory
  // (an online backup, every RESWEEP_BACKUP_SECONDS): a consistent copy that holds
  // the sweep.
  ASSERT_TRUE(WaitFor(
      [&] {
        if (JobLog(job).find("database backed up to " + state + "/resweep.db") ==
            std::string::npos) {
          return false;
        }
        auto copy = OpenCopy(state + "/resweep.db", scratch.File("backup.db"));
        if (!copy) return false;
        auto rows = copy->ListSweepRuns(sweep_id, std::nullopt);
        return rows.ok() && rows->size() == 2;
      },
      30000))
      << JobLog(job) << slurm_.Logs();
  EXPECT_EQ(slurm_.JobState(job), "RUNNING");

  // The job stops its workers (which give their runs back with a checkpoint), then
  // the coordinator, saves the database to the shared state directory and requeues.
  InterruptAndExpectRequeued(
      job, [&] { return JobLog(job).find("database and checkpoints saved") != std::string::npos; });
  if (HasFatalFailure()) return;
  EXPECT_FALSE(std::filesystem::exists(local + "/resweep-" + job));
  std::map<std::string, int> saved;
  {
    auto db = OpenCopy(state + "/resweep.db", scratch.File("after-first-job.db"));
    ASSERT_TRUE(db);
    auto rows = db->ListSweepRuns(sweep_id, std::nullopt);
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 2u);
    for (const auto& [link, run] : *rows) {
      EXPECT_EQ(run.state, RunState::kQueued) << run.run_id;
      saved[run.run_id] = run.checkpoint_epoch;
    }
  }

  // The next job continues from that database: the sweep completes.
  ASSERT_TRUE(WaitFor([&] { return !ReadFile(address_file).empty(); }, 30000))
      << JobLog(job) << slurm_.Logs();
  ASSERT_EQ(cli({"wait", sweep_id, "--limit", "60", "--poll", "0.3"}, &out), 0)
      << out << JobLog(job);
  ASSERT_EQ(slurm_.Run({"scancel", job}, &out), 0) << out;
  ASSERT_TRUE(WaitFor([&] { return slurm_.JobState(job).empty(); }, 30000)) << JobLog(job);
  EXPECT_NE(JobLog(job).find("continuing from " + state + "/resweep.db"), std::string::npos)
      << JobLog(job);
  auto db = OpenCopy(state + "/resweep.db", scratch.File("final.db"));
  ASSERT_TRUE(db);
  ExpectResumedWithNoEpochLostOrRepeated(*db, sweep_id, saved);
}

// Kills (SIGKILL) the processes whose command line holds `needle`; returns how many.
int KillProcessesWith(const std::string& needle) {
  int killed = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos && ::kill(std::stoi(pid), SIGKILL) == 0) {
      ++killed;
    }
  }
  return killed;
}

// The coordinator of a with-coordinator job dies (SIGKILL, leaving its write-ahead
// log): the job does not sit out its time limit with workers retrying, it stops
// them and ends without requeueing, and the database it saves holds the writes that
// were only in that log.
TEST_F(SlurmTest, WithCoordinatorJobWhoseCoordinatorDiesEndsAndSavesItsCommittedWrites) {
  const std::string state = slurm_.dir() + "/shared-state";
  const std::string local = slurm_.dir() + "/node-local";
  const std::string address_file = state + "/coordinator-address";
  const std::string job =
      Submit(Script("resweep-with-coordinator.sbatch"),
             "RESWEEP_COORDINATOR_BIN=" RESWEEP_COORDINATOR_BIN
             ",RESWEEP_LISTEN=127.0.0.1:0,"
             "RESWEEP_STATE_DIR=" +
                 state + ",RESWEEP_LOCAL_DIR=" + local + ",RESWEEP_BACKUP_SECONDS=3600" +
                 ",RESWEEP_COORDINATOR_ARGS=--lease-seconds 60 --heartbeat-seconds 0.3");
  ASSERT_FALSE(job.empty());
  ASSERT_TRUE(WaitFor([&] { return !ReadFile(address_file).empty(); }, 30000))
      << JobLog(job) << slurm_.Logs();
  TempDir scratch;
  WriteFile(scratch.File("slurm.yaml"), SweepYaml());
  std::string out, err;
  ASSERT_EQ(RunCommand({RESWEEP_CLI_BIN, "--coordinator", FirstLine(ReadFile(address_file)),
                        "submit", scratch.File("slurm.yaml")},
                       &out, &err, 90000),
            0)
      << out << err << JobLog(job);
  const std::string sweep_id = FirstLine(out);
  const std::string live_db = local + "/resweep-" + job + "/resweep.db";
  ASSERT_TRUE(WaitFor(
      [&] {
        auto db = OpenSqliteStore(live_db, {.read_only = true});
        if (!db.ok()) return false;
        auto rows = (*db)->ListSweepRuns(sweep_id, RunState::kRunning);
        return rows.ok() && rows->size() == 2;
      },
      30000))
      << JobLog(job) << slurm_.Logs();
  ASSERT_GT(std::filesystem::file_size(live_db + "-wal"), 0u);  // the sweep is in the log
  ASSERT_EQ(KillProcessesWith("--db " + live_db), 1);

  ASSERT_TRUE(WaitFor([&] { return slurm_.JobState(job).empty(); }, 30000))
      << slurm_.JobState(job) << "\n"
      << JobLog(job) << slurm_.Logs();
  const std::string log = JobLog(job);
  EXPECT_NE(log.find("the coordinator exited while the workers ran"), std::string::npos) << log;
  EXPECT_NE(log.find("database and checkpoints saved"), std::string::npos) << log;
  EXPECT_EQ(log.find("requeueing"), std::string::npos) << log;
  auto db = OpenCopy(state + "/resweep.db", scratch.File("saved.db"));
  ASSERT_TRUE(db);
  auto rows = db->ListSweepRuns(sweep_id, std::nullopt);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(rows->size(), 2u);
}

// Two nodes, each slurmd in network, UTS and mount namespaces of its own (its own
// address and host name; tests/slurm_cluster.h): one workers job over both nodes
// starts one worker per node (srun --ntasks-per-node=1), each reaching the
// coordinator over the nodes' network, and the sweep's runs are trained on both.
TEST(MultiNodeSlurmTest, WorkersJobRunsOneWorkerPerNodeAndBothTrain) {
  if (const std::string why = SlurmCluster::MultiNodeSkipReason(); !why.empty()) {
    GTEST_SKIP() << "multi-node Slurm test skipped: " << why;
  }
  SlurmCluster slurm(2);
  std::string error;
  ASSERT_TRUE(slurm.Start(&error)) << error;
  // Plain gRPC on the test's own bridge, which nothing else is attached to.
  Cluster cluster({.lease_seconds = 60,
                   .heartbeat_seconds = 0.3,
                   .coordinator_args = {"--insecure"},
                   .listen_host = slurm.HostAddress()});
  cluster.StartCoordinator();
  if (HasFatalFailure()) return;

  std::string out;
  ASSERT_EQ(slurm.Run({"sbatch", "--parsable", "--nodes", "2", "--chdir", slurm.dir(), "--output",
                       slurm.dir() + "/job-%j.out", "--export",
                       "ALL,RESWEEP_WORKER=" RESWEEP_WORKER_BIN
                       ",RESWEEP_DEVICE=cpu,RESWEEP_COORDINATOR=" +
                           cluster.address(),
                       Script("resweep-workers.sbatch"), "--slots", "2", "--threads", "1",
                       "--poll-seconds", "0.1"},
                      &out),
            0)
      << out << slurm.Logs();
  const std::string job = FirstLine(out);
  auto job_log = [&] { return ReadFile(slurm.dir() + "/job-" + job + ".out"); };
  // A worker from each node registers, named after the node it runs on.
  std::set<std::string> hosts;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto db = cluster.OpenDb();
        if (!db) return false;
        auto workers = db->ListWorkers();
        hosts.clear();
        if (workers.ok()) {
          for (const auto& w : *workers) hosts.insert(w.host);
        }
        return hosts.size() == 2;
      },
      30000))
      << job_log() << cluster.Logs() << slurm.Logs();
  EXPECT_EQ(hosts, (std::set<std::string>{slurm.NodeName(0), slurm.NodeName(1)}));

  // Four runs for four slots: each worker holds at most two at once, so both train.
  const std::string sweep_id = FirstLine(
      cluster.Cli({"submit", cluster.WriteSweep("two-nodes.yaml",
                                                "name: two-nodes\n"
                                                "trainer: {kind: synthetic, epoch_seconds: 0.3}\n"
                                                "train: {epochs: 4}\n"
                                                "seeds: 4\n")}));
  ASSERT_EQ(sweep_id.size(), 12u) << sweep_id;
  int code = 0;
  cluster.Cli({"wait", sweep_id, "--limit", "60", "--poll", "0.3"}, &code);
  ASSERT_EQ(code, 0) << job_log() << cluster.Logs();
  auto db = cluster.OpenDb();
  ASSERT_TRUE(db);
  auto workers = db->ListWorkers();
  ASSERT_TRUE(workers.ok());
  std::map<std::string, std::string> host_of;
  for (const auto& w : *workers) host_of[w.worker_id] = w.host;
  auto rows = db->ListSweepRuns(sweep_id, std::nullopt);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 4u);
  std::map<std::string, int> runs_per_host;
  for (const auto& [link, run] : *rows) {
    EXPECT_EQ(run.state, RunState::kSucceeded) << run.run_id << ": " << run.error;
    auto attempts = db->ListAttempts(run.run_id);
    ASSERT_TRUE(attempts.ok() && !attempts->empty());
    ++runs_per_host[host_of[attempts->back().worker_id]];
  }
  EXPECT_EQ(runs_per_host.size(), 2u) << "runs per host: " << runs_per_host.begin()->first;
  for (const auto& [host, runs] : runs_per_host) EXPECT_GE(runs, 1) << host;
  EXPECT_NE(job_log().find("on resweep-n[1-2]"), std::string::npos) << job_log();
}

}  // namespace
}  // namespace resweep
