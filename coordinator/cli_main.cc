// resweep: the command-line client (submit, status, runs, results, cancel, wait).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>

#include "common/channel.h"
#include "common/clock.h"
#include "common/sweep_spec.h"
#include "coordinator/convert.h"
#include "coordinator/results_format.h"
#include "coordinator/scheduler.h"
#include "coordinator/sqlite_store.h"
#include "resweep/v1/resweep.grpc.pb.h"

namespace {

using resweep::Status;

int Fail(const std::string& what, const Status& st) {
  // Refusals by the coordinator name their gRPC code (UNAUTHENTICATED, ...); a bad
  // file's error is the file:line message alone.
  const bool plain = st.code() == resweep::StatusCode::kInvalidArgument ||
                     st.code() == resweep::StatusCode::kNotFound;
  std::cerr << "resweep " << what << ": " << (plain ? st.message() : st.ToString()) << "\n";
  if (st.code() == resweep::StatusCode::kUnavailable) {
    std::cerr << "(is resweep-coordinator running at the address given by --coordinator or "
                 "$RESWEEP_COORDINATOR?)\n";
  }
  return st.code() == resweep::StatusCode::kInvalidArgument ? 2 : 1;
}

class Client {
 public:
  Client(const std::string& address, double timeout_seconds, resweep::ClientSecurity security)
      : security_(std::move(security)),
        stub_(resweep::v1::Coordinator::NewStub(
            resweep::MakeCoordinatorChannel({address, 8 << 20, security_}))),
        timeout_seconds_(timeout_seconds) {}

  template <typename Req, typename Resp, typename Method>
  Status Call(Method method, const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    resweep::PrepareCall(&ctx, security_, static_cast<int64_t>(timeout_seconds_ * 1000));
    return resweep::FromGrpcStatus((stub_.get()->*method)(&ctx, req, resp));
  }

