// A sweep's report (`resweep report SWEEP -o DIR`): DIR/README.md in the shape of the
// study's README (protocol, results table, a short reading, figures) and the CSV files
// beside it. Pure functions of the coordinator's answers, no I/O: the command fetches
// the answers, draws the figures (cli/plot.h) and writes the files.
//
// Every number comes from the answers as they are: the table is the one `resweep
// results` prints (cli/format.h), the reading uses the comparison GetResults carries
// (analysis/statistics.h); nothing here computes a statistic or a verdict of its own.
// The headline is always the mean over seeds of each run's last-K test error, never a
// best seed or a best epoch.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "resweep/v1/resweep.pb.h"

namespace resweep {

// One figure of the report, as the README shows it.
struct ReportFigure {
  std::string file;         // relative to the report's folder, e.g. "figures/train-loss.png"
  std::string vector_file;  // the same figure as SVG ("" = none)
  std::string title;
  std::string caption;  // what it shows and how it was computed
  std::string command;  // the `resweep plot` command that draws the same figure
};

struct ReportInput {
  v1::GetResultsResponse results;
  v1::GetCurvesResponse curves;  // every epoch of every run (max_points 0)
  // The resolved config (GetRun's config_json) of one run per cell, by cell label.
  std::map<std::string, std::string> cell_configs;
  std::vector<ReportFigure> figures;  // in the order the README shows them
  std::string command;                // the command that wrote the report
  // Flags that make `results` and `runs` read what the report read: " --last-k K" when
  // the report's K is not the sweep's own (else ""), " --db FILE" when it read a
  // database file (else ""), each a shell word. The Files section's commands carry them.
  std::string last_k_flag;
  std::string db_flag;
  std::string version;  // resweep's version
};

// The protocol in words, one markdown bullet per aspect (data, network, optimizer,
// schedule, epochs, seeds, trainer): a value every cell shares once, values that differ
// between cells listed (a grid axis by its values, a setting of some cells only with
// the cells that have it). INVALID_ARGUMENT when a config does not parse.
StatusOr<std::string> ProtocolMarkdown(const ReportInput& input);

// How many cells the reading names in one list (and how many seeds-needed lines it
// writes) before it says "... and N more (see results.csv)".
inline constexpr size_t kReadingListLimit = 20;

// The short generated reading of the table: the best cell, the cells the seeds cannot
// tell apart from it at 1 - alpha, the worse ones, and the seeds needed to separate
// each from the best (at the level GetResults planned them, see SeedsNeededLevelText).
std::string ReadingMarkdown(const v1::GetResultsResponse& results);

// DIR/README.md.
StatusOr<std::string> ReportReadme(const ReportInput& input);

// The K the last-K measure actually used for `last_k` (the request's or the sweep's):
// a run with fewer evaluated epochs than K averages all it has, so when every
// succeeded run of `curves` has the same min(last_k, evaluated epochs), that number;
// else (runs of different lengths, or none succeeded) last_k itself. The report says
// this K, not a K no run had ("--last-k 50" on a 10-epoch sweep is "last 10").
int LastKUsed(const v1::GetCurvesResponse& curves, int last_k);

// DIR/epochs.csv: one line per (run, epoch) of `curves`, errors as fractions, absent
// test values (epochs not evaluated) empty.
std::string EpochsCsv(const v1::GetCurvesResponse& curves);

}  // namespace resweep
