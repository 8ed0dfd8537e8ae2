#include "cli/commands.h"

#include <grpc/support/log.h>

#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>

#include "cli/client.h"
#include "cli/diagnose.h"
#include "cli/format.h"
#include "cli/plot.h"
#include "cli/report.h"
#include "common/channel.h"
#include "common/sweep_spec.h"
#include "common/version.h"

namespace resweep {

namespace {

enum ExitCode {
  kExitOk = 0,
  kExitFailed = 1,
  kExitUsage = 2,
  kExitWaitFailedRuns = 3,
  kExitWaitLimit = 4,
  kExitUnreachable = 5,
  kExitWaitCancelled = 6,
  kExitInterrupted = 130,
};

using Stub = v1::Coordinator::Stub;

// gRPC's own log lines (e.g. a TLS handshake failure) are noise next to the
// explanation the CLI prints; --verbose lets them through.
void QuietGrpcLog(gpr_log_func_args*) {}

bool IsConnectionProblem(const Status& st) {
  return st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kDeadlineExceeded;
}

// Prints why `what` failed and returns the exit code. `client` (null for --db) lets a
// connection problem be diagnosed: nothing listening, TLS on one side only, a
// certificate from the wrong CA.
int Fail(const std::string& what, const Status& st, const Client* client = nullptr) {
  if (client && IsConnectionProblem(st)) {
    const std::string diagnosis = DiagnoseConnection(client->address(), client->security());
    if (!diagnosis.empty()) {
      std::cerr << "resweep " << what << ": " << diagnosis << "\n";
      return kExitUnreachable;
    }
    std::cerr << "resweep " << what << ": " << st.ToString() << "\n";
    if (st.code() == StatusCode::kDeadlineExceeded) {
      std::cerr << "(no answer from " << client->address() << " within "
                << client->timeout_seconds() << " s; raise --timeout for slow calls)\n";
    }
    return kExitUnreachable;
  }
  // A bad file's or argument's error is its own message; refusals name their code.
  const bool plain = st.code() == StatusCode::kInvalidArgument ||
                     st.code() == StatusCode::kNotFound ||
                     st.code() == StatusCode::kFailedPrecondition;
  std::cerr << "resweep " << what << ": " << (plain ? st.message() : st.ToString()) << "\n";
  return st.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
}

// The first invalid UTF-8 sequence in `text` as "line L (byte offset B)", or "".
std::string FirstInvalidUtf8(const std::string& text) {
  int line = 1;
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t len = c < 0x80           ? 1
                       : (c >> 5) == 0x6  ? 2
                       : (c >> 4) == 0xe  ? 3
                       : (c >> 3) == 0x1e ? 4
                                          : 0;
    bool ok = len > 0 && i + len <= text.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    }
    if (!ok) return "line " + std::to_string(line) + " (byte offset " + std::to_string(i) + ")";
    if (c == '\n') ++line;
    i += len;
  }
  return "";
}

StatusOr<std::string> ReadSweepFile(const std::string& path) {
  auto spec_limits = SpecLimits();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return InvalidArgumentError(path + ": no such file");
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError(path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError(path + ": cannot open (not readable)");
  std::ostringstream text;
  text << in.rdbuf();
  // Sent as a protobuf string, which must be UTF-8: say where it is not.
  if (const std::string where = FirstInvalidUtf8(text.str()); !where.empty()) {
    return InvalidArgumentError(path + ": not valid UTF-8 at " + where);
  }
  // The coordinator refuses larger files too; this saves sending one.
  if (static_cast<int64_t>(text.str().size()) > spec_limits.max_bytes * 8) {
    return InvalidArgumentError(path + ": " + std::to_string(text.str().size()) +
                                " bytes is far beyond any sweep file");
  }
  return text.str();
}

std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted = true; }

struct Options {
  std::string address = DefaultCoordinatorAddress();
  double timeout = 30;
  bool verbose = false;
  ClientSecurityFlags security;
  std::string format = "table";
  std::string db;
  std::string sweep;
  std::string state;
  std::string file;
  std::string run;
  std::vector<std::string> run_ids;
  bool dry_run = false, new_version = false, all = false, force = false;
  bool failed = false, cancelled = false, restart = false;
  int last_k = 0;
  int page_size = 0;  // runs per ListRuns call; 0: the coordinator's default
  double wait_limit = 0, poll = 2;
  std::string shell;
  // plot
  CurvesOptions curves;
  std::string xrange, out, summary_x;
  bool summary = false, log_y = false;
  int max_points = 0;
  // report
  bool no_figures = false;
};

// Where reads go: the database file with --db, else the coordinator.
class Reads {
 public:
  Reads(const Options& o, Client* client) : db_(o.db), client_(client) {}
  // Returns the exit code of a failure, or 0 with *api set.
  int Open(const std::string& what, ReadApi** api) {
    if (db_.empty()) {
      remote_ = MakeRemoteReadApi(client_);
      *api = remote_.get();
      return 0;
    }
    auto offline = OpenOfflineReadApi(db_);
    if (!offline.ok()) {
      // A file that is not a database (not even SQLite's) is bad input, as one that
      // lacks resweep's schema is: usage, exit 2.
      if (offline.status().code() == StatusCode::kDataLoss) {
        return Fail(what, InvalidArgumentError(offline.status().message()));
      }
      return Fail(what, offline.status());
    }
    offline_ = std::move(*offline);
    *api = offline_.get();
    return 0;
  }
  const Client* client() const { return db_.empty() ? client_ : nullptr; }

 private:
  std::string db_;
  Client* client_;
  std::unique_ptr<ReadApi> remote_, offline_;
};

int Print(const std::string& what, const StatusOr<std::string>& text) {
  if (!text.ok()) return Fail(what, text.status());
  std::cout << *text;
  return kExitOk;
}

