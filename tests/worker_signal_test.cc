// SIGTERM (and SIGINT) stop a real worker cleanly whatever its LibTorch thread count:
// it logs "finishing up", gives back the lease it holds and exits 0, whether it is
// idle, training a run, or retrying a coordinator it cannot reach. The LibTorch
// intra-op pool's threads (more than one --threads) must not take the signal.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <thread>

#include "tests/cluster.h"
#include "tests/data_files.h"
#include "tests/refusing_port.h"

namespace resweep {
namespace {

using namespace resweep::testing;

// 1, 2, 4, and more threads than this machine has cores.
std::vector<int> ThreadCounts() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return {1, 2, 4, std::max(5, 2 * cores + 1)};
}

bool LogHas(const std::string& path, const std::string& text) {
  return ReadFile(path).find(text) != std::string::npos;
}

// Sends `signal` to each worker, then expects each to exit 0 within 30 s with the
// "finishing up" line in its log.
void StopAndExpectCleanExits(const std::vector<std::pair<Process*, int>>& workers, int signal,
                             const std::string& logs_on_failure) {
  for (const auto& [worker, threads] : workers) worker->Kill(signal);
  for (const auto& [worker, threads] : workers) {
    EXPECT_EQ(worker->Wait(30000), 0) << "--threads " << threads << " (signal " << signal << "):\n"
                                      << ReadFile(worker->log()) << logs_on_failure;
    EXPECT_TRUE(LogHas(worker->log(), "finishing up")) << "--threads " << threads << ":\n"
                                                       << ReadFile(worker->log());
  }
}

TEST(WorkerSignal, SigtermOrSigintWhileIdleExitsZeroWithAnyThreadCount) {
  Cluster cluster({.lease_seconds = 30, .heartbeat_seconds = 0.3});
  cluster.StartCoordinator();
  std::vector<std::pair<Process*, int>> workers;
  for (int threads : ThreadCounts()) {
    const size_t w = cluster.StartWorker("idle-" + std::to_string(threads), threads);
    workers.emplace_back(&cluster.worker(w), threads);
  }
  const size_t interrupted = cluster.StartWorker("interrupted", 4);
  for (const auto& [worker, threads] : workers) {
    ASSERT_TRUE(
        WaitFor([&, worker = worker] { return LogHas(worker->log(), "registered as"); }, 20000))
        << cluster.Logs();
  }
  ASSERT_TRUE(
      WaitFor([&] { return LogHas(cluster.worker(interrupted).log(), "registered as"); }, 20000))
      << cluster.Logs();
  StopAndExpectCleanExits(workers, SIGTERM, cluster.Logs());
  StopAndExpectCleanExits({{&cluster.worker(interrupted), 4}}, SIGINT, cluster.Logs());
}

TEST(WorkerSignal, SigtermWhileTheCoordinatorIsUnreachableExitsZeroWithAnyThreadCount) {
  TempDir dir;
  RefusingPort refusing;
  std::vector<std::unique_ptr<Process>> processes;
  std::vector<std::pair<Process*, int>> workers;
  int i = 0;
  for (int threads : ThreadCounts()) {
    // Port 1 (nothing listens there) and a bound port that does not listen.
    const std::string address = i++ % 2 == 0 ? "127.0.0.1:1" : refusing.address();
    processes.push_back(std::make_unique<Process>(
        std::vector<std::string>{RESWEEP_WORKER_BIN, "--coordinator", address, "--name",
                                 "lost-" + std::to_string(threads), "--device", "cpu", "--threads",
                                 std::to_string(threads)},
        dir.File("worker-" + std::to_string(threads) + ".log")));
    workers.emplace_back(processes.back().get(), threads);
  }
  // Each is in its retry loop once it has logged a failed RegisterWorker.
  for (const auto& [worker, threads] : workers) {
    ASSERT_TRUE(
        WaitFor([&, worker = worker] { return LogHas(worker->log(), "RegisterWorker"); }, 20000))
        << ReadFile(worker->log());
  }
  StopAndExpectCleanExits(workers, SIGTERM, "");
}

// Waits until `count` runs of the sweep are running with an epoch recorded, each on
// a different worker; returns false after 120 s.
bool WaitForRunsOnDistinctWorkers(Cluster& cluster, const std::string& sweep_id, size_t count) {
  return WaitFor(
      [&] {
        auto rows = cluster.OpenDb()->ListSweepRuns(sweep_id, RunState::kRunning);
        if (!rows.ok()) return false;
        std::set<std::string> workers;
        for (const auto& [link, run] : *rows) {
          if (run.epoch >= 1) workers.insert(run.worker_id);
        }
        return workers.size() == count;
      },
      120000);
}

// Synthetic runs (the pool LibTorch made at start-up sits idle) and a LibTorch run
// (the pool is busy training).
TEST(WorkerSignal, SigtermDuringARunGivesTheLeaseBackWithAnyThreadCount) {
  Cluster cluster({.lease_seconds = 60, .heartbeat_seconds = 0.3});
  cluster.StartCoordinator();
  const std::string data_root = cluster.dir() + "/data";
  std::filesystem::create_directories(data_root + "/cifar");
  WriteCifarDir(data_root + "/cifar", /*train_per_file=*/64, /*test=*/32, /*learnable=*/true);
  std::vector<std::pair<Process*, int>> workers;

  // One LibTorch run, held by a worker with a 4-thread pool.
  const std::string torch_sweep = SubmitSweep(cluster, "torch.yaml", R"(name: torch
dataset: {kind: cifar10, path: cifar}
model: {depth_n: 1, base_width: 4}
train: {epochs: 1000, batch_size: 32}
)");
  workers.emplace_back(&cluster.worker(cluster.StartWorker("torch", 4, {"--data-root", data_root})),
                       4);
  ASSERT_TRUE(WaitForRunsOnDistinctWorkers(cluster, torch_sweep, 1)) << cluster.Logs();

  // Synthetic runs, one per worker (a slot each), one worker per thread count.
  const std::vector<int> counts = ThreadCounts();
  const std::string synthetic_sweep = SubmitSweep(cluster, "synthetic.yaml", R"(name: synthetic
trainer: {kind: synthetic, epoch_seconds: 0.2}
train: {epochs: 1000}
seeds: )" + std::to_string(counts.size()) + "\n");
  for (int threads : counts) {
    const size_t w = cluster.StartWorker("busy-" + std::to_string(threads), threads);
    workers.emplace_back(&cluster.worker(w), threads);
  }
  ASSERT_TRUE(WaitForRunsOnDistinctWorkers(cluster, synthetic_sweep, counts.size()))
      << cluster.Logs();

  StopAndExpectCleanExits(workers, SIGTERM, cluster.Logs());

  // Each lease was given back at once (long before the 60 s lease would expire):
  // queued again, its attempt closed as released, no attempt used up.
  auto db = cluster.OpenDb();
  for (const auto& [sweep_id, runs] : std::vector<std::pair<std::string, size_t>>{
           {torch_sweep, 1}, {synthetic_sweep, counts.size()}}) {
    auto rows = db->ListSweepRuns(sweep_id, std::nullopt);
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), runs);
    for (const auto& [link, run] : *rows) {
      EXPECT_EQ(run.state, RunState::kQueued) << run.run_id << "\n" << cluster.Logs();
      EXPECT_EQ(run.failures, 0) << run.run_id;
      auto attempts = db->ListAttempts(run.run_id);
      ASSERT_TRUE(attempts.ok());
      ASSERT_EQ(attempts->size(), 1u) << run.run_id;
      EXPECT_EQ((*attempts)[0].state, "released") << run.run_id << "\n" << cluster.Logs();
    }
  }
}

}  // namespace
}  // namespace resweep
