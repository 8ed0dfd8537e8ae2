// Figures of a sweep, drawn by gnuplot: this file turns the coordinator's answers
// (GetCurves, GetResults) into a gnuplot data file and a script that reads it. Pure
// functions, no I/O: the `plot` command writes both files and runs gnuplot on them.
//
// Learning curves (CurvesPlot): one line per cell, the mean over its seeds at each x;
// a band of +-1 sample std or the Student-t 95% CI of that mean (analysis::Describe),
// drawn clipped to the values the metric can take (errors 0..100%, the rest >= 0);
// thin per-seed lines on request; x tics at whole epochs; a legend of the cells up to
// kMaxLegendEntries of them. Which runs and x values make the mean:
//   - runs that failed or were cancelled are left out (their curves stop early), as
//     are runs without a value of the metric;
//   - each run's points are smoothed first (trailing mean of the last K points), then
//     cut to the x range;
//   - the mean is drawn only at x values EVERY remaining run of the cell has, so a
//     cell with a run still training ends where its shortest run ends (a note says so).
//
// Summary (SummaryPlot): a cell's mean last-K test error against one grid axis with
// Student-t 95% CI error bars (drawn clipped to 0..100%), one series per combination
// of the other axes' values, and the paper's Table 6 and the 2016 re-implementation's
// figures as markers where a cell has them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "resweep/v1/resweep.pb.h"

namespace resweep {

// Where the files go and how they are drawn; shared by both figure kinds.
struct PlotOutput {
  std::string data_path;  // the data file, as the script names it
  std::string out_path;   // the figure: .png, .svg or .pdf (picks gnuplot's terminal)
  std::string title;      // "" = none
  bool log_y = false;
};

struct CurvesOptions {
  std::string metric = "test_error";  // train_loss | train_error | test_error | test_loss | lr
  std::string x = "epoch";            // epoch | iteration
  int rolling = 1;                    // trailing mean over this many points (1 = raw)
  std::optional<double> x_min, x_max;
  // The zoom preset (`--xrange first`, the report's zoom figure): x from the start to
  // the end of epoch FirstEpochsEnd(longest run); replaces x_min and x_max.
  bool first_epochs = false;
  std::string band = "std";  // std | ci95 | none
  bool seeds = false;        // also a thin line per run
  PlotOutput output;
};

// One cell's curve as drawn.
struct CellCurve {
  std::string label;
  int runs = 0;                            // runs in the mean
  std::vector<double> x, mean, low, high;  // low == high == mean with band none
  struct Seed {
    std::string run_id;
    int64_t seed = 0;
    std::vector<double> x, y;  // smoothed and cut to the x range, not intersected
  };
  std::vector<Seed> seeds;  // the runs in the mean, in the response's order
};

// The most series a figure gives a legend entry each; past it, no legend at all.
inline constexpr size_t kMaxLegendEntries = 20;

struct PlotFiles {
  std::string data;
  std::string script;
  std::vector<std::string> notes;  // for the user: left-out runs, ragged cells, no legend
  bool legend_omitted = false;     // more than kMaxLegendEntries series: no legend drawn
};

// The note of a figure whose `series` series got no legend: where the labels are.
std::string LegendOmittedNote(size_t series);

// "A:B", "A:", ":B" -> bounds; INVALID_ARGUMENT naming --xrange otherwise.
StatusOr<std::pair<std::optional<double>, std::optional<double>>> ParseXRange(
    const std::string& text);

// The last epoch the zoom preset shows for runs of `longest_epoch` epochs: the first
// quarter of them, at least 2 (all of them when there are fewer).
int FirstEpochsEnd(int longest_epoch);

// Checks the options (metric, x, band, rolling, output extension), naming the bad one.
Status ValidateCurvesOptions(const CurvesOptions& options);

// The cells' curves in order of first appearance in `curves`; cells without any point
// to draw are left out (and named in *notes when given).
std::vector<CellCurve> CellCurves(const v1::GetCurvesResponse& curves, const CurvesOptions& options,
                                  std::vector<std::string>* notes = nullptr);

// Data + script for the learning-curve figure; INVALID_ARGUMENT for bad options,
// FAILED_PRECONDITION when no cell has a point to draw.
StatusOr<PlotFiles> CurvesPlot(const v1::GetCurvesResponse& curves, const CurvesOptions& options);

struct SummaryOptions {
  std::string x_axis;  // a grid axis (dotted path); "" = the first axis the cells have
  PlotOutput output;
};

// Data + script for the summary figure from GetResults' cells. With several series,
// each is drawn shifted a little along x (by a fixed amount, in order of the series,
// centred on the true value; the data file keeps the true x and the shifted one) so
// error bars at the same x do not hide each other; the tics stay at the true values.
StatusOr<PlotFiles> SummaryPlot(const v1::GetResultsResponse& results,
                                const SummaryOptions& options);

// A string as a gnuplot single-quoted literal.
std::string GnuplotQuote(const std::string& text);

}  // namespace resweep