int Submit(const Options& o, Client* client) {
  auto text = ReadSweepFile(o.file);
  if (!text.ok()) return Fail("submit", text.status());
  v1::SubmitSweepRequest req;
  req.set_spec_yaml(*text);
  req.set_source_name(o.file);
  req.set_dry_run(o.dry_run);
  req.set_allow_name_reuse(o.new_version);
  v1::SubmitSweepResponse resp;
  Status st = client->Call(&Stub::SubmitSweep, req, &resp);
  if (!st.ok() && o.dry_run && IsConnectionProblem(st)) {
    // No coordinator to ask for its limits: validate here with the defaults.
    const std::string why = DiagnoseConnection(client->address(), client->security());
    std::cerr << "note: no coordinator answered (" << (why.empty() ? st.ToString() : why)
              << "); validating locally with the default limit of " << SpecLimits().max_runs
              << " runs per sweep (a coordinator may allow more)\n";
    auto spec = ParseSweepSpec(*text, o.file);
    if (!spec.ok()) return Fail("submit", spec.status());
    for (const auto& w : spec->warnings) std::cerr << "warning: " << w << "\n";
    std::cout << "sweep " << spec->name << " (" << spec->sweep_id << "): " << spec->runs.size()
              << " runs\n";
    for (const auto& r : spec->runs) {
      std::cout << "  " << r.run_id << "  " << r.cell->cell_label << "  seed " << r.seed << "\n";
    }
    return kExitOk;
  }
  if (!st.ok()) {
    if (st.code() == StatusCode::kDeadlineExceeded && !o.dry_run) {
      std::cerr << "resweep submit: no answer from " << client->address() << " within " << o.timeout
                << " s. The sweep may have been queued anyway: check with `resweep "
                << "status`. Submitting the same file again is safe (a resubmission queues "
                   "nothing twice).\n";
      return kExitUnreachable;
    }
    return Fail("submit", st, client);
  }
  for (const auto& w : resp.warnings()) std::cerr << "warning: " << w << "\n";
  if (!resp.name_reused_by().empty()) {
    std::cerr << "warning: another sweep is named '" << resp.name() << "' ("
              << resp.name_reused_by() << "); the name now means "
              << (o.dry_run ? "the newest" : resp.sweep_id()) << " (use ids to tell them apart)\n";
  }
  if (o.dry_run) {
    std::cout << "sweep " << resp.name() << " (" << resp.sweep_id() << "): " << resp.runs_total()
              << " runs (this coordinator allows " << resp.max_runs_per_sweep() << " per sweep)"
              << (resp.already_existed() ? "; already submitted" : "") << "\n";
    for (const auto& r : resp.runs()) {
      std::cout << "  " << r.run_id() << "  " << r.cell_label() << "  seed " << r.seed() << "\n";
    }
    return kExitOk;
  }
  std::cout << resp.sweep_id() << "\n";
  if (resp.restored()) {
    std::cerr << "sweep " << resp.sweep_id() << " had been deleted: it is shown again\n";
  }
  std::cerr << "sweep " << resp.name() << ": " << resp.runs_total() << " runs, " << resp.runs_new()
            << " newly queued"
            << (resp.already_existed() ? " (already submitted: nothing new queued)" : "") << "\n";
  return kExitOk;
}

