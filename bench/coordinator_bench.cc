// Scheduler throughput and latency over a real SQLite file (WAL, synchronous=FULL),
// in process: submit a sweep, then lease / report every epoch / complete each run.
// Prints a table of calls per second and latency percentiles per call kind.
//
//   build/bench/coordinator_bench [runs=500] [epochs=20] [db-dir=/tmp]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "coordinator/scheduler.h"
#include "coordinator/sqlite_store.h"

using Clock = std::chrono::steady_clock;

namespace {
resweep::Status StatusOf(const resweep::Status& s) { return s; }
template <typename T>
resweep::Status StatusOf(const resweep::StatusOr<T>& s) {
  return s.status();
}
}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  const int runs = argc > 1 ? std::atoi(argv[1]) : 500;
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 20;
  const std::string dir = argc > 3 ? argv[3] : "/tmp";
  const std::string db = dir + "/resweep-bench-" + std::to_string(getpid()) + ".db";
  auto store = resweep::OpenSqliteStore(db);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  resweep::SystemClock clock;
  resweep::SchedulerOptions options;
  options.spec_limits.max_runs = 1000000;
  resweep::Scheduler scheduler(store->get(), &clock, options);

  const int seeds = std::max(1, runs / 10);
  std::string spec =
      "name: bench\ntrainer: {kind: synthetic}\ntrain: {epochs: " + std::to_string(epochs) +
      "}\ngrid:\n  model.depth_n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nseeds: " +
      std::to_string(seeds) + "\n";
  std::map<std::string, std::vector<double>> latency_us;
  // Times one call; a failed call ends the benchmark (a figure over failures means nothing).
  auto timed = [&](const char* what, auto&& fn) {
    const auto start = Clock::now();
    auto result = fn();
    latency_us[what].push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    const resweep::Status status = StatusOf(result);
    if (!status.ok()) {
      std::fprintf(stderr, "coordinator_bench: %s failed: %s\n", what, status.ToString().c_str());
      std::exit(1);
    }
    return result;
  };
  auto submitted = timed("SubmitSweep", [&] { return scheduler.Submit(spec, "bench.yaml"); });
  if (!submitted.ok()) {
    std::fprintf(stderr, "%s\n", submitted.status().ToString().c_str());
    return 1;
  }
  auto worker = scheduler.RegisterWorker("bench", "localhost", {"cpu"});
  const auto start = Clock::now();
  int done = 0;
  while (true) {
    auto lease = timed("AcquireRun", [&] { return scheduler.Acquire(worker->worker_id, 0); });
    if (!lease.ok() || !lease->has_value()) break;
    const resweep::Lease& l = **lease;
    for (int e = 1; e <= epochs; ++e) {
      resweep::EpochRecord rec;
      rec.run_id = l.run_id;
      rec.attempt = l.attempt;
      rec.epoch = e;
      rec.test_error = 0.1;
      (void)timed("ReportEpoch", [&] { return scheduler.ReportEpoch(worker->worker_id, rec); });
      if (e % 5 == 0) {
        (void)timed("Heartbeat", [&] {
          return scheduler.Heartbeat(worker->worker_id, {{l.run_id, l.attempt, e}});
        });
      }
    }
    (void)timed("CompleteRun",
                [&] { return scheduler.Complete(worker->worker_id, l.run_id, l.attempt, 1); });
    ++done;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  (void)timed("GetResults", [&] { return scheduler.Results(submitted->sweep_id, 0); });

  std::printf("coordinator_bench: %d runs x %d epochs, SQLite WAL synchronous=FULL at %s\n", done,
              epochs, db.c_str());
  std::printf("%-12s %8s %10s %10s %10s %10s\n", "call", "count", "p50 us", "p99 us", "max us",
              "calls/s");
  for (auto& [what, v] : latency_us) {
    std::sort(v.begin(), v.end());
    double total = 0;
    for (double x : v) total += x;
    std::printf("%-12s %8zu %10.0f %10.0f %10.0f %10.0f\n", what.c_str(), v.size(), v[v.size() / 2],
                v[std::min(v.size() - 1, v.size() * 99 / 100)], v.back(), v.size() / (total / 1e6));
  }
  std::printf("end to end: %.0f epoch reports/s over %.2f s\n", done * epochs / seconds, seconds);
  store->reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db + suffix);
  return 0;
}
