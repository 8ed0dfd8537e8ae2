// Results of a big sweep, and what a results query does to writers (issue 9, goals 1-2).
//
// Builds (once; reused when --db exists) a database holding one finished sweep of
// --runs runs x --epochs epochs over --cells cells, then measures, alternating over
// --rounds rounds:
//   offline   Queries::Results over a read-only connection (what `resweep results
//             --db FILE` runs), in process;
//   online    GetResults through a real coordinator (CoordinatorServer over loopback
//             gRPC, the same code as resweep-coordinator);
// and, while online results queries run back to back, the latency of ReportEpoch and
// Heartbeat from --reporters worker slots of a second sweep, against the same slots
// with no results query running.
//
//   build/bench/results_bench [--runs 100000] [--epochs 200] [--cells 1000]
//                             [--db /tmp/resweep-results-bench.db] [--rounds 7]
//                             [--reporters 16] [--seconds 5] [--build-only 1]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "bench/bench_util.h"
#include "common/channel.h"
#include "common/clock.h"
#include "coordinator/queries.h"
#include "coordinator/scheduler.h"
#include "coordinator/server.h"
#include "coordinator/sqlite_store.h"
#include "resweep/v1/resweep.grpc.pb.h"

namespace {

using resweep::bench::Quantile;

using Steady = std::chrono::steady_clock;
namespace v1 = resweep::v1;

struct Flags {
  int64_t runs = 100000;
  int epochs = 200;
  int cells = 1000;
  std::string db = "/tmp/resweep-results-bench.db";
  int rounds = 7;
  int reporters = 16;
  double seconds = 5;
  bool build_only = false;
};

[[noreturn]] void Die(const std::string& what, const resweep::Status& status) {
  std::fprintf(stderr, "results_bench: %s: %s\n", what.c_str(), status.ToString().c_str());
  std::exit(1);
}

double Ms(Steady::time_point since) {
  return std::chrono::duration<double, std::milli>(Steady::now() - since).count();
}

// "median (min-max) ms, n=N".
std::string MedianSpread(const std::vector<double>& v) {
  if (v.empty()) return "n/a";
  return resweep::bench::Spread(v) + " ms, n=" + std::to_string(v.size());
}

// A finished sweep of flags.runs runs, written through the Store (the scheduler's
// Submit, then each run leased, its epochs recorded and the run finished, in
// transactions of 500 runs).
void BuildDatabase(const Flags& flags) {
  auto store = resweep::OpenSqliteStore(flags.db);
  if (!store.ok()) Die("open " + flags.db, store.status());
  resweep::SystemClock clock;
  resweep::SchedulerOptions options;
  options.spec_limits.max_runs = flags.runs;
  options.spec_limits.max_seeds = flags.runs;
  resweep::Scheduler scheduler(store->get(), &clock, options);
  std::string lrs;
  for (int c = 0; c < flags.cells; ++c) lrs += (c ? ", " : "") + std::to_string(0.001 * (c + 1));
  const std::string spec =
      "name: big\ntrainer: {kind: synthetic}\ntrain: {epochs: " + std::to_string(flags.epochs) +
      "}\ngrid:\n  train.optimizer.lr: [" + lrs +
      "]\nseeds: " + std::to_string(flags.runs / flags.cells) + "\n";
  const auto submit_start = Steady::now();
  auto submitted = scheduler.Submit(spec, "big.yaml");
  if (!submitted.ok()) Die("submit", submitted.status());
  std::printf("built: submitted %d runs in %.1f s\n", submitted->runs_total,
              Ms(submit_start) / 1000);
  resweep::Store& s = **store;
  auto rows = s.ListSweepRuns(submitted->sweep_id, std::nullopt);
  if (!rows.ok()) Die("list runs", rows.status());
  std::mt19937_64 rng(20160627);
  std::normal_distribution<double> noise(0, 0.004);
  const auto fill_start = Steady::now();
  const size_t batch = 500;
  for (size_t begin = 0; begin < rows->size(); begin += batch) {
    resweep::Status st = s.RunInTransaction([&]() -> resweep::Status {
      for (size_t i = begin; i < std::min(rows->size(), begin + batch); ++i) {
        resweep::RunRecord run = (*rows)[i].second;
        run.state = resweep::RunState::kRunning;
        run.attempt = 1;
        run.worker_id = "bench";
        RESWEEP_RETURN_IF_ERROR(s.UpdateRun(run));
        const double cell_mean = 0.07 + 0.00002 * static_cast<double>(i % flags.cells);
        resweep::EpochRecord e;
        e.run_id = run.run_id;
        e.attempt = 1;
        for (int epoch = 1; epoch <= flags.epochs; ++epoch) {
          e.epoch = epoch;
          e.train_loss = 1.0 / epoch;
          e.test_error = cell_mean + 0.5 / epoch + noise(rng);
          e.seconds = 0.5;
          RESWEEP_RETURN_IF_ERROR(s.PutEpoch(e, "bench"));
        }
        RESWEEP_ASSIGN_OR_RETURN(auto leased, s.GetRun(run.run_id));
        if (!leased) return resweep::NotFoundError("run " + run.run_id + " vanished");
        leased->state = resweep::RunState::kSucceeded;
        leased->worker_id.clear();
        leased->epoch = flags.epochs;
        leased->param_count = 1000;
        RESWEEP_RETURN_IF_ERROR(s.UpdateRun(*leased));
      }
      return resweep::Status::Ok();
    });
    if (!st.ok()) Die("fill", st);
    const size_t done = std::min(rows->size(), begin + batch);
    if (done % 10000 == 0 || done == rows->size()) {
      std::printf("built: %zu/%zu runs with their epochs (%.0f s)\n", done, rows->size(),
                  Ms(fill_start) / 1000);
      std::fflush(stdout);
    }
  }
}

// ReportEpoch and Heartbeat calls from `reporters` slots (one worker each) of a sweep
// with a lease per slot; records each call's latency in ms.
class Reporters {
 public:
  Reporters(const std::string& address, int reporters) {
    for (int i = 0; i < reporters; ++i) {
      Slot slot;
      slot.stub = v1::Coordinator::NewStub(
          resweep::MakeCoordinatorChannel({.address = address, .security = {}}));
      grpc::ClientContext reg_ctx;
      v1::RegisterWorkerRequest reg;
      reg.set_name("reporter-" + std::to_string(i));
      reg.set_host("bench");
      reg.add_devices("cpu");
      v1::RegisterWorkerResponse registered;
      Check(slot.stub->RegisterWorker(&reg_ctx, reg, &registered), "RegisterWorker");
      slot.worker_id = registered.worker_id();
      grpc::ClientContext acq_ctx;
      v1::AcquireRunRequest acquire;
      acquire.set_worker_id(slot.worker_id);
      acquire.set_slot(0);
      v1::AcquireRunResponse leased;
      Check(slot.stub->AcquireRun(&acq_ctx, acquire, &leased), "AcquireRun");
      if (!leased.has_run()) {
        std::fprintf(stderr, "results_bench: no run to lease for reporter %d\n", i);
        std::exit(1);
      }
      slot.run_id = leased.lease().run_id();
      slot.attempt = leased.lease().attempt();
      slots_.push_back(std::move(slot));
    }
  }