// Every page of a list, in one response (for lists that stay short: sweeps, a
// sweep's leased and running runs).
Status ListAllSweeps(ReadApi* api, v1::ListSweepsRequest req, v1::ListSweepsResponse* out) {
  do {
    v1::ListSweepsResponse page;
    RESWEEP_RETURN_IF_ERROR(api->ListSweeps(req, &page));
    for (auto& s : *page.mutable_sweeps()) *out->add_sweeps() = std::move(s);
    if (page.sweeps_size() == 0 && !page.next_page_token().empty()) {
      return InternalError("the coordinator sent an empty page of sweeps with a page token");
    }
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  return Status::Ok();
}

// Calls `each` with every page of the runs `req` asks for, in order. Pages after the
// first name the sweep by its id: a name could come to mean a newer sweep meanwhile.
template <typename Each>
Status ForEachRunsPage(ReadApi* api, v1::ListRunsRequest req, Each each) {
  do {
    v1::ListRunsResponse page;
    RESWEEP_RETURN_IF_ERROR(api->ListRuns(req, &page));
    if (page.runs_size() > 0) req.set_sweep_id(page.runs(0).sweep_id());
    if (page.runs_size() == 0 && !page.next_page_token().empty()) {
      return InternalError("the coordinator sent an empty page of runs with a page token");
    }
    each(page);
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  return Status::Ok();
}

int StatusCommand(const Options& o, Client* client) {
  Reads reads(o, client);
  ReadApi* api = nullptr;
  if (int rc = reads.Open("status", &api)) return rc;
  // The table ends with the quarantined workers (for JSON: `resweep workers`).
  auto with_quarantines = [&](StatusOr<std::string> text) -> StatusOr<std::string> {
    if (!text.ok() || o.format != "table") return text;
    v1::ListWorkersResponse workers;
    if (Status st = api->ListWorkers(v1::ListWorkersRequest(), &workers); !st.ok()) return st;
    return *text + FormatQuarantines(workers);
  };
  v1::ListSweepsResponse sweeps;
  if (o.sweep.empty()) {
    v1::ListSweepsRequest req;
    req.set_include_archived(o.all);
    if (Status st = ListAllSweeps(api, req, &sweeps); !st.ok()) {
      return Fail("status", st, reads.client());
    }
    return Print("status", with_quarantines(FormatSweeps(sweeps, nullptr, o.format)));
  }
  v1::GetSweepRequest req;
  req.set_sweep_id(o.sweep);
  v1::GetSweepResponse resp;
  if (Status st = api->GetSweep(req, &resp); !st.ok()) return Fail("status", st, reads.client());
  *sweeps.add_sweeps() = resp.sweep();
  v1::ListRunsResponse active;
  for (const char* state : {"leased", "running"}) {
    v1::ListRunsRequest runs_req;
    runs_req.set_sweep_id(resp.sweep().sweep_id());
    runs_req.set_state(state);
    Status st = ForEachRunsPage(api, runs_req, [&](const v1::ListRunsResponse& page) {
      for (const auto& r : page.runs()) *active.add_runs() = r;
    });
    if (!st.ok()) return Fail("status", st, reads.client());
  }
  return Print("status", with_quarantines(FormatSweeps(sweeps, &active, o.format)));
}

// One read (`call` on the coordinator or on --db) rendered by `render` in o.format.
template <typename Req, typename Resp, typename Render>
int ReadAndPrint(const char* what, const Options& o, Client* client,
                 Status (ReadApi::*call)(const Req&, Resp*), const Req& req, Render render) {
  Reads reads(o, client);
  ReadApi* api = nullptr;
  if (int rc = reads.Open(what, &api)) return rc;
  Resp resp;
  if (Status st = (api->*call)(req, &resp); !st.ok()) return Fail(what, st, reads.client());
  return Print(what, render(resp, o.format));
}

// Prints every run of the sweep, page by page as they arrive (a 100,000-run sweep
// never sits whole in one message or in memory).
int Runs(const Options& o, Client* client) {
  Reads reads(o, client);
  ReadApi* api = nullptr;
  if (int rc = reads.Open("runs", &api)) return rc;
  auto writer = RunsWriter::Make(o.format, &std::cout);
  if (!writer.ok()) return Fail("runs", writer.status());
  v1::ListRunsRequest req;
  req.set_sweep_id(o.sweep);
  req.set_state(o.state);
  req.set_page_size(o.page_size);
  Status st = ForEachRunsPage(api, req, [&](const v1::ListRunsResponse& page) {
    writer->Write(page);
    std::cout.flush();
  });
  if (!st.ok()) {
    std::cout.flush();
    return Fail("runs", st, reads.client());
  }
  writer->Finish();
  return kExitOk;
}

int Results(const Options& o, Client* client) {
  v1::GetResultsRequest req;
  req.set_sweep_id(o.sweep);
  req.set_last_k(o.last_k);
  return ReadAndPrint("results", o, client, &ReadApi::GetResults, req, FormatResults);
}

int Workers(const Options& o, Client* client) {
  v1::ListWorkersRequest req;
  req.set_include_gone(o.all);
  return ReadAndPrint("workers", o, client, &ReadApi::ListWorkers, req, FormatWorkers);
}

int RunCommand(const Options& o, Client* client) {
  v1::GetRunRequest req;
  req.set_run_id(o.run);
  return ReadAndPrint("run", o, client, &ReadApi::GetRun, req, FormatRun);
}

int Cancel(const Options& o, Client* client) {
  v1::CancelSweepRequest req;
  req.set_sweep_id(o.sweep);
  v1::CancelSweepResponse resp;
  if (Status st = client->Call(&Stub::CancelSweep, req, &resp); !st.ok()) {
    return Fail("cancel", st, client);
  }
  std::cout << resp.message() << "\n";
  return kExitOk;
}

int Retry(const Options& o, Client* client) {
  v1::RetryRunsRequest req;
  req.set_sweep_id(o.sweep);
  req.set_failed(o.failed);
  req.set_cancelled(o.cancelled);
  req.set_restart(o.restart);
  for (const auto& id : o.run_ids) req.add_run_ids(id);
  v1::RetryRunsResponse resp;
  if (Status st = client->Call(&Stub::RetryRuns, req, &resp); !st.ok()) {
    return Fail("retry", st, client);
  }
  for (const auto& s : resp.skipped()) std::cerr << "skipped " << s << "\n";
  if (resp.runs_queued() == 0) {
    std::cout << "nothing to retry in " << resp.sweep_id() << " (no "
              << (o.run_ids.empty() ? (o.cancelled && !o.failed ? "cancelled" : "failed")
                                    : "finished, unsuccessful")
              << " runs selected)\n";
    return kExitOk;
  }
  std::cout << "queued " << resp.runs_queued() << " run(s) of " << resp.sweep_id()
            << " again with a fresh attempt budget"
            << (o.restart ? ", from epoch 0" : ", each from its newest checkpoint if it has one")
            << (resp.restored() ? "; the sweep had been deleted and is shown again" : "") << "\n";
  return kExitOk;
}

int Delete(const Options& o, Client* client) {
  v1::DeleteSweepRequest req;
  req.set_sweep_id(o.sweep);
  req.set_force(o.force);
  v1::DeleteSweepResponse resp;
  if (Status st = client->Call(&Stub::DeleteSweep, req, &resp); !st.ok()) {
    return Fail("delete", st, client);
  }
  std::cout << "deleted sweep " << resp.sweep_id() << " (hidden from status; its results stay "
            << "readable by id): " << resp.runs_cancelled() << " run(s) cancelled, "
            << resp.runs_kept() << " kept for other sweeps, " << resp.checkpoints_removed()
            << " checkpoint(s) removed\n";
  return kExitOk;
}

// Sleeps `seconds`, waking early on Ctrl-C; false when interrupted.
bool SleepUnlessInterrupted(double seconds) {
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  while (std::chrono::steady_clock::now() < until && !g_interrupted) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return !g_interrupted;
}

// How long `wait` and `watch` keep asking a coordinator that went away after it had
// answered (a restart, a rolling update, a rescheduled pod) before they give up.
constexpr double kReconnectSeconds = 300;

// A monitoring loop's view of its coordinator: a failed round after an answer is
// tried again (said once on stderr, and when it answers again) while the coordinator
// is unreachable or cut the call short (CANCELLED: a graceful shutdown), for up to
// kReconnectSeconds after its last answer. The first round fails at once, as other
// commands do.
class Reconnects {
 public:
  Reconnects(const char* what, const Client* client) : what_(what), client_(client) {}

  void Answered() {
    if (lost_) std::cerr << "resweep " << what_ << ": the coordinator answers again\n";
    lost_ = false;
    last_answer_ = std::chrono::steady_clock::now();
    answered_ = true;
  }

  // Whether to try again after `st` (waiting `poll` seconds first, unless interrupted).
  bool Retry(const Status& st, double poll) {
    const bool transient = st.code() == StatusCode::kUnavailable ||
                           st.code() == StatusCode::kDeadlineExceeded ||
                           st.code() == StatusCode::kCancelled;
    if (!client_ || !answered_ || !transient) return false;
    const double silent =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - last_answer_).count();
    if (silent > kReconnectSeconds) {
      std::cerr << "resweep " << what_ << ": no answer from " << client_->address() << " for "
                << static_cast<int>(silent) << " s; giving up\n";
      return false;
    }
    if (!lost_) {
      std::cerr << "resweep " << what_ << ": lost the coordinator (" << st.ToString()
                << "); trying again for up to " << static_cast<int>(kReconnectSeconds)
                << " s (Ctrl-C stops)\n";
    }
    lost_ = true;
    return SleepUnlessInterrupted(std::max(poll, 1.0));
  }

 private:
  const char* const what_;
  const Client* const client_;
  bool answered_ = false;
  bool lost_ = false;
  std::chrono::steady_clock::time_point last_answer_;
};

int Wait(const Options& o, Client* client) {
  Reads reads(o, client);
  ReadApi* api = nullptr;
  if (int rc = reads.Open("wait", &api)) return rc;
  std::signal(SIGINT, OnInterrupt);
  const auto start = std::chrono::steady_clock::now();
  std::string sweep_id = o.sweep;
  Reconnects reconnects("wait", reads.client());
  while (true) {
    v1::GetSweepRequest req;
    req.set_sweep_id(sweep_id);
    v1::GetSweepResponse resp;
    Status st = api->GetSweep(req, &resp);
    if (!st.ok()) {
      const bool retry = reconnects.Retry(st, o.poll);
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (retry && o.wait_limit > 0 && waited > o.wait_limit) {
        std::cerr << "resweep wait: gave up after " << o.wait_limit
                  << " s without an answer from the coordinator; the sweep goes on\n";
        return kExitWaitLimit;
      }
      if (retry) continue;
      return g_interrupted ? kExitInterrupted : Fail("wait", st, reads.client());
    }
    reconnects.Answered();
    const auto& s = resp.sweep();
    sweep_id = s.sweep_id();
    const auto& c = s.counts();
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string epochs;
    if (s.epochs_total() > 0) {
      epochs =
          ", epochs " + std::to_string(s.epochs_done()) + "/" + std::to_string(s.epochs_total());
    }
    std::string eta;
    if (s.state() == "active") {
      eta = ", ETA " + (s.eta_seconds() >= 0 ? FormatDuration(s.eta_seconds()) : "unknown yet");
    }
    std::fprintf(stderr,
                 "[%6.0fs] %s: %d/%d runs done (%d succeeded, %d failed, %d cancelled), %d "
                 "running, %d queued%s%s\n",
                 elapsed, s.name().c_str(), c.succeeded() + c.failed() + c.cancelled(), c.total(),
                 c.succeeded(), c.failed(), c.cancelled(), c.running() + c.leased(), c.queued(),
                 epochs.c_str(), eta.c_str());
    if (s.state() == "cancelled") return kExitWaitCancelled;
    if (s.state() != "active") return c.failed() ? kExitWaitFailedRuns : kExitOk;
    if (o.wait_limit > 0 && elapsed > o.wait_limit) {
      std::cerr << "resweep wait: gave up after " << o.wait_limit << " s; the sweep goes on\n";
      return kExitWaitLimit;
    }
    if (!SleepUnlessInterrupted(o.poll)) {
      std::cerr << "\nstopped waiting. The sweep goes on: `resweep status " << sweep_id
                << "` shows it, `resweep wait " << sweep_id << "` waits again, `resweep cancel "
                << sweep_id << "` stops it.\n";
      return kExitInterrupted;
    }
  }
}

// The terminal's width: TIOCGWINSZ, else $COLUMNS, else 100.
int TerminalWidth() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS"); columns && std::atoi(columns) > 0) {
    return std::atoi(columns);
  }
  return 100;
}

