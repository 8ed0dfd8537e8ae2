// Durable epoch-report ingestion of the real coordinator against a bare gRPC echo
// (bench/echo_server), side by side in the same run (issue 9, goal 3).
//
// Both servers run as processes on loopback. The coordinator gets a fresh SQLite
// file, a sweep of synthetic runs with many epochs, and `--reporters` worker slots
// (registered as `--workers` workers), each of which leases a run. Then rounds
// alternate between the two servers (which goes first alternates too): in each, every
// reporter sends ReportEpoch after ReportEpoch as fast as replies come, one call in
// flight per reporter (a reply means the report is durable), while each worker sends
// a Heartbeat every `--heartbeat-ms` with its slots' leases. The client code, method,
// request and reply bytes are the same for both servers; the echo only replies.
//
// Prints calls per second per round and their median and min-max, the ratio
// coordinator / echo per round and its median, and the latency p50/p99 of
// ReportEpoch and Heartbeat on each server.
//
//   build/bench/ingest_bench [--rounds 5] [--round-seconds 5] [--reporters 64]
//                            [--echo-reply-thread]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
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
  std::string echo_bin = RESWEEP_ECHO_SERVER_BIN;
  int rounds = 5;
  double round_seconds = 5;
  double warmup_seconds = 1;
  int reporters = 64;
  int workers = 8;
  int heartbeat_ms = 250;
  int epochs = 10000;
  std::string log_level = "info";
  bool echo_reply_thread = false;
};

// One worker slot holding a lease: what its reports name.
struct Reporter {
  int worker = 0;
  int slot = 0;
  std::string worker_id;
  std::string run_id;
  int attempt = 0;
  int epoch = 0;       // last epoch the coordinator accepted from this slot
  int echo_epoch = 0;  // the same count for the echo (which keeps none)
};

// A server under measurement: one stub per worker (its own connection).
struct Target {
  const char* name;
  pid_t pid;
  std::vector<std::unique_ptr<v1::Coordinator::Stub>> stubs;
  bool is_coordinator;
};

struct RoundResult {
  double calls_per_second = 0;
  // CPU time per call (user + system, microseconds) of the server under measurement
  // and of this client process, over the round.
  double server_cpu_us_per_call = 0;
  double client_cpu_us_per_call = 0;
  std::vector<double> report_ms;
  std::vector<double> heartbeat_ms;
};

// CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command (in parentheses, which may hold spaces): state is
  // field 3, utime 14, stime 15.
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / sysconf(_SC_CLK_TCK);
}

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

[[noreturn]] void Die(const std::string& what, const grpc::Status& status) {
  std::fprintf(stderr, "ingest_bench: %s failed: %s (%d)\n", what.c_str(),
               status.error_message().c_str(), static_cast<int>(status.error_code()));
  std::exit(1);
}

v1::ReportEpochRequest MakeReport(const Reporter& r, int epoch) {
  v1::ReportEpochRequest req;
  req.set_worker_id(r.worker_id);
  req.set_run_id(r.run_id);
  req.set_attempt(r.attempt);
  v1::EpochMetrics* m = req.mutable_metrics();
  m->set_epoch(epoch);
  m->set_train_loss(0.35);
  m->set_train_error(0.11);
  m->set_test_error(0.0912);
  m->set_test_loss(0.31);
  m->set_lr(0.1);
  m->set_seconds(0.05);
  m->set_images_per_sec(0);
  return req;
}

// Leases the next run for `r` from the coordinator.
void Acquire(v1::Coordinator::Stub* stub, Reporter* r) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 30000);
  v1::AcquireRunRequest req;
  req.set_worker_id(r->worker_id);
  req.set_slot(r->slot);
  req.set_device("cpu");
  v1::AcquireRunResponse resp;
  grpc::Status st = stub->AcquireRun(&ctx, req, &resp);
  if (!st.ok()) Die("AcquireRun", st);
  if (!resp.has_run()) {
    std::fprintf(stderr, "ingest_bench: no run left to lease (sweep too small)\n");
    std::exit(1);
  }
  r->run_id = resp.lease().run_id();
  r->attempt = resp.lease().attempt();
  r->epoch = resp.lease().resume_epoch();
}

