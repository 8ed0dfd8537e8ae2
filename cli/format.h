// Renders what the coordinator answers for people (table, markdown) and programs
// (csv, json). Every renderer works on the protobuf responses, so output from a
// coordinator and from a database file read offline (--db) is identical.
//
// JSON conventions (docs/cli.md): numbers are numbers, a number that does not exist
// (no run finished, no published figure, nothing observed yet) is null, error rates
// are fractions in 0..1 (the key "error_unit" says so), times are Unix milliseconds
// or seconds as their key names say.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "resweep/v1/resweep.pb.h"

namespace resweep {

// format: table | markdown | csv | json. Error rates print as percentages in
// table/markdown and as fractions in csv/json (the csv header names the unit).
StatusOr<std::string> FormatResults(const v1::GetResultsResponse& results,
                                    const std::string& format);

// The results table as `results` prints it (table and markdown): a header and one row
// per cell, in the response's order, every number as printed (errors in percent).
struct ResultsTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};
ResultsTable MakeResultsTable(const v1::GetResultsResponse& results);
// A markdown pipe table: the first column left-aligned, the others right-aligned.
std::string MarkdownTable(const ResultsTable& table);
// What the columns of the results table mean (printed under it).
std::string ResultsLegend(const v1::GetResultsResponse& results);

// The significance level every seeds_needed of `results` was planned at (its
// seeds_needed_alpha; alpha from a coordinator that did not send one).
double SeedsNeededAlpha(const v1::GetResultsResponse& results);
// The cells tested against the best (testable, not the best itself).
int ComparisonsWithBest(const v1::GetResultsResponse& results);
// That level in words: "alpha 0.05", or "alpha 0.05/12 = 0.0042 (Bonferroni over the 12
// cells tested against the best)".
std::string SeedsNeededLevelText(const v1::GetResultsResponse& results);

// format: table | json | csv.
StatusOr<std::string> FormatRuns(const v1::ListRunsResponse& runs, const std::string& format);

// Writes a list of runs to `out` page by page, as the pages arrive. For json and csv
// the whole is exactly what FormatRuns gives for all the runs in one response (json
// one document, closed by Finish); a table takes its column widths from the first
// page and widens them only if a later page needs more.
class RunsWriter {
 public:
  // INVALID_ARGUMENT for a format other than table, json or csv.
  [[nodiscard]] static StatusOr<RunsWriter> Make(const std::string& format, std::ostream* out);

  void Write(const v1::ListRunsResponse& page);
  // Ends the list (the table's header alone, or an empty json list, when no run
  // came); later calls of either do nothing.
  void Finish();

 private:
  RunsWriter(std::string format, std::ostream* out) : format_(std::move(format)), out_(out) {}

  std::string format_;
  std::ostream* out_;
  bool started_ = false;  // something was written (json: a run)
  bool finished_ = false;
  std::vector<size_t> widths_;  // table: the columns' widths so far
};
// One sweep's line: counts per state, epoch progress and ETA.
std::string FormatSweepLine(const v1::SweepSummary& sweep);
// `running` (may be null) adds a line per leased or running run under the sweep.
// One line per quarantined worker (why, and for how long); "" when none is.
std::string FormatQuarantines(const v1::ListWorkersResponse& workers);

StatusOr<std::string> FormatSweeps(const v1::ListSweepsResponse& sweeps,
                                   const v1::ListRunsResponse* running, const std::string& format);
StatusOr<std::string> FormatWorkers(const v1::ListWorkersResponse& workers,
                                    const std::string& format);
StatusOr<std::string> FormatRun(const v1::GetRunResponse& run, const std::string& format);

// Progress of one grid cell for `resweep watch`: its runs' epochs and states.
struct CellProgress {
  int64_t epochs_done = 0;
  int64_t epochs_total = 0;
  int runs_total = 0;
  int runs_running = 0;   // leased or running
  int runs_finished = 0;  // succeeded, failed or cancelled
  int runs_failed = 0;
};
// One frame of `resweep watch`: the sweep's line, a progress bar per cell (cells in
// the results' order; `cells` keyed by cell label; a cell missing from it shows its
// runs from `results` alone) and the results table. `width` is the terminal's.
std::string FormatWatchFrame(const v1::SweepSummary& sweep, const v1::GetResultsResponse& results,
                             const std::map<std::string, CellProgress>& cells, int width);

// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
std::string CsvField(const std::string& s);

// "45 s", "12 min", "3.5 h", "2.1 d".
std::string FormatDuration(double seconds);

}  // namespace resweep