// The most runs `watch` lists each round to show epochs per cell; above, cells show
// finished runs only (the sweep's line still counts every epoch).
constexpr int kWatchMaxListedRuns = 20000;

int Watch(const Options& o, Client* client) {
  Reads reads(o, client);
  ReadApi* api = nullptr;
  if (int rc = reads.Open("watch", &api)) return rc;
  std::signal(SIGINT, OnInterrupt);
  const bool terminal = isatty(STDOUT_FILENO);
  std::string sweep_id = o.sweep, last_frame;
  Reconnects reconnects("watch", reads.client());
  // A failed call of a round: the round again, or the exit code.
  std::optional<int> failed;
  auto failed_round = [&](const Status& st) -> bool {
    if (reconnects.Retry(st, o.poll)) return true;
    failed = g_interrupted ? kExitInterrupted : Fail("watch", st, reads.client());
    return false;
  };
  while (true) {
    v1::GetSweepRequest sweep_req;
    sweep_req.set_sweep_id(sweep_id);
    v1::GetSweepResponse sweep;
    if (Status st = api->GetSweep(sweep_req, &sweep); !st.ok()) {
      if (failed_round(st)) continue;
      return *failed;
    }
    const auto& s = sweep.sweep();
    sweep_id = s.sweep_id();
    v1::GetResultsRequest results_req;
    results_req.set_sweep_id(sweep_id);
    results_req.set_last_k(o.last_k);
    v1::GetResultsResponse results;
    if (Status st = api->GetResults(results_req, &results); !st.ok()) {
      if (failed_round(st)) continue;
      return *failed;
    }
    std::map<std::string, CellProgress> cells;
    if (s.counts().total() <= kWatchMaxListedRuns) {
      v1::ListRunsRequest runs_req;
      runs_req.set_sweep_id(sweep_id);
      Status st = ForEachRunsPage(api, runs_req, [&](const v1::ListRunsResponse& page) {
        for (const auto& r : page.runs()) {
          CellProgress& p = cells[r.cell_label()];
          p.epochs_done += r.epoch();
          p.epochs_total += r.epochs_total();
          p.runs_total += 1;
          p.runs_running += r.state() == "leased" || r.state() == "running";
          const bool finished =
              r.state() == "succeeded" || r.state() == "failed" || r.state() == "cancelled";
          p.runs_finished += finished;
          p.runs_failed += r.state() == "failed";
          // A finished run counts as whole: a failed or cancelled one has no epochs to come.
          if (finished) p.epochs_done += r.epochs_total() - r.epoch();
        }
      });
      if (!st.ok()) {
        if (failed_round(st)) continue;
        return *failed;
      }
    }
    reconnects.Answered();
    const std::string frame = FormatWatchFrame(s, results, cells, TerminalWidth());
    if (terminal) {
      // Home, clear the screen, then the frame: a redraw in place.
      std::cout << "\x1b[H\x1b[2J" << frame << std::flush;
    } else if (frame != last_frame) {
      std::cout << (last_frame.empty() ? "" : "\n") << frame << std::flush;
    }
    last_frame = frame;
    if (s.state() == "cancelled") return kExitWaitCancelled;
    if (s.state() != "active") return s.counts().failed() ? kExitWaitFailedRuns : kExitOk;
    if (!SleepUnlessInterrupted(o.poll)) {
      std::cerr << "\nstopped watching. The sweep goes on: `resweep watch " << sweep_id
                << "` watches again.\n";
      return kExitInterrupted;
    }
  }
}

// Writes `text` to `path` whole, or says why not.
Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return InvalidArgumentError(path + ": cannot open for writing");
  out << text;
  out.close();
  if (!out) return InternalError(path + ": write failed");
  return Status::Ok();
}

// Runs `gnuplot script`; its own messages go to our stderr.
Status RunGnuplot(const std::string& script) {
  std::string program = "gnuplot";
  std::vector<char*> argv = {program.data(), const_cast<char*>(script.c_str()), nullptr};
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, "gnuplot", nullptr, nullptr, argv.data(), environ);
  if (err == ENOENT) {
    return FailedPreconditionError(
        "gnuplot is not installed (not on PATH); install it (Debian/Ubuntu: apt-get install "
        "gnuplot-nox fonts-dejavu-core, or scripts/install-deps.sh), or draw the figure "
        "elsewhere with `gnuplot " +
        script + "`");
  }
  if (err != 0) return InternalError("cannot start gnuplot: " + std::string(strerror(err)));
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR)
      return InternalError("waiting for gnuplot: " + std::string(strerror(errno)));
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return InternalError("gnuplot failed on " + script + " (" +
                         (WIFEXITED(wstatus) ? "exit " + std::to_string(WEXITSTATUS(wstatus))
                                             : std::string("killed by a signal")) +
                         ")");
  }
  return Status::Ok();
}

