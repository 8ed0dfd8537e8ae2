// Scheduling overhead end to end (issue 9, goal 5): `--runs` runs of `--epochs` epochs
// of `--epoch-seconds` each (synthetic trainer) on `--workers` real resweep-worker
// processes of `--slots-per-worker` CPU slots, against the real resweep-coordinator
// binary with a fresh SQLite file; wall time from the submission (over gRPC, as
// `resweep submit` sends it) until every run has succeeded, against the ideal
// runs x epochs x epoch-seconds / slots. Each round starts a fresh coordinator and
// fresh workers (their start-up is not timed: the clock starts once all of them
// have registered). Completion is seen by polling GetSweep every `--poll-ms`.
//
// The synthetic trainer sleeps in ticks of at most 20 ms and checks the time after
// each, so one of its epochs lasts epoch-seconds plus up to a tick: that part of the
// overhead is the trainer's, not the scheduler's.
//
//   build/bench/overhead_bench [--runs 2000] [--epoch-seconds 0.5] [--workers 2]
//       [--slots-per-worker 8] [--rounds 1]
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/bench_util.h"

namespace {

namespace v1 = resweep::v1;
using namespace resweep::bench;

struct Options {
  std::string coordinator_bin = RESWEEP_COORDINATOR_BIN;
  std::string worker_bin = RESWEEP_WORKER_BIN;
  int runs = 2000;
  int epochs = 1;
  double epoch_seconds = 0.5;
  int workers = 2;
  int slots_per_worker = 8;
  double worker_poll_seconds = 1.0;
  int poll_ms = 100;
  int rounds = 1;
  std::string log_level = "info";
};

// Seconds from submission to every run succeeded, or < 0 on failure.
double RunRound(const Options& o, int round) {
  CoordinatorUnderTest coordinator(o.coordinator_bin,
                                   {"--log-level", o.log_level, "--max-runs-per-sweep",
                                    std::to_string(std::max(o.runs, 10000))});
  std::vector<std::unique_ptr<resweep::testing::Process>> workers;
  for (int w = 0; w < o.workers; ++w) {
    workers.push_back(std::make_unique<resweep::testing::Process>(
        std::vector<std::string>{o.worker_bin, "--coordinator", coordinator.address(), "--name",
                                 "overhead-" + std::to_string(w), "--device", "cpu", "--slots",
                                 std::to_string(o.slots_per_worker), "--threads", "1",
                                 "--poll-seconds", std::to_string(o.worker_poll_seconds),
                                 "--log-level", o.log_level},
        coordinator.dir().File("worker-" + std::to_string(w) + ".log")));
  }
  auto stub = v1::Coordinator::NewStub(MakeChannel(coordinator.address()));
  // Every worker registered.
  const auto wait_start = SteadyClock::now();
  while (true) {
    v1::ListWorkersRequest req;
    v1::ListWorkersResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10000);
    grpc::Status st = stub->ListWorkers(&ctx, req, &resp);
    if (st.ok() && resp.workers_size() == o.workers) break;
    if (SecondsSince(wait_start) > 120) {
      std::fprintf(stderr, "overhead_bench: the workers did not register within 120 s\n%s\n",
                   ReadWholeFile(coordinator.dir().File("worker-0.log")).c_str());
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // Let every slot make its first (empty) acquire, as a fleet waiting for work would.
  std::this_thread::sleep_for(std::chrono::duration<double>(o.worker_poll_seconds + 0.5));

  v1::SubmitSweepRequest submit;
  submit.set_spec_yaml(
      SyntheticSweepYaml("overhead-" + std::to_string(round), o.runs, o.epochs, o.epoch_seconds));
  submit.set_source_name("overhead.yaml");
  const auto start = SteadyClock::now();
  v1::SubmitSweepResponse submitted;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120000);
    grpc::Status st = stub->SubmitSweep(&ctx, submit, &submitted);
    if (!st.ok()) {
      std::fprintf(stderr, "overhead_bench: SubmitSweep: %s\n", st.error_message().c_str());
      return -1;
    }
  }
  const double submit_seconds = SecondsSince(start);
  const double ideal =
      static_cast<double>(o.runs) * o.epochs * o.epoch_seconds / (o.workers * o.slots_per_worker);
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
    v1::GetSweepRequest req;
    req.set_sweep_id(submitted.sweep_id());
    v1::GetSweepResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 30000);
    grpc::Status st = stub->GetSweep(&ctx, req, &resp);
    if (!st.ok()) {
      std::fprintf(stderr, "overhead_bench: GetSweep: %s\n", st.error_message().c_str());
      return -1;
    }
    const v1::RunCounts& c = resp.sweep().counts();
    if (c.failed() + c.cancelled() > 0) {
      std::fprintf(stderr, "overhead_bench: %d runs failed, %d cancelled\n", c.failed(),
                   c.cancelled());
      return -1;
    }
    if (c.succeeded() == o.runs) break;
    if (SecondsSince(start) > 10 * ideal + 120) {
      std::fprintf(stderr, "overhead_bench: only %d of %d runs succeeded after %.0f s\n",
                   c.succeeded(), o.runs, SecondsSince(start));
      return -1;
    }
  }
  const double wall = SecondsSince(start);
  std::printf("round %d: %.2f s (submission %.3f s), ideal %.2f s, overhead %.2f%%\n", round, wall,
              submit_seconds, ideal, 100 * (wall / ideal - 1));
  std::fflush(stdout);
  for (auto& w : workers) w->Kill(SIGTERM);
  for (auto& w : workers) w->Wait(10000);
  return wall;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"overhead_bench: scheduling overhead of short synthetic runs on real workers"};
  Options o;
  app.add_option("--runs", o.runs, "runs in the sweep")->capture_default_str();
  app.add_option("--epochs", o.epochs, "epochs per run")->capture_default_str();
  app.add_option("--epoch-seconds", o.epoch_seconds, "synthetic epoch length")
      ->capture_default_str();
  app.add_option("--workers", o.workers, "resweep-worker processes")->capture_default_str();
  app.add_option("--slots-per-worker", o.slots_per_worker, "--slots of each worker")
      ->capture_default_str();
  app.add_option("--worker-poll-seconds", o.worker_poll_seconds, "the workers' --poll-seconds")
      ->capture_default_str();
  app.add_option("--poll-ms", o.poll_ms, "how often this benchmark asks whether all are done")
      ->capture_default_str();
  app.add_option("--rounds", o.rounds, "rounds, each with a fresh coordinator and workers")
      ->capture_default_str();
  app.add_option("--coordinator-bin", o.coordinator_bin)->capture_default_str();
  app.add_option("--worker-bin", o.worker_bin)->capture_default_str();
  app.add_option("--log-level", o.log_level, "the coordinator's and the workers'")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (SyntheticSweepYaml("x", o.runs, o.epochs, o.epoch_seconds).empty()) {
    std::fprintf(stderr, "overhead_bench: no sweep shape for %d runs\n", o.runs);
    return 2;
  }
  const int slots = o.workers * o.slots_per_worker;
  const double ideal = static_cast<double>(o.runs) * o.epochs * o.epoch_seconds / slots;
  std::printf(
      "overhead_bench: %d runs x %d epoch(s) x %.3f s on %d slots (%d workers), ideal "
      "%.2f s, %u cores, load %s\n",
      o.runs, o.epochs, o.epoch_seconds, slots, o.workers, ideal,
      std::thread::hardware_concurrency(), LoadAverage().c_str());
  std::fflush(stdout);
  std::vector<double> walls, overheads;
  for (int round = 1; round <= o.rounds; ++round) {
    const double wall = RunRound(o, round);
    if (wall < 0) return 1;
    walls.push_back(wall);
    overheads.push_back(100 * (wall / ideal - 1));
  }
  std::printf("\nwall from submission to all succeeded, s: %s (median (min-max) of %d)\n",
              Spread(walls, 2).c_str(), o.rounds);
  std::printf("overhead over the ideal %.2f s, %%:     %s\n", ideal, Spread(overheads, 2).c_str());
  std::printf("load after: %s\n", LoadAverage().c_str());
  return 0;
}