  // Reports from every slot until `stop`; returns the latencies.
  void Run(const std::atomic<bool>& stop, std::vector<double>* report_ms,
           std::vector<double>* heartbeat_ms) {
    std::vector<std::thread> threads;
    std::vector<std::vector<double>> reports(slots_.size()), heartbeats(slots_.size());
    for (size_t i = 0; i < slots_.size(); ++i) {
      threads.emplace_back([&, i] {
        Slot& slot = slots_[i];
        while (!stop.load()) {
          v1::ReportEpochRequest req;
          req.set_worker_id(slot.worker_id);
          req.set_run_id(slot.run_id);
          req.set_attempt(slot.attempt);
          auto* m = req.mutable_metrics();
          m->set_epoch(++slot.epoch);
          m->set_train_loss(1.0 / slot.epoch);
          m->set_test_error(0.1);
          m->set_seconds(0.01);
          grpc::ClientContext ctx;
          v1::ReportEpochResponse resp;
          auto start = Steady::now();
          Check(slot.stub->ReportEpoch(&ctx, req, &resp), "ReportEpoch");
          reports[i].push_back(Ms(start));
          v1::HeartbeatRequest hb;
          hb.set_worker_id(slot.worker_id);
          auto* lease = hb.add_leases();
          lease->set_run_id(slot.run_id);
          lease->set_attempt(slot.attempt);
          lease->set_epoch(slot.epoch);
          grpc::ClientContext hb_ctx;
          v1::HeartbeatResponse hb_resp;
          start = Steady::now();
          Check(slot.stub->Heartbeat(&hb_ctx, hb, &hb_resp), "Heartbeat");
          heartbeats[i].push_back(Ms(start));
        }
      });
    }
    for (auto& t : threads) t.join();
    for (auto& r : reports) report_ms->insert(report_ms->end(), r.begin(), r.end());
    for (auto& h : heartbeats) heartbeat_ms->insert(heartbeat_ms->end(), h.begin(), h.end());
  }