// FILE.png -> FILE.png.dat and FILE.png.gp: the data file and the script are named
// after the whole figure name, so FILE.png and FILE.svg in one folder keep their own.
std::string DataPathFor(const std::string& out) { return out + ".dat"; }
std::string ScriptPathFor(const std::string& out) { return out + ".gp"; }

// Writes a figure's data and script beside it and runs gnuplot on them.
Status DrawFigure(const PlotFiles& files, const PlotOutput& output) {
  RESWEEP_RETURN_IF_ERROR(WriteTextFile(output.data_path, files.data));
  RESWEEP_RETURN_IF_ERROR(WriteTextFile(ScriptPathFor(output.out_path), files.script));
  return RunGnuplot(ScriptPathFor(output.out_path));
}

std::string CurvesTitle(const std::string& sweep_name, const CurvesOptions& curves) {
  return sweep_name + ": " + curves.metric + ", mean over seeds" +
         (curves.band == "std"    ? " +- 1 std"
          : curves.band == "ci95" ? " with 95% CI"
                                  : "");
}

std::string SummaryTitle(const v1::GetResultsResponse& resp) {
  return resp.sweep().name() + ": test error, mean of the last " + std::to_string(resp.last_k()) +
         " epochs with 95% CI";
}

int Plot(const Options& o, Client* client) {
  CurvesOptions curves = o.curves;
  curves.output.out_path = o.out;
  curves.output.data_path = DataPathFor(o.out);
  curves.output.log_y = o.log_y;
  const std::string script_path = ScriptPathFor(o.out);
  if (o.xrange == "first") {
    curves.first_epochs = true;
  } else if (!o.xrange.empty()) {
    auto range = ParseXRange(o.xrange);
    if (!range.ok()) return Fail("plot", range.status());
    curves.x_min = range->first;
    curves.x_max = range->second;
  }
  if (!o.summary) {
    if (Status st = ValidateCurvesOptions(curves); !st.ok()) return Fail("plot", st);
  }
  Reads reads(o, client);
  ReadApi* api = nullptr;
  if (int rc = reads.Open("plot", &api)) return rc;
  StatusOr<PlotFiles> files = PlotFiles{};
  if (o.summary) {
    v1::GetResultsRequest req;
    req.set_sweep_id(o.sweep);
    req.set_last_k(o.last_k);
    v1::GetResultsResponse resp;
    if (Status st = api->GetResults(req, &resp); !st.ok()) return Fail("plot", st, reads.client());
    SummaryOptions summary{o.summary_x, curves.output};
    summary.output.title = SummaryTitle(resp);
    files = SummaryPlot(resp, summary);
  } else {
    v1::GetCurvesRequest req;
    req.set_sweep_id(o.sweep);
    req.set_max_points(o.max_points);
    v1::GetCurvesResponse resp;
    if (Status st = api->GetCurves(req, &resp); !st.ok()) return Fail("plot", st, reads.client());
    curves.output.title = CurvesTitle(resp.sweep().name(), curves);
    files = CurvesPlot(resp, curves);
  }
  if (!files.ok()) return Fail("plot", files.status());
  for (const auto& note : files->notes) std::cerr << "note: " << note << "\n";
  if (Status st = DrawFigure(*files, curves.output); !st.ok()) return Fail("plot", st);
  std::cout << "wrote " << o.out << " (data " << curves.output.data_path << ", gnuplot script "
            << script_path << ")\n";
  return kExitOk;
}

// Whether `program` is an executable file in a folder of $PATH.
bool OnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string file = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(file.c_str(), X_OK) == 0) return true;
  }
  return false;
}

// `word` as one word for a POSIX shell: as it is when it has no character the shell
// reads specially, else in single quotes (a quote inside as '\\'').
std::string ShellWord(const std::string& word) {
  const bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_./:=@+,-%", c);
  });
  if (plain) return word;
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The figures a report draws, by file name under DIR/figures without extension.
const char* const kReportFigureNames[] = {"train-loss", "test-error", "first-epochs", "summary"};

// Removes the files an earlier report wrote under `figures_dir` (each figure as PNG
// and SVG with its .dat and .gp), so that a figure this report does not draw is not
// left from the last one; then the folder if that left it empty. Only these names:
// anything else in the folder is the user's and stays.
void RemoveOwnFigures(const std::string& figures_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(figures_dir, ec)) return;
  for (const char* name : kReportFigureNames) {
    for (const char* ext : {".png", ".svg"}) {
      const std::string out = figures_dir + "/" + name + ext;
      for (const std::string& file : {out, DataPathFor(out), ScriptPathFor(out)}) {
        fs::remove(file, ec);  // absent is fine
      }
    }
  }
  if (fs::is_empty(figures_dir, ec) && !ec) fs::remove(figures_dir, ec);
}

// One figure of the report: drawn from the curves (`curves` set) or the summary.
struct ReportFigureSpec {
  std::string name;  // file name without extension, under DIR/figures
  std::string title;
  std::string caption;
  std::optional<CurvesOptions> curves;  // unset: the summary
  std::string plot_flags;               // the `resweep plot` flags that draw the same
};

