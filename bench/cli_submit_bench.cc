// Submitting a big sweep end to end (issue 9, goal 7): the real `resweep submit` CLI
// against the real resweep-coordinator binary started with --max-runs-per-sweep
// 1000000 and a fresh SQLite file (a fresh coordinator per round). The time is the
// CLI process's wall time, from its start to its exit once the coordinator has
// replied (the sweep and all its runs committed). If the CLI refuses the sweep, the
// benchmark says why and submits it over gRPC instead (SubmitSweep, as the CLI would),
// timing that call. Each round also prints the CPU seconds the coordinator spent on the
// submission (user + system), a figure that moves less with other load on the machine.
//
//   build/bench/cli_submit_bench [--runs 100000] [--rounds 3]
#include <cstdio>
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
  std::string cli_bin = RESWEEP_CLI_BIN;
  int64_t runs = 100000;
  int rounds = 3;
  int epochs = 200;
  std::string log_level = "info";
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cli_submit_bench: `resweep submit` of a big sweep, end to end"};
  Options o;
  app.add_option("--runs", o.runs, "runs in the sweep")->capture_default_str();
  app.add_option("--rounds", o.rounds, "rounds, each with a fresh coordinator")
      ->capture_default_str();
  app.add_option("--epochs", o.epochs, "epochs per run (stored, never trained)")
      ->capture_default_str();
  app.add_option("--coordinator-bin", o.coordinator_bin)->capture_default_str();
  app.add_option("--cli-bin", o.cli_bin)->capture_default_str();
  app.add_option("--log-level", o.log_level, "the coordinator's")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const std::string yaml = SyntheticSweepYaml("submit-bench", o.runs, o.epochs, 0.05);
  if (yaml.empty()) {
    std::fprintf(stderr, "cli_submit_bench: no sweep shape for %lld runs\n",
                 static_cast<long long>(o.runs));
    return 2;
  }
  std::printf("cli_submit_bench: %lld runs (sweep file %zu bytes), %d rounds, %u cores, load %s\n",
              static_cast<long long>(o.runs), yaml.size(), o.rounds,
              std::thread::hardware_concurrency(), LoadAverage().c_str());
  std::fflush(stdout);
  std::vector<double> cli_seconds, coordinator_cpu_seconds, grpc_seconds;
  for (int round = 1; round <= o.rounds; ++round) {
    CoordinatorUnderTest coordinator(
        o.coordinator_bin, {"--max-runs-per-sweep", "1000000", "--log-level", o.log_level});
    const std::string file = coordinator.dir().File("submit-bench.yaml");
    WriteWholeFile(file, yaml);
    std::string out, err;
    const double cpu_before = ProcessCpuSeconds(coordinator.pid());
    const auto start = SteadyClock::now();
    const int code = resweep::testing::RunCommand(
        {o.cli_bin, "--coordinator", coordinator.address(), "--timeout", "600", "submit", file},
        &out, &err, 700000);
    const double seconds = SecondsSince(start);
    const double cpu_seconds = ProcessCpuSeconds(coordinator.pid()) - cpu_before;
    auto stub = v1::Coordinator::NewStub(MakeChannel(coordinator.address()));
    if (code == 0) {
      cli_seconds.push_back(seconds);
      coordinator_cpu_seconds.push_back(cpu_seconds);
      std::printf("round %d: resweep submit took %.3f s (coordinator CPU %.3f s)\n", round, seconds,
                  cpu_seconds);
    } else {
      std::printf("round %d: resweep submit exited %d after %.3f s: %s", round, code, seconds,
                  err.c_str());
      v1::SubmitSweepRequest req;
      req.set_spec_yaml(yaml);
      req.set_source_name("submit-bench.yaml");
      v1::SubmitSweepResponse resp;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, 600000);
      const auto grpc_start = SteadyClock::now();
      grpc::Status st = stub->SubmitSweep(&ctx, req, &resp);
      const double grpc_elapsed = SecondsSince(grpc_start);
      if (!st.ok()) {
        std::fprintf(stderr, "cli_submit_bench: SubmitSweep over gRPC failed too: %s\n",
                     st.error_message().c_str());
        return 1;
      }
      grpc_seconds.push_back(grpc_elapsed);
      std::printf("round %d: SubmitSweep over gRPC instead took %.3f s\n", round, grpc_elapsed);
    }
    // The coordinator holds every run, queued.
    v1::GetSweepRequest req;
    req.set_sweep_id("submit-bench");
    v1::GetSweepResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120000);
    grpc::Status st = stub->GetSweep(&ctx, req, &resp);
    if (!st.ok() || resp.sweep().counts().queued() != o.runs) {
      std::fprintf(stderr, "cli_submit_bench: the sweep does not hold %lld queued runs: %s\n",
                   static_cast<long long>(o.runs),
                   st.ok() ? std::to_string(resp.sweep().counts().queued()).c_str()
                           : st.error_message().c_str());
      return 1;
    }
    std::fflush(stdout);
  }
  std::printf("\n%lld runs, s (median (min-max)):\n", static_cast<long long>(o.runs));
  if (!cli_seconds.empty()) {
    std::printf("  resweep submit       %s (%zu rounds)\n", Spread(cli_seconds, 3).c_str(),
                cli_seconds.size());
    std::printf("  coordinator CPU      %s\n", Spread(coordinator_cpu_seconds, 3).c_str());
  }
  if (!grpc_seconds.empty()) {
    std::printf("  SubmitSweep (gRPC)   %s (%zu rounds; the CLI refused)\n",
                Spread(grpc_seconds, 3).c_str(), grpc_seconds.size());
  }
  std::printf("load after: %s\n", LoadAverage().c_str());
  return 0;
}