 private:
  struct Slot {
    std::unique_ptr<v1::Coordinator::Stub> stub;
    std::string worker_id, run_id;
    int attempt = 0;
    int epoch = 0;
  };
  static void Check(const grpc::Status& status, const char* what) {
    if (!status.ok()) {
      std::fprintf(stderr, "results_bench: %s: %s\n", what, status.error_message().c_str());
      std::exit(1);
    }
  }
  std::vector<Slot> slots_;
};

void PrintLatencies(const char* label, const std::vector<double>& report_ms,
                    const std::vector<double>& heartbeat_ms) {
  std::printf(
      "%-34s ReportEpoch n=%zu p50 %.1f ms p99 %.1f ms max %.1f ms | Heartbeat n=%zu "
      "p50 %.1f ms p99 %.1f ms max %.1f ms\n",
      label, report_ms.size(), Quantile(report_ms, 0.5), Quantile(report_ms, 0.99),
      Quantile(report_ms, 1.0), heartbeat_ms.size(), Quantile(heartbeat_ms, 0.5),
      Quantile(heartbeat_ms, 0.99), Quantile(heartbeat_ms, 1.0));
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  Flags flags;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i], value = argv[i + 1];
    if (name == "--runs")
      flags.runs = std::atoll(value.c_str());
    else if (name == "--epochs")
      flags.epochs = std::atoi(value.c_str());
    else if (name == "--cells")
      flags.cells = std::atoi(value.c_str());
    else if (name == "--db")
      flags.db = value;
    else if (name == "--rounds")
      flags.rounds = std::atoi(value.c_str());
    else if (name == "--reporters")
      flags.reporters = std::atoi(value.c_str());
    else if (name == "--seconds")
      flags.seconds = std::atof(value.c_str());
    else if (name == "--build-only")
      flags.build_only = value == "1";
    else {
      std::fprintf(stderr, "results_bench: unknown flag %s\n", name.c_str());
      return 2;
    }
  }
  if (!std::filesystem::exists(flags.db)) BuildDatabase(flags);
  if (flags.build_only) return 0;
  std::printf("results_bench: %s (%.0f MB), %lld runs x %d epochs in %d cells\n", flags.db.c_str(),
              std::filesystem::file_size(flags.db) / 1e6, static_cast<long long>(flags.runs),
              flags.epochs, flags.cells);

  // The reporters lease runs of a second sweep in the same database, new on every
  // invocation (leases of an earlier invocation are still held until they expire).
  resweep::CoordinatorOptions options;
  options.listen = "127.0.0.1:0";
  options.db_path = flags.db;
  options.artifact_sweep_ms = 0;
  options.scheduler.spec_limits.max_runs = flags.runs;
  options.scheduler.spec_limits.max_seeds = flags.runs;
  options.scheduler.submits_per_minute = 0;
  options.statistics_refresh_ms = 500;
  resweep::CoordinatorServer server;
  if (auto st = server.Start(options); !st.ok()) Die("start coordinator", st);
  const std::string address = "127.0.0.1:" + std::to_string(server.port());
  auto stub = v1::Coordinator::NewStub(
      resweep::MakeCoordinatorChannel({.address = address, .security = {}}));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::SubmitSweepRequest req;
    const auto unique = std::to_string(std::chrono::system_clock::now().time_since_epoch() /
                                       std::chrono::milliseconds(1) % 1000000);
    req.set_spec_yaml("name: reporters-" + unique +
                      "\ntrainer: {kind: synthetic}\ntrain: {epochs: 10000, optimizer: {lr: 0." +
                      unique + "1}}\nseeds: " + std::to_string(flags.reporters) + "\n");
    req.set_source_name("reporters.yaml");
    v1::SubmitSweepResponse resp;
    const grpc::Status status = stub->SubmitSweep(&ctx, req, &resp);
    if (!status.ok()) {
      std::fprintf(stderr, "results_bench: submit reporters: %s\n", status.error_message().c_str());
      return 1;
    }
  }

  auto offline_store = resweep::OpenSqliteStore(flags.db, {.read_only = true});
  if (!offline_store.ok()) Die("open read-only", offline_store.status());
  resweep::SystemClock clock;
  // The coordinator's refresher computes the big sweep's statistics once and stores
  // them (what the first results query would otherwise compute): wait for it.
  {
    resweep::Queries lookup(offline_store->get(), &clock, 30000);
    auto big = lookup.ResolveSweep("big");
    if (!big.ok()) Die("find sweep 'big'", big.status());
    const auto waited = Steady::now();
    // Its first round (after one period) also marks statistics of another version stale.
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * options.statistics_refresh_ms));
    for (int tick = 0;; ++tick) {
      auto stale = (*offline_store)->SweepsWithStaleStatistics(1000);
      if (!stale.ok()) Die("stale statistics", stale.status());
      if (std::none_of(stale->begin(), stale->end(),
                       [&](const auto& s) { return s.first == big->sweep_id; })) {
        break;
      }
      if (tick % 10 == 0) {
        std::printf("waiting for the coordinator to store the statistics of 'big' (%.0f s)\n",
                    Ms(waited) / 1000);
        std::fflush(stdout);
      }
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    std::printf("statistics of 'big' stored after %.1f s (1 s: stored by an earlier run)\n",
                Ms(waited) / 1000);
  }
  std::vector<double> offline_ms, online_ms, stats_only_ms;
  size_t cells = 0;
  for (int round = 0; round < flags.rounds; ++round) {
    // A fresh Queries and no cache: what a new `resweep results --db` process does.
    resweep::Queries offline(offline_store->get(), &clock, 30000);
    auto start = Steady::now();
    auto results = offline.Results("big", 0);
    if (!results.ok()) Die("offline results", results.status());
    offline_ms.push_back(Ms(start));
    cells = results->cells.size();

    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
    v1::GetResultsRequest req;
    req.set_sweep_id("big");
    v1::GetResultsResponse resp;
    start = Steady::now();
    auto status = stub->GetResults(&ctx, req, &resp);
    if (!status.ok()) {
      std::fprintf(stderr, "results_bench: GetResults: %s\n", status.error_message().c_str());
      return 1;
    }
    online_ms.push_back(Ms(start));
  }
  std::printf("results (%zu cells, sweep's own K), offline: %s\n", cells,
              MedianSpread(offline_ms).c_str());
  std::printf("results (%zu cells, sweep's own K), through the coordinator: %s\n", cells,
              MedianSpread(online_ms).c_str());

  Reporters reporters(address, flags.reporters);
  for (const bool with_results : {false, true, false, true}) {
    std::atomic<bool> stop{false};
    std::vector<double> report_ms, heartbeat_ms, results_ms;
    std::thread load([&] {
      while (with_results && !stop.load()) {
        grpc::ClientContext ctx;
        v1::GetResultsRequest req;
        req.set_sweep_id("big");
        v1::GetResultsResponse resp;
        const auto start = Steady::now();
        if (stub->GetResults(&ctx, req, &resp).ok()) results_ms.push_back(Ms(start));
      }
    });
    std::thread timer([&] {
      std::this_thread::sleep_for(std::chrono::duration<double>(flags.seconds));
      stop = true;
    });
    reporters.Run(stop, &report_ms, &heartbeat_ms);
    timer.join();
    load.join();
    PrintLatencies(with_results ? "during back-to-back results:" : "no results query running:",
                   report_ms, heartbeat_ms);
    if (with_results) {
      std::printf("%-34s %zu results queries, %s\n", "", results_ms.size(),
                  MedianSpread(results_ms).c_str());
    }
  }
  server.Shutdown(1000);
  return 0;
}