// resweep report SWEEP -o DIR: README.md, results.csv, runs.csv, epochs.csv and the
// figures (PNG and SVG) in DIR, from the same answers `results`, `runs` and `plot` print.
// An earlier report's figures in DIR are removed once everything is read (nothing of
// DIR changes when a read fails); its other files are overwritten.
int Report(const Options& o, Client* client) {
  const std::string what = "report";
  if (!o.no_figures && !OnPath("gnuplot")) {
    return Fail(what, FailedPreconditionError(
                          "gnuplot is not installed (not on PATH); install it (Debian/Ubuntu: "
                          "apt-get install gnuplot-nox fonts-dejavu-core, or "
                          "scripts/install-deps.sh), or pass --no-figures for a report without "
                          "figures"));
  }
  namespace fs = std::filesystem;
  const std::string dir = o.out;
  const std::string figures_dir = dir + "/figures";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    return Fail(what, InvalidArgumentError("-o " + dir + ": cannot create the folder (" +
                                           (ec ? ec.message() : "not a folder") + ")"));
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    return Fail(what, InvalidArgumentError("-o " + dir + ": the folder is not writable"));
  }

  Reads reads(o, client);
  ReadApi* api = nullptr;
  if (int rc = reads.Open(what, &api)) return rc;
  ReportInput in;
  v1::GetResultsRequest results_req;
  results_req.set_sweep_id(o.sweep);
  results_req.set_last_k(o.last_k);
  if (Status st = api->GetResults(results_req, &in.results); !st.ok()) {
    return Fail(what, st, reads.client());
  }
  // The rest by id: a name could come to mean a newer sweep meanwhile.
  const std::string sweep_id = in.results.sweep().sweep_id();
  std::cerr << "report of sweep " << in.results.sweep().name() << " (" << sweep_id << ") into "
            << dir << "\n";
  v1::GetCurvesRequest curves_req;
  curves_req.set_sweep_id(sweep_id);
  if (Status st = api->GetCurves(curves_req, &in.curves); !st.ok()) {
    return Fail(what, st, reads.client());
  }
  std::ostringstream runs_csv;
  {
    auto writer = RunsWriter::Make("csv", &runs_csv);
    if (!writer.ok()) return Fail(what, writer.status());
    v1::ListRunsRequest req;
    req.set_sweep_id(sweep_id);
    Status st =
        ForEachRunsPage(api, req, [&](const v1::ListRunsResponse& page) { writer->Write(page); });
    if (!st.ok()) return Fail(what, st, reads.client());
    writer->Finish();
  }
  // The protocol: the resolved config of one run per cell.
  for (const auto& run : in.curves.runs()) {
    if (in.cell_configs.count(run.cell_label())) continue;
    v1::GetRunRequest req;
    req.set_run_id(run.run_id());
    v1::GetRunResponse resp;
    if (Status st = api->GetRun(req, &resp); !st.ok()) return Fail(what, st, reads.client());
    in.cell_configs[run.cell_label()] = resp.config_json();
  }
  // The K the measure really used: "last 50" on runs of 10 evaluated epochs would be a
  // K no run had (each averaged its 10).
  const int asked_k = in.results.last_k();
  in.results.set_last_k(LastKUsed(in.curves, asked_k));
  if (in.results.last_k() != asked_k) {
    std::cerr << "note: " << (o.last_k > 0 ? "--last-k " : "the sweep's last_k ") << asked_k
              << " is more than the " << in.results.last_k()
              << " evaluated epochs every run has: each run's measure is the mean of its last "
              << in.results.last_k() << ", and the report says so\n";
  }
  auto results_csv = FormatResults(in.results, "csv");
  if (!results_csv.ok()) return Fail(what, results_csv.status());
  // Everything is read: the old report's figures go (this one may draw fewer), the new
  // files replace the rest.
  RemoveOwnFigures(figures_dir);
  if (!o.no_figures) {
    fs::create_directories(figures_dir, ec);
    if (ec) {
      return Fail(what, InvalidArgumentError("-o " + dir + ": cannot create " + figures_dir + " (" +
                                             ec.message() + ")"));
    }
  }
  for (const auto& [file, text] :
       std::vector<std::pair<std::string, std::string>>{{"results.csv", *results_csv},
                                                        {"runs.csv", runs_csv.str()},
                                                        {"epochs.csv", EpochsCsv(in.curves)}}) {
    if (Status st = WriteTextFile(dir + "/" + file, text); !st.ok()) return Fail(what, st);
  }

  const int k = in.results.last_k();
  int longest = 0;
  for (const auto& run : in.curves.runs()) {
    for (const auto& p : run.points()) longest = std::max(longest, p.epoch());
  }
  const std::string k_text = std::to_string(k);
  std::vector<ReportFigureSpec> specs;
  {
    CurvesOptions loss;
    loss.metric = "train_loss";
    specs.push_back({"train-loss", "Training loss",
                     "Training loss per cell: at each epoch the mean over the cell's seeds, "
                     "shaded +-1 standard deviation across seeds.",
                     loss, "--metric train_loss"});
    CurvesOptions error;
    error.metric = "test_error";
    error.rolling = std::max(1, k);
    error.band = "ci95";
    specs.push_back(
        {"test-error", "Test error (rolling mean of " + k_text + " epochs)",
         "Test error per cell: each run smoothed by a trailing mean of its last " + k_text +
             " evaluated epochs (at the last epoch, the table's measure), then "
             "the mean over seeds with its Student-t 95% confidence band.",
         error, "--metric test_error --rolling " + std::to_string(error.rolling) + " --band ci95"});
    CurvesOptions zoom = loss;
    zoom.first_epochs = true;
    specs.push_back(
        {"first-epochs", "The first " + std::to_string(FirstEpochsEnd(longest)) + " epochs",
         "Training loss per cell over the first " + std::to_string(FirstEpochsEnd(longest)) +
             " of " + std::to_string(longest) +
             " epochs (a zoom of the first figure), mean +-1 std over seeds.",
         zoom, "--metric train_loss --xrange first"});
    specs.push_back({"summary", "Summary",
                     "Mean last-" + k_text +
                         " test error per cell with 95% CI bars against a grid axis, one "
                         "series per value of the other axes (drawn side by side), and the "
                         "published single-run figures as markers where they apply.",
                     std::nullopt, "--summary"});
  }
  // The README's commands are run from the report's folder (the plot commands) or
  // copied anywhere: the database by its absolute path, every path as one shell word.
  const std::string db_flag =
      o.db.empty() ? "" : " --db " + ShellWord(std::filesystem::absolute(o.db).string());
  // The K used, also when it is less than the sweep's own (so a command run again says
  // the same K as the report).
  const std::string last_k_flag = o.last_k > 0 || in.results.last_k() != asked_k
                                      ? " --last-k " + std::to_string(in.results.last_k())
                                      : "";
  // Notes once for the report, not once per figure and format.
  std::vector<std::string> notes;
  auto note = [&](const std::string& text) {
    if (std::find(notes.begin(), notes.end(), text) == notes.end()) notes.push_back(text);
  };
  if (!o.no_figures) {
    int done = 0;
    const int total = static_cast<int>(specs.size()) * 2;
    for (const auto& spec : specs) {
      ReportFigure figure{"figures/" + spec.name + ".png", "figures/" + spec.name + ".svg",
                          spec.title, spec.caption, ""};
      bool drawn = true, legend_omitted = false;
      for (const std::string& file : {figure.file, figure.vector_file}) {
        std::cerr << "[" << ++done << "/" << total << "] " << dir << "/" << file << "\n";
        PlotOutput output;
        output.out_path = dir + "/" + file;
        output.data_path = DataPathFor(output.out_path);
        StatusOr<PlotFiles> files = PlotFiles{};
        if (spec.curves) {
          CurvesOptions curves = *spec.curves;
          output.title = CurvesTitle(in.results.sweep().name(), curves);
          curves.output = output;
          files = CurvesPlot(in.curves, curves);
        } else {
          output.title = SummaryTitle(in.results);
          files = SummaryPlot(in.results, SummaryOptions{"", output});
        }
        if (!files.ok() && files.status().code() == StatusCode::kFailedPrecondition) {
          // Nothing to draw yet (no run has values): the report goes on without it.
          note(spec.name + " left out: " + files.status().message());
          drawn = false;
          break;
        }
        if (!files.ok()) return Fail(what, files.status());
        for (const auto& text : files->notes) note(text);
        legend_omitted = legend_omitted || files->legend_omitted;
        if (Status st = DrawFigure(*files, output); !st.ok()) return Fail(what, st);
      }
      if (!drawn) continue;
      if (legend_omitted) {
        figure.caption += " With more than " + std::to_string(kMaxLegendEntries) +
                          " series the legend is left out: each cell's label and numbers are in "
                          "the results table above and in results.csv.";
      }
      figure.command = "resweep plot " + sweep_id + " " + spec.plot_flags +
                       (spec.curves ? "" : last_k_flag) + " --out " + figure.file + db_flag;
      in.figures.push_back(figure);
    }
  }
  for (const auto& text : notes) std::cerr << "note: " << text << "\n";
  in.command = "resweep report " + sweep_id + " -o " + ShellWord(dir) + last_k_flag + db_flag;
  in.last_k_flag = last_k_flag;
  in.db_flag = db_flag;
  in.version = ResweepVersion();
  auto readme = ReportReadme(in);
  if (!readme.ok()) return Fail(what, readme.status());
  if (Status st = WriteTextFile(dir + "/README.md", *readme); !st.ok()) return Fail(what, st);
  std::cout << "wrote " << dir << "/README.md (with results.csv, runs.csv, epochs.csv"
            << (in.figures.empty()
                    ? ""
                    : " and " + std::to_string(in.figures.size()) + " figures in " + figures_dir)
            << ")\n";
  return kExitOk;
}