 private:
  resweep::ClientSecurity security_;
  std::unique_ptr<resweep::v1::Coordinator::Stub> stub_;
  double timeout_seconds_;
};

using Stub = resweep::v1::Coordinator::Stub;

void PrintSweepStatus(const resweep::v1::SweepSummary& s,
                      const resweep::v1::ListRunsResponse* runs) {
  std::cout << resweep::FormatSweepLine(s) << "\n";
  if (!runs) return;
  for (const auto& r : runs->runs()) {
    if (r.state() != "running" && r.state() != "leased") continue;
    char line[256];
    std::snprintf(line, sizeof(line), "  %-40s seed %-3lld %-8s epoch %d/%d on %s",
                  r.cell_label().c_str(), static_cast<long long>(r.seed()), r.state().c_str(),
                  r.epoch(), r.epochs_total(), r.worker_id().c_str());
    std::cout << line << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "resweep: repeated-seed training sweeps. Submit a sweep file, watch it, read mean "
      "and spread per grid cell."};
  app.require_subcommand(1);
  std::string address = resweep::DefaultCoordinatorAddress();
  double timeout = 30;
  app.add_option("--coordinator,-c", address, "coordinator address ($RESWEEP_COORDINATOR)")
      ->capture_default_str();
  app.add_option("--timeout", timeout, "seconds to wait for each call")->capture_default_str();
  resweep::ClientSecurityFlags security_flags;
  app.add_option("--tls-ca", security_flags.tls_ca_file,
                 "connect with TLS, trusting this CA (PEM) [$RESWEEP_TLS_CA]");
  app.add_option("--tls-cert", security_flags.tls_cert_file,
                 "client certificate for mutual TLS (PEM) [$RESWEEP_TLS_CERT]");
  app.add_option("--tls-key", security_flags.tls_key_file,
                 "its private key (PEM) [$RESWEEP_TLS_KEY]");
  app.add_option("--token-file", security_flags.token_file,
                 "file holding your admin or read token [$RESWEEP_TOKEN_FILE, or $RESWEEP_TOKEN]");

  std::string file;
  auto* submit = app.add_subcommand("submit", "validate a sweep file and queue its runs");
  submit->add_option("file", file, "sweep YAML")->required();
  bool dry_run = false;
  submit->add_flag("--dry-run", dry_run, "validate and list the runs; queue nothing");

  std::string sweep;
  auto* status = app.add_subcommand("status", "run counts per sweep; progress of running runs");
  status->add_option("sweep", sweep, "sweep id, id prefix or name (default: all sweeps)");

  std::string state;
  auto* runs = app.add_subcommand("runs", "one line per run");
  runs->add_option("sweep", sweep, "sweep id, id prefix or name")->required();
  runs->add_option("--state", state, "only runs in this state");

  std::string format = "table", db;
  int last_k = 0;
  auto* results = app.add_subcommand("results", "mean / std / n of test error per grid cell");
  results->add_option("sweep", sweep, "sweep id, id prefix or name")->required();
  results->add_option("--format,-f", format, "table | markdown | csv | json")
      ->capture_default_str()
      ->check(CLI::IsMember({"table", "markdown", "csv", "json"}));
  results->add_option("--last-k", last_k, "average the last K epochs (default: the sweep's)")
      ->check(CLI::Range(0, 1000));
  results->add_option("--db", db, "read this database file directly (no coordinator needed)");

  auto* cancel = app.add_subcommand("cancel", "cancel a sweep's queued and running runs");
  cancel->add_option("sweep", sweep, "sweep id, id prefix or name")->required();

  double wait_limit = 0, poll = 2;
  auto* wait = app.add_subcommand("wait", "show progress until the sweep is done");
  wait->add_option("sweep", sweep, "sweep id, id prefix or name")->required();
  wait->add_option("--limit", wait_limit, "give up after this many seconds (0: never)");
  wait->add_option("--poll", poll, "seconds between progress lines")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  auto security = resweep::LoadClientSecurity(security_flags, {"admin", "read"});
  if (!security.ok()) return Fail("options", security.status());
  Client client(address, timeout, std::move(*security));

  if (*submit) {
    // Validate here first: errors then name the user's own file path.
    auto spec = resweep::LoadSweepSpecFile(file);
    if (!spec.ok()) return Fail("submit", spec.status());
    if (dry_run) {
      std::cout << "sweep " << spec->name << " (" << spec->sweep_id << "): " << spec->runs.size()
                << " runs\n";
      for (const auto& r : spec->runs) {
        std::cout << "  " << r.run_id << "  " << r.cell_label << "  seed " << r.seed << "\n";
      }
      return 0;
    }
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    resweep::v1::SubmitSweepRequest req;
    req.set_spec_yaml(text.str());
    req.set_source_name(file);
    resweep::v1::SubmitSweepResponse resp;
    Status st = client.Call(&Stub::SubmitSweep, req, &resp);
    if (!st.ok()) return Fail("submit", st);
    std::cout << resp.sweep_id() << "\n";
    std::cerr << "sweep " << resp.name() << ": " << resp.runs_total() << " runs, "
              << resp.runs_new() << " newly queued"
              << (resp.already_existed() ? " (already submitted: nothing new queued)" : "") << "\n";
    return 0;
  }

  if (*status) {
    if (sweep.empty()) {
      resweep::v1::ListSweepsResponse resp;
      Status st = client.Call(&Stub::ListSweeps, resweep::v1::ListSweepsRequest(), &resp);
      if (!st.ok()) return Fail("status", st);
      if (resp.sweeps_size() == 0) std::cout << "no sweeps\n";
      for (const auto& s : resp.sweeps()) PrintSweepStatus(s, nullptr);
      return 0;
    }
    resweep::v1::GetSweepRequest req;
    req.set_sweep_id(sweep);
    resweep::v1::GetSweepResponse resp;
    Status st = client.Call(&Stub::GetSweep, req, &resp);
    if (!st.ok()) return Fail("status", st);
    resweep::v1::ListRunsRequest runs_req;
    runs_req.set_sweep_id(resp.sweep().sweep_id());
    resweep::v1::ListRunsResponse runs_resp;
    st = client.Call(&Stub::ListRuns, runs_req, &runs_resp);
    if (!st.ok()) return Fail("status", st);
    PrintSweepStatus(resp.sweep(), &runs_resp);
    return 0;
  }

  if (*runs) {
    resweep::v1::ListRunsRequest req;
    req.set_sweep_id(sweep);
    req.set_state(state);
    resweep::v1::ListRunsResponse resp;
    Status st = client.Call(&Stub::ListRuns, req, &resp);
    if (!st.ok()) return Fail("runs", st);
    std::cout << resweep::FormatRuns(resp);
    return 0;
  }

  if (*results) {
    resweep::v1::GetResultsResponse resp;
    if (!db.empty()) {
      // Straight from the file, read-only: works with no coordinator running, and
      // never blocks one that is (WAL readers do not block the writer).
      auto store = resweep::OpenSqliteStore(db, {.read_only = true});
      if (!store.ok()) return Fail("results", store.status());
      resweep::SystemClock clock;
      resweep::Scheduler reader(store->get(), &clock, resweep::SchedulerOptions());
      auto view = reader.Results(sweep, last_k);
      if (!view.ok()) return Fail("results", view.status());
      resweep::ToProto(*view, &resp);
    } else {
      resweep::v1::GetResultsRequest req;
      req.set_sweep_id(sweep);
      req.set_last_k(last_k);
      Status st = client.Call(&Stub::GetResults, req, &resp);
      if (!st.ok()) return Fail("results", st);
    }
    auto text = resweep::FormatResults(resp, format);
    if (!text.ok()) return Fail("results", text.status());
    std::cout << *text;
    return 0;
  }

  if (*cancel) {
    resweep::v1::CancelSweepRequest req;
    req.set_sweep_id(sweep);
    resweep::v1::CancelSweepResponse resp;
    Status st = client.Call(&Stub::CancelSweep, req, &resp);
    if (!st.ok()) return Fail("cancel", st);
    std::cout << "cancelled " << resp.runs_cancelled() << " runs of " << sweep << "\n";
    return 0;
  }

  if (*wait) {
    const auto start = std::chrono::steady_clock::now();
    while (true) {
      resweep::v1::GetSweepRequest req;
      req.set_sweep_id(sweep);
      resweep::v1::GetSweepResponse resp;
      Status st = client.Call(&Stub::GetSweep, req, &resp);
      if (!st.ok()) return Fail("wait", st);
      const auto& c = resp.sweep().counts();
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr,
                   "[%6.0fs] %s: %d/%d done (%d succeeded, %d failed, %d cancelled), %d running, "
                   "%d queued\n",
                   elapsed, resp.sweep().name().c_str(), c.succeeded() + c.failed() + c.cancelled(),
                   c.total(), c.succeeded(), c.failed(), c.cancelled(), c.running() + c.leased(),
                   c.queued());
      if (resp.sweep().state() != "active") return c.failed() ? 3 : 0;
      if (wait_limit > 0 && elapsed > wait_limit) {
        std::cerr << "resweep wait: gave up after " << wait_limit << " s\n";
        return 4;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(poll * 1000)));
    }
  }
  return 0;
}