// One round against `target`: every reporter reports as fast as replies come for
// `seconds`, each worker heartbeats every heartbeat_ms.
RoundResult RunRound(const Options& o, Target* target, std::vector<Reporter>* reporters,
                     double seconds) {
  std::atomic<bool> stop{false};
  std::atomic<long> calls{0};
  std::vector<std::vector<double>> report_ms(reporters->size());
  std::vector<std::vector<double>> heartbeat_ms(o.workers);
  std::vector<std::thread> threads;
  const auto start = SteadyClock::now();
  for (size_t i = 0; i < reporters->size(); ++i) {
    threads.emplace_back([&, i] {
      Reporter& r = (*reporters)[i];
      v1::Coordinator::Stub* stub = target->stubs[r.worker].get();
      while (!stop.load(std::memory_order_relaxed)) {
        if (target->is_coordinator && r.epoch >= o.epochs) {
          grpc::ClientContext ctx;
          SetDeadline(&ctx, 30000);
          v1::CompleteRunRequest req;
          req.set_worker_id(r.worker_id);
          req.set_run_id(r.run_id);
          req.set_attempt(r.attempt);
          v1::CompleteRunResponse resp;
          grpc::Status st = stub->CompleteRun(&ctx, req, &resp);
          if (!st.ok()) Die("CompleteRun", st);
          Acquire(stub, &r);
          continue;
        }
        const int epoch = target->is_coordinator ? r.epoch + 1 : r.echo_epoch + 1;
        const v1::ReportEpochRequest req = MakeReport(r, epoch);
        v1::ReportEpochResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx, 60000);
        const auto call_start = SteadyClock::now();
        grpc::Status st = stub->ReportEpoch(&ctx, req, &resp);
        report_ms[i].push_back(SecondsSince(call_start) * 1000);
        if (!st.ok()) Die(std::string("ReportEpoch to ") + target->name, st);
        (target->is_coordinator ? r.epoch : r.echo_epoch) = epoch;
        calls.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  // Each worker's heartbeat names the leases its slots hold as the round starts (a
  // slot that finishes its run during the round leases another: rare, and harmless
  // here, as the coordinator answers STOP for a lease that is no longer current).
  std::vector<v1::HeartbeatRequest> heartbeats(o.workers);
  for (const Reporter& r : *reporters) {
    heartbeats[r.worker].set_worker_id(r.worker_id);
    v1::LeaseProgress* lease = heartbeats[r.worker].add_leases();
    lease->set_run_id(r.run_id);
    lease->set_attempt(r.attempt);
    lease->set_epoch(target->is_coordinator ? r.epoch : r.echo_epoch);
  }
  for (int w = 0; w < o.workers; ++w) {
    threads.emplace_back([&, w] {
      auto next = SteadyClock::now();
      while (!stop.load(std::memory_order_relaxed)) {
        next += std::chrono::milliseconds(o.heartbeat_ms);
        std::this_thread::sleep_until(next);
        if (stop.load()) break;
        const v1::HeartbeatRequest& req = heartbeats[w];
        v1::HeartbeatResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx, 60000);
        const auto call_start = SteadyClock::now();
        grpc::Status st = target->stubs[w]->Heartbeat(&ctx, req, &resp);
        heartbeat_ms[w].push_back(SecondsSince(call_start) * 1000);
        if (!st.ok()) Die(std::string("Heartbeat to ") + target->name, st);
      }
    });
  }
  const double server_cpu_start = ProcessCpuSeconds(target->pid);
  const double client_cpu_start = SelfCpuSeconds();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  RoundResult result;
  result.calls_per_second = calls.load() / SecondsSince(start);
  const double n = std::max<long>(calls.load(), 1);
  result.server_cpu_us_per_call = (ProcessCpuSeconds(target->pid) - server_cpu_start) * 1e6 / n;
  result.client_cpu_us_per_call = (SelfCpuSeconds() - client_cpu_start) * 1e6 / n;
  for (auto& v : report_ms) result.report_ms.insert(result.report_ms.end(), v.begin(), v.end());
  for (auto& v : heartbeat_ms) {
    result.heartbeat_ms.insert(result.heartbeat_ms.end(), v.begin(), v.end());
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ingest_bench: the coordinator's ReportEpoch ingestion vs a bare gRPC echo"};
  Options o;
  app.add_option("--rounds", o.rounds, "measured rounds per server")->capture_default_str();
  app.add_option("--round-seconds", o.round_seconds, "length of a round")->capture_default_str();
  app.add_option("--warmup-seconds", o.warmup_seconds, "unmeasured first round per server")
      ->capture_default_str();
  app.add_option("--reporters", o.reporters, "worker slots reporting at once")
      ->capture_default_str();
  app.add_option("--workers", o.workers, "workers the slots belong to (one connection each)")
      ->capture_default_str();
  app.add_option("--heartbeat-ms", o.heartbeat_ms, "each worker's heartbeat interval")
      ->capture_default_str();
  app.add_option("--epochs", o.epochs, "epochs per run (a slot leases a new run after them)")
      ->capture_default_str();
  app.add_option("--coordinator-bin", o.coordinator_bin)->capture_default_str();
  app.add_option("--echo-bin", o.echo_bin)->capture_default_str();
  app.add_flag("--echo-reply-thread", o.echo_reply_thread,
               "the echo finishes calls on a thread of its own (echo_server --reply-thread)");
  app.add_option("--log-level", o.log_level, "the coordinator's")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.workers < 1 || o.reporters < o.workers) {
    std::fprintf(stderr, "ingest_bench: need 1 <= --workers <= --reporters\n");
    return 2;
  }

  std::printf(
      "ingest_bench: %d reporters on %d workers, %d rounds of %.1f s per server, "
      "%u cores, load %s%s\n",
      o.reporters, o.workers, o.rounds, o.round_seconds, std::thread::hardware_concurrency(),
      LoadAverage().c_str(),
      o.echo_reply_thread ? " (the echo replies from a thread of its own)" : "");

  // The echo server.
  ScratchDir echo_dir;
  std::vector<std::string> echo_args = {o.echo_bin, "--port-file", echo_dir.File("port")};
  if (o.echo_reply_thread) echo_args.push_back("--reply-thread");
  resweep::testing::Process echo(echo_args, echo_dir.File("echo.log"));
  const int echo_port = WaitForPortFile(echo_dir.File("port"), &echo, 30);
  if (echo_port == 0) {
    std::fprintf(stderr, "echo_server did not start:\n%s\n",
                 ReadWholeFile(echo_dir.File("echo.log")).c_str());
    return 1;
  }
  // The coordinator: a lease far longer than the benchmark, so that the pauses of
  // its slots during echo rounds lose nothing.
  CoordinatorUnderTest coordinator(o.coordinator_bin,
                                   {"--lease-seconds", "86400", "--log-level", o.log_level});

  Target echo_target{"echo", echo.pid(), {}, false};
  Target coordinator_target{"coordinator", coordinator.pid(), {}, true};
  for (int w = 0; w < o.workers; ++w) {
    echo_target.stubs.push_back(
        v1::Coordinator::NewStub(MakeChannel("127.0.0.1:" + std::to_string(echo_port), w)));
    coordinator_target.stubs.push_back(
        v1::Coordinator::NewStub(MakeChannel(coordinator.address(), w)));
  }
  v1::Coordinator::Stub* admin = coordinator_target.stubs[0].get();

  // A sweep with runs to spare (a slot that reports every epoch of its run leases another).
  const int64_t runs = static_cast<int64_t>(o.reporters) * 5;
  std::string sweep_id;
  {
    v1::SubmitSweepRequest req;
    req.set_spec_yaml(SyntheticSweepYaml("ingest-bench", runs, o.epochs, 0.05));
    req.set_source_name("ingest-bench.yaml");
    v1::SubmitSweepResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60000);
    grpc::Status st = admin->SubmitSweep(&ctx, req, &resp);
    if (!st.ok()) Die("SubmitSweep", st);
    sweep_id = resp.sweep_id();
  }
  // Workers, and a lease per slot.
  std::vector<Reporter> reporters(o.reporters);
  std::vector<std::string> worker_ids;
  const int slots_per_worker = (o.reporters + o.workers - 1) / o.workers;
  for (int w = 0; w < o.workers; ++w) {
    v1::RegisterWorkerRequest req;
    req.set_name("ingest-bench-" + std::to_string(w));
    req.set_host("localhost");
    for (int s = 0; s < slots_per_worker; ++s) req.add_devices("cpu");
    v1::RegisterWorkerResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 30000);
    grpc::Status st = coordinator_target.stubs[w]->RegisterWorker(&ctx, req, &resp);
    if (!st.ok()) Die("RegisterWorker", st);
    worker_ids.push_back(resp.worker_id());
  }
  for (int i = 0; i < o.reporters; ++i) {
    Reporter& r = reporters[i];
    r.worker = i % o.workers;
    r.slot = i / o.workers;
    r.worker_id = worker_ids[r.worker];
    Acquire(coordinator_target.stubs[r.worker].get(), &r);
  }

  // Warm-up (connections, caches), not measured.
  if (o.warmup_seconds > 0) {
    RunRound(o, &echo_target, &reporters, o.warmup_seconds);
    RunRound(o, &coordinator_target, &reporters, o.warmup_seconds);
  }
  long coordinator_reports_before = 0;
  for (const Reporter& r : reporters) coordinator_reports_before += r.epoch;

  std::vector<double> echo_rates, coordinator_rates, ratios;
  std::vector<double> echo_cpu, coordinator_cpu, echo_client_cpu, coordinator_client_cpu;
  std::vector<double> echo_report_ms, coordinator_report_ms, echo_heartbeat_ms,
      coordinator_heartbeat_ms;
  auto append = [](std::vector<double>* into, const std::vector<double>& v) {
    into->insert(into->end(), v.begin(), v.end());
  };
  for (int round = 0; round < o.rounds; ++round) {
    RoundResult echo_result, coordinator_result;
    if (round % 2 == 0) {
      echo_result = RunRound(o, &echo_target, &reporters, o.round_seconds);
      coordinator_result = RunRound(o, &coordinator_target, &reporters, o.round_seconds);
    } else {
      coordinator_result = RunRound(o, &coordinator_target, &reporters, o.round_seconds);
      echo_result = RunRound(o, &echo_target, &reporters, o.round_seconds);
    }
    const double ratio = coordinator_result.calls_per_second / echo_result.calls_per_second;
    std::printf("round %d (%s first): echo %.0f calls/s, coordinator %.0f reports/s, ratio %.3f\n",
                round + 1, round % 2 == 0 ? "echo" : "coordinator", echo_result.calls_per_second,
                coordinator_result.calls_per_second, ratio);
    std::fflush(stdout);
    echo_rates.push_back(echo_result.calls_per_second);
    coordinator_rates.push_back(coordinator_result.calls_per_second);
    ratios.push_back(ratio);
    echo_cpu.push_back(echo_result.server_cpu_us_per_call);
    coordinator_cpu.push_back(coordinator_result.server_cpu_us_per_call);
    echo_client_cpu.push_back(echo_result.client_cpu_us_per_call);
    coordinator_client_cpu.push_back(coordinator_result.client_cpu_us_per_call);
    append(&echo_report_ms, echo_result.report_ms);
    append(&coordinator_report_ms, coordinator_result.report_ms);
    append(&echo_heartbeat_ms, echo_result.heartbeat_ms);
    append(&coordinator_heartbeat_ms, coordinator_result.heartbeat_ms);
  }

  // The coordinator really stored what it acknowledged.
  long acknowledged = -coordinator_reports_before;
  for (const Reporter& r : reporters) acknowledged += r.epoch;
  int64_t epochs_done = -1;
  {
    v1::GetSweepRequest req;
    req.set_sweep_id(sweep_id);
    v1::GetSweepResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60000);
    grpc::Status st = admin->GetSweep(&ctx, req, &resp);
    if (!st.ok()) Die("GetSweep", st);
    epochs_done = resp.sweep().epochs_done();
  }

  std::printf("\nover %d rounds of %.1f s, %d reporters (median (min-max)):\n", o.rounds,
              o.round_seconds, o.reporters);
  std::printf("  echo               %s calls/s\n", Spread(echo_rates, 0).c_str());
  std::printf("  coordinator        %s reports/s\n", Spread(coordinator_rates, 0).c_str());
  std::printf("  ratio coord/echo   %s\n", Spread(ratios, 3).c_str());
  std::printf("CPU us per call (user + system)\n");
  std::printf("  echo server        %s\n", Spread(echo_cpu, 1).c_str());
  std::printf("  coordinator        %s\n", Spread(coordinator_cpu, 1).c_str());
  std::printf("  client, echo       %s\n", Spread(echo_client_cpu, 1).c_str());
  std::printf("  client, coord      %s\n", Spread(coordinator_client_cpu, 1).c_str());
  std::printf("latency ms            p50      p99   (calls)\n");
  auto latency = [](const char* what, const std::vector<double>& v) {
    std::printf("  %-18s %7.3f %8.3f   (%zu)\n", what, Quantile(v, 0.5), Quantile(v, 0.99),
                v.size());
  };
  latency("echo ReportEpoch", echo_report_ms);
  latency("coord ReportEpoch", coordinator_report_ms);
  latency("echo Heartbeat", echo_heartbeat_ms);
  latency("coord Heartbeat", coordinator_heartbeat_ms);
  std::printf(
      "coordinator: %ld reports acknowledged in the measured rounds; the sweep holds "
      "%lld epochs in all (warm-up included)\n",
      acknowledged, static_cast<long long>(epochs_done));
  std::printf("load after: %s\n", LoadAverage().c_str());
  echo.Kill(SIGTERM);
  echo.Wait(5000);
  return 0;
}