const char* const kCommands[] = {"submit", "status", "runs",    "run",       "results",
                                 "wait",   "watch",  "workers", "cancel",    "retry",
                                 "delete", "plot",   "report",  "completion"};

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{
      "resweep: repeated-seed training sweeps. Submit a sweep file, watch it, read mean "
      "and spread per grid cell.\nExit codes: 0 ok, 1 refused or failed, 2 bad usage or input, "
      "3 wait: runs failed, 4 wait: --limit reached, 5 coordinator unreachable, 6 wait: sweep "
      "cancelled, "
      "130 wait interrupted."};
  // A peer that closes the connection (e.g. a TLS probe refused) is an error to
  // report, not a reason to die.
  std::signal(SIGPIPE, SIG_IGN);
  app.require_subcommand(0, 1);
  app.fallthrough();  // global options also after the command: `resweep status -c host`
  app.set_version_flag("--version", std::string("resweep ") + ResweepVersion());
  Options o;
  app.add_option("--coordinator,-c", o.address,
                 "coordinator host[:port] (port 50051 when omitted) [$RESWEEP_COORDINATOR]")
      ->capture_default_str();
  app.add_option("--timeout", o.timeout, "seconds to wait for each call")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--verbose", o.verbose, "also print gRPC's own log lines");
  app.add_option("--tls-ca", o.security.tls_ca_file,
                 "connect with TLS, trusting this CA (PEM) [$RESWEEP_TLS_CA]");
  app.add_option("--tls-cert", o.security.tls_cert_file,
                 "client certificate for mutual TLS (PEM) [$RESWEEP_TLS_CERT]");
  app.add_option("--tls-key", o.security.tls_key_file, "its private key (PEM) [$RESWEEP_TLS_KEY]");
  app.add_option("--token-file", o.security.token_file,
                 "file holding your token: the token alone, or '<role> <token>' lines (admin used "
                 "if present, else read) [$RESWEEP_TOKEN_FILE, or $RESWEEP_TOKEN]");

  auto add_format = [&](CLI::App* cmd, std::vector<std::string> formats) {
    std::string names;
    for (const auto& f : formats) names += (names.empty() ? "" : " | ") + f;
    cmd->add_option("--format,-f", o.format, names)
        ->capture_default_str()
        ->check(CLI::IsMember(formats));
  };
  auto add_db = [&](CLI::App* cmd) {
    cmd->add_option("--db", o.db, "read this database file directly (no coordinator needed)");
  };

  auto* submit = app.add_subcommand("submit", "validate a sweep file and queue its runs");
  submit->add_option("file", o.file, "sweep YAML")->required();
  submit->add_flag("--dry-run", o.dry_run,
                   "validate with the coordinator's limits and list the runs; queue nothing");
  submit->add_flag("--new-version", o.new_version,
                   "submit although a different sweep already has this name");

  auto* status = app.add_subcommand("status", "sweeps with run counts, epoch progress and ETA");
  status->add_option("sweep", o.sweep, "sweep id, id prefix or name (default: all sweeps)");
  status->add_flag("--all", o.all, "include deleted sweeps");
  add_format(status, {"table", "json"});
  add_db(status);

  auto* runs = app.add_subcommand("runs", "one line per run of a sweep");
  runs->add_option("sweep", o.sweep, "sweep id, id prefix or name")->required();
  runs->add_option("--state", o.state, "only runs in this state")
      ->transform(CLI::IsMember({"queued", "leased", "running", "succeeded", "failed", "cancelled"},
                                CLI::ignore_case));
  add_format(runs, {"table", "json", "csv"});
  runs->add_option("--page-size", o.page_size,
                   "runs per request to the coordinator (0: its default); all are printed")
      ->check(CLI::NonNegativeNumber);
  add_db(runs);

  auto* run = app.add_subcommand("run", "one run: config, every attempt, per-epoch history");
  run->add_option("run", o.run, "run id or unique prefix")->required();
  add_format(run, {"table", "json"});
  add_db(run);

  auto* results = app.add_subcommand("results", "mean / std / n of test error per grid cell");
  results->add_option("sweep", o.sweep, "sweep id, id prefix or name")->required();
  add_format(results, {"table", "markdown", "csv", "json"});
  results->add_option("--last-k", o.last_k, "average the last K epochs (default: the sweep's)")
      ->check(CLI::Range(0, 1000));
  add_db(results);

  auto* wait = app.add_subcommand("wait", "show progress until the sweep is done");
  wait->add_option("sweep", o.sweep, "sweep id, id prefix or name")->required();
  wait->add_option("--limit", o.wait_limit, "give up after this many seconds (0: never)");
  wait->add_option("--poll", o.poll, "seconds between progress lines")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  add_db(wait);

  auto* watch = app.add_subcommand(
      "watch", "redraw a sweep's progress per cell (bars, ETA) and its results table until done");
  watch->add_option("sweep", o.sweep, "sweep id, id prefix or name")->required();
  watch->add_option("--poll", o.poll, "seconds between redraws")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  watch->add_option("--last-k", o.last_k, "average the last K epochs (default: the sweep's)")
      ->check(CLI::Range(0, 1000));
  add_db(watch);

  auto* workers = app.add_subcommand("workers", "workers: devices, slots, runs held, last seen");
  workers->add_flag("--all", o.all, "include workers gone for longer than ten leases");
  add_format(workers, {"table", "json"});
  add_db(workers);

  auto* cancel = app.add_subcommand("cancel", "cancel a sweep's queued and running runs");
  cancel->add_option("sweep", o.sweep, "sweep id, id prefix or name")->required();

  auto* retry = app.add_subcommand(
      "retry", "queue failed (or cancelled, or named) runs again with fresh attempts");
  retry->add_option("sweep", o.sweep, "sweep id, id prefix or name")->required();
  retry->add_option("runs", o.run_ids, "run ids or prefixes (default: every failed run)");
  retry->add_flag("--failed", o.failed, "every failed run (the default without run ids)");
  retry->add_flag("--cancelled", o.cancelled, "every cancelled run");
  retry->add_flag("--restart", o.restart, "start from epoch 0, not from the newest checkpoint");

  auto* del = app.add_subcommand(
      "delete",
      "archive a sweep: hidden from status, results kept, checkpoints of its failed "
      "and cancelled runs removed");
  del->add_option("sweep", o.sweep, "sweep id, id prefix or name")->required();
  del->add_flag("--force", o.force, "also when runs are still queued or running (cancels them)");

  auto* plot = app.add_subcommand(
      "plot",
      "draw a sweep's learning curves (mean over seeds per cell) or its summary, "
      "with gnuplot");
  plot->add_option("sweep", o.sweep, "sweep id, id prefix or name")->required();
  plot->add_option("--out,-o", o.out,
                   "the figure: FILE.png, FILE.svg or FILE.pdf; FILE.dat (data) and FILE.gp "
                   "(gnuplot script) are written beside it")
      ->required();
  plot->add_option("--metric", o.curves.metric, "what to draw")
      ->capture_default_str()
      ->check(CLI::IsMember({"train_loss", "train_error", "test_error", "test_loss", "lr"}));
  plot->add_option("--x", o.curves.x, "x axis: epoch | iteration; with --summary: a grid axis")
      ->capture_default_str();
  plot->add_option("--rolling", o.curves.rolling,
                   "trailing mean over this many points of each run before averaging")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  plot->add_option("--xrange", o.xrange,
                   "A:B, A: or :B: only x in this range; first: the first quarter of the epochs "
                   "(at least 2), the report's zoom");
  plot->add_flag("--logy", o.log_y, "logarithmic y axis");
  plot->add_option("--band", o.curves.band, "shaded band around each mean: std | ci95 | none")
      ->capture_default_str()
      ->check(CLI::IsMember({"std", "ci95", "none"}));
  plot->add_flag("--seeds", o.curves.seeds, "also a thin line per run");
  plot->add_option("--max-points", o.max_points,
                   "ask for at most about this many points per run (0: every epoch)")
      ->check(CLI::Range(0, 1000000));
  plot->add_flag("--summary", o.summary,
                 "mean last-K test error with 95% CI against a grid axis (--x), one series per "
                 "value of the other axes, with the paper's figures as markers");
  plot->add_option("--last-k", o.last_k,
                   "--summary: average the last K epochs (default: the sweep's)")
      ->check(CLI::Range(0, 1000));
  add_db(plot);

  auto* report = app.add_subcommand(
      "report",
      "write a sweep's report: README.md (protocol, results table, reading, figures), "
      "results.csv, runs.csv, epochs.csv and figures/ in a folder");
  report->add_option("sweep", o.sweep, "sweep id, id prefix or name")->required();
  report->add_option("--out,-o", o.out, "the folder (created if missing; files in it replaced)")
      ->required();
  report->add_option("--last-k", o.last_k, "average the last K epochs (default: the sweep's)")
      ->check(CLI::Range(0, 1000));
  report->add_flag("--no-figures", o.no_figures, "tables and CSV files only (no gnuplot needed)");
  add_db(report);

  auto* completion = app.add_subcommand("completion", "print a shell completion script");
  completion->add_option("shell", o.shell, "bash | zsh")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ExtrasError& e) {
    if (app.get_subcommands().empty() && argc > 1) {
      // The first word that is not an option: what the user meant as a command.
      std::string word;
      for (const auto& extra : app.remaining()) {
        if (!extra.empty() && extra[0] != '-') {
          word = extra;
          break;
        }
      }
      std::string names;
      for (const char* c : kCommands) names += (names.empty() ? "" : ", ") + std::string(c);
      std::cerr << "resweep: unknown command '" << word << "' (commands: " << names
                << "; resweep --help)\n";
      return kExitUsage;
    }
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (app.get_subcommands().empty()) {
    std::cerr << app.help();
    return kExitUsage;
  }
  if (*completion) {
    std::cout << (o.shell == "bash" ? BashCompletion() : ZshCompletion());
    return kExitOk;
  }
  if (!o.verbose) gpr_set_log_function(QuietGrpcLog);

  auto security = LoadClientSecurity(o.security, {"admin", "read"});
  if (!security.ok()) return Fail("options", security.status());
  Client client(o.address, o.timeout, std::move(*security));

  if (*submit) return Submit(o, &client);
  if (*status) return StatusCommand(o, &client);
  if (*runs) return Runs(o, &client);
  if (*run) return RunCommand(o, &client);
  if (*results) return Results(o, &client);
  if (*wait) return Wait(o, &client);
  if (*watch) return Watch(o, &client);
  if (*workers) return Workers(o, &client);
  if (*cancel) return Cancel(o, &client);
  if (*retry) return Retry(o, &client);
  if (*del) return Delete(o, &client);
  if (*report) return Report(o, &client);
  if (*plot) {
    // --x means a grid axis with --summary, the curves' x axis otherwise.
    if (o.summary) {
      o.summary_x = o.curves.x == "epoch" ? "" : o.curves.x;
    }
    return Plot(o, &client);
  }
  return kExitUsage;
}

}  // namespace resweep
