#include "cli/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "analysis/statistics.h"

namespace resweep {

namespace {

// Colours of the series, in order (matplotlib's tab10, readable on white).
const char* const kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr int kColourCount = sizeof(kColours) / sizeof(kColours[0]);

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Numbers in the data file: enough digits to round-trip what the plot needs.
std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

// The metric's value at a point in plotting units (errors in percent); nullopt when
// the point has none (test metrics of epochs that were not evaluated).
std::optional<double> MetricOf(const v1::CurvePoint& p, const std::string& metric) {
  if (metric == "train_loss") return p.train_loss();
  if (metric == "train_error") return 100 * p.train_error();
  if (metric == "test_error") {
    if (p.test_error() < 0) return std::nullopt;
    return 100 * p.test_error();
  }
  if (metric == "test_loss") {
    if (p.test_loss() < 0) return std::nullopt;
    return p.test_loss();
  }
  if (metric == "lr") return p.lr();
  return std::nullopt;
}

// The values the metric can take, in plotting units: errors are percentages, losses
// and learning rates are not negative. A band is clipped to it (a 95% CI of two seeds
// can span -100%..250% and squash the mean lines); the means are never changed.
std::pair<double, double> MetricRange(const std::string& metric) {
  if (metric == "train_error" || metric == "test_error") return {0, 100};
  return {0, std::numeric_limits<double>::infinity()};
}

// A tic step for whole numbers over `span`: the least of 1, 2, 5, 10, 20, 50, ... that
// gives at most about ten tics (epochs are whole; gnuplot's own choice can be 0.5).
double WholeTicStep(double span) {
  for (double decade = 1;; decade *= 10) {
    for (double m : {1.0, 2.0, 5.0}) {
      if (span / (m * decade) <= 10) return m * decade;
    }
  }
}

std::string AxisLabel(const std::string& metric) {
  if (metric == "train_loss") return "training loss";
  if (metric == "train_error") return "training error (%)";
  if (metric == "test_error") return "test error (%)";
  if (metric == "test_loss") return "test loss";
  return "learning rate";
}

// The terminal line for the output's extension.
StatusOr<std::string> Terminal(const std::string& out_path) {
  if (EndsWith(out_path, ".png")) {
    return std::string("set terminal pngcairo size 1200,750 noenhanced font 'DejaVu Sans,11'");
  }
  if (EndsWith(out_path, ".svg")) {
    return std::string(
        "set terminal svg size 960,600 dynamic noenhanced font 'DejaVu Sans,12' "
        "background rgb 'white'");
  }
  if (EndsWith(out_path, ".pdf")) {
    return std::string("set terminal pdfcairo size 8in,5in noenhanced font 'DejaVu Sans,10'");
  }
  return InvalidArgumentError("--out: '" + out_path +
                              "' must end in .png, .svg or .pdf (it picks the format)");
}

// The lines every script starts with.
StatusOr<std::string> Preamble(const PlotOutput& out) {
  auto terminal = Terminal(out.out_path);
  if (!terminal.ok()) return terminal.status();
  std::string s = "# Written by resweep plot; run `gnuplot THIS_FILE` to draw it again.\n";
  s += *terminal + "\n";
  s += "set output " + GnuplotQuote(out.out_path) + "\n";
  s += "set datafile missing '?'\n";
  if (!out.title.empty()) s += "set title " + GnuplotQuote(out.title) + "\n";
  s += "set grid\nset key outside right top\n";
  if (out.log_y) s += "set logscale y\n";
  return s;
}

// Trailing mean of the last `k` values (fewer at the start).
std::vector<double> Rolling(const std::vector<double>& v, int k) {
  if (k <= 1) return v;
  std::vector<double> out(v.size());
  double sum = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    sum += v[i];
    if (i >= static_cast<size_t>(k)) sum -= v[i - k];
    out[i] = sum / static_cast<double>(std::min<size_t>(i + 1, k));
  }
  return out;
}

bool InRange(double x, const CurvesOptions& o) {
  return (!o.x_min || x >= *o.x_min) && (!o.x_max || x <= *o.x_max);
}

// `o` with the zoom preset turned into an x range for these curves.
CurvesOptions Resolve(const v1::GetCurvesResponse& curves, const CurvesOptions& o) {
  if (!o.first_epochs) return o;
  CurvesOptions out = o;
  out.first_epochs = false;
  int longest = 0;
  for (const auto& run : curves.runs()) {
    for (const auto& p : run.points()) longest = std::max(longest, p.epoch());
  }
  const int end = FirstEpochsEnd(longest);
  out.x_min.reset();
  out.x_max = end;
  if (o.x == "iteration") {  // the iterations at the end of that epoch (the same in every run)
    out.x_max.reset();
    for (const auto& run : curves.runs()) {
      for (const auto& p : run.points()) {
        if (p.epoch() == end) out.x_max = static_cast<double>(p.iteration());
      }
    }
  }
  return out;
}

}  // namespace

std::string LegendOmittedNote(size_t series) {
  return "legend left out: " + std::to_string(series) + " series, more than " +
         std::to_string(kMaxLegendEntries) +
         "; each series' label is in the data file's comments and its numbers in the results "
         "table (resweep results, results.csv)";
}

int FirstEpochsEnd(int longest_epoch) {
  return std::min(longest_epoch, std::max(2, (longest_epoch + 3) / 4));
}

std::string GnuplotQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "''";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "'";
}

StatusOr<std::pair<std::optional<double>, std::optional<double>>> ParseXRange(
    const std::string& text) {
  const auto colon = text.find(':');
  const auto bad = [&] {
    return InvalidArgumentError("--xrange: '" + text +
                                "' is not A:B, A: or :B with numbers A < B (e.g. 0:20)");
  };
  if (colon == std::string::npos || text.find(':', colon + 1) != std::string::npos) return bad();
  std::pair<std::optional<double>, std::optional<double>> out;
  auto parse = [](const std::string& s, std::optional<double>* v) {
    if (s.empty()) return true;
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || !std::isfinite(d)) return false;
    *v = d;
    return true;
  };
  if (!parse(text.substr(0, colon), &out.first) || !parse(text.substr(colon + 1), &out.second)) {
    return bad();
  }
  if (out.first && out.second && *out.first >= *out.second) return bad();
  return out;
}

Status ValidateCurvesOptions(const CurvesOptions& o) {
  static const std::set<std::string> kMetrics = {"train_loss", "train_error", "test_error",
                                                 "test_loss", "lr"};
  if (!kMetrics.count(o.metric)) {
    return InvalidArgumentError("--metric: unknown metric '" + o.metric +
                                "' (train_loss, train_error, test_error, test_loss, lr)");
  }
  if (o.x != "epoch" && o.x != "iteration") {
    return InvalidArgumentError("--x: '" + o.x + "' is not epoch or iteration");
  }
  if (o.band != "std" && o.band != "ci95" && o.band != "none") {
    return InvalidArgumentError("--band: '" + o.band + "' is not std, ci95 or none");
  }
  if (o.rolling < 1) {
    return InvalidArgumentError("--rolling: must be >= 1 (1 = no smoothing), got " +
                                std::to_string(o.rolling));
  }
  auto terminal = Terminal(o.output.out_path);
  return terminal.ok() ? Status::Ok() : terminal.status();
}

std::vector<CellCurve> CellCurves(const v1::GetCurvesResponse& curves, const CurvesOptions& options,
                                  std::vector<std::string>* notes) {
  const CurvesOptions o = Resolve(curves, options);
  std::vector<CellCurve> cells;
  std::map<std::string, size_t> index;  // cell key -> position in cells
  std::vector<std::string> keys;
  std::map<std::string, int> left_out;  // cell key -> runs left out
  for (const auto& run : curves.runs()) {
    auto [it, inserted] = index.emplace(run.cell_key(), cells.size());
    if (inserted) {
      cells.push_back({});
      cells.back().label = run.cell_label();
      keys.push_back(run.cell_key());
    }
    CellCurve& cell = cells[it->second];
    if (run.state() == "failed" || run.state() == "cancelled") {
      ++left_out[run.cell_key()];
      continue;
    }
    std::vector<double> xs, ys;
    for (const auto& p : run.points()) {
      auto y = MetricOf(p, o.metric);
      if (!y) continue;
      xs.push_back(o.x == "iteration" ? static_cast<double>(p.iteration()) : p.epoch());
      ys.push_back(*y);
    }
    if (xs.empty()) continue;  // not started yet: nothing to average
    ys = Rolling(ys, o.rolling);
    CellCurve::Seed seed{run.run_id(), run.seed(), {}, {}};
    for (size_t i = 0; i < xs.size(); ++i) {
      if (!InRange(xs[i], o)) continue;
      seed.x.push_back(xs[i]);
      seed.y.push_back(ys[i]);
    }
    if (seed.x.empty()) continue;
    cell.seeds.push_back(std::move(seed));
  }
  std::vector<CellCurve> out;
  for (size_t c = 0; c < cells.size(); ++c) {
    CellCurve& cell = cells[c];
    if (int n = left_out[keys[c]]; n > 0 && notes) {
      notes->push_back("cell " + cell.label + ": " + std::to_string(n) +
                       " failed or cancelled run(s) left out of the mean");
    }
    if (cell.seeds.empty()) {
      if (notes) notes->push_back("cell " + cell.label + ": no points to draw, left out");
      continue;
    }
    // x values every run of the cell has, with each run's value there.
    std::map<double, std::vector<double>> at;
    for (const auto& s : cell.seeds) {
      for (size_t i = 0; i < s.x.size(); ++i) at[s.x[i]].push_back(s.y[i]);
    }
    size_t longest = 0;
    for (const auto& s : cell.seeds) longest = std::max(longest, s.x.size());
    for (const auto& [x, values] : at) {
      if (values.size() != cell.seeds.size()) continue;
      const auto d = analysis::Describe(values, analysis::kBootstrapSeed, /*resamples=*/1);
      cell.x.push_back(x);
      cell.mean.push_back(d.mean);
      if (o.band == "std") {
        cell.low.push_back(d.mean - d.std);
        cell.high.push_back(d.mean + d.std);
      } else if (o.band == "ci95") {
        cell.low.push_back(d.ci95.low);
        cell.high.push_back(d.ci95.high);
      } else {
        cell.low.push_back(d.mean);
        cell.high.push_back(d.mean);
      }
    }
    cell.runs = static_cast<int>(cell.seeds.size());
    if (notes && cell.x.size() < longest) {
      notes->push_back("cell " + cell.label + ": runs have different lengths (still running?); " +
                       "the mean is drawn at the " + std::to_string(cell.x.size()) +
                       " x values all " + std::to_string(cell.runs) + " runs have");
    }
    if (cell.x.empty()) {
      if (notes) notes->push_back("cell " + cell.label + ": no x value shared by all its runs");
      continue;
    }
    out.push_back(std::move(cell));
  }
  return out;
}

StatusOr<PlotFiles> CurvesPlot(const v1::GetCurvesResponse& curves, const CurvesOptions& options) {
  if (Status st = ValidateCurvesOptions(options); !st.ok()) return st;
  const CurvesOptions o = Resolve(curves, options);
  PlotFiles files;
  const auto cells = CellCurves(curves, o, &files.notes);
  if (cells.empty()) {
    return FailedPreconditionError("sweep " + curves.sweep().name() + ": no run has " + o.metric +
                                   " values to plot yet" +
                                   (o.x_min || o.x_max ? " in the --xrange" : ""));
  }
  // Data: one block per cell (x mean low high), then one per run with --seeds (x y);
  // blocks are separated by two blank lines, so the script picks them with `index`.
  std::ostringstream data;
  data << "# resweep plot: sweep " << curves.sweep().name() << " (" << curves.sweep().sweep_id()
       << "), metric " << o.metric << ", x " << o.x << ", rolling " << o.rolling << ", band "
       << o.band << "\n";
  const auto [floor, ceiling] = MetricRange(o.metric);
  if (o.band != "none") {
    data << "# the band (low, high) is clipped to what " << o.metric << " can be: [" << Num(floor)
         << ", " << Num(ceiling) << "]\n";
  }
  int block = 0;
  for (const auto& cell : cells) {
    if (block++ > 0) data << "\n\n";
    data << "# cell " << cell.label << ": mean of " << cell.runs << " run(s)\n# x mean low high\n";
    for (size_t i = 0; i < cell.x.size(); ++i) {
      data << Num(cell.x[i]) << ' ' << Num(cell.mean[i]) << ' '
           << Num(std::clamp(cell.low[i], floor, ceiling)) << ' '
           << Num(std::clamp(cell.high[i], floor, ceiling)) << '\n';
    }
  }
  std::vector<std::pair<int, int>> seed_blocks;  // (block, cell index)
  if (o.seeds) {
    for (size_t c = 0; c < cells.size(); ++c) {
      for (const auto& s : cells[c].seeds) {
        data << "\n\n# cell " << cells[c].label << ", run " << s.run_id << ", seed " << s.seed
             << "\n# x value\n";
        for (size_t i = 0; i < s.x.size(); ++i) data << Num(s.x[i]) << ' ' << Num(s.y[i]) << '\n';
        seed_blocks.push_back({block++, static_cast<int>(c)});
      }
    }
  }
  files.data = data.str();

  auto preamble = Preamble(o.output);
  if (!preamble.ok()) return preamble.status();
  std::string s = *preamble;
  s += "set xlabel " + GnuplotQuote(o.x) + "\n";
  s += "set ylabel " +
       GnuplotQuote(
           AxisLabel(o.metric) +
           (o.rolling > 1 ? ", rolling mean of " + std::to_string(o.rolling) + " points" : "")) +
       "\n";
  if (o.x_min || o.x_max) {
    s += "set xrange [" + (o.x_min ? Num(*o.x_min) : std::string("*")) + ":" +
         (o.x_max ? Num(*o.x_max) : std::string("*")) + "]\n";
  }
  if (o.x == "epoch") {  // tics at whole epochs only
    double low = std::numeric_limits<double>::infinity(), high = -low;
    for (const auto& cell : cells) {
      low = std::min(low, cell.x.front());
      high = std::max(high, cell.x.back());
    }
    s += "set xtics " + Num(WholeTicStep(high - low)) + "\n";
  }
  // Past kMaxLegendEntries cells a legend covers the plot and no colour can be told
  // from the next: none is drawn (the note says where the labels are).
  files.legend_omitted = cells.size() > kMaxLegendEntries;
  if (files.legend_omitted) {
    s += "set key off\n";
    files.notes.push_back(LegendOmittedNote(cells.size()));
  }
  const std::string file = GnuplotQuote(o.output.data_path);
  std::vector<std::string> parts;
  // Bands first, so every line is drawn over them.
  if (o.band != "none") {
    for (size_t c = 0; c < cells.size(); ++c) {
      parts.push_back(file + " index " + std::to_string(c) +
                      " using 1:3:4 with filledcurves fillcolor rgb " +
                      GnuplotQuote(kColours[c % kColourCount]) +
                      " fillstyle transparent solid 0.2 noborder notitle");
    }
  }
  for (const auto& [b, c] : seed_blocks) {
    parts.push_back(file + " index " + std::to_string(b) + " using 1:2 with lines linecolor rgb " +
                    GnuplotQuote(kColours[c % kColourCount]) + " linewidth 0.6 notitle");
  }
  for (size_t c = 0; c < cells.size(); ++c) {
    parts.push_back(file + " index " + std::to_string(c) + " using 1:2 with lines linecolor rgb " +
                    GnuplotQuote(kColours[c % kColourCount]) + " linewidth 2 " +
                    (files.legend_omitted
                         ? std::string("notitle")
                         : "title " + GnuplotQuote(cells[c].label +
                                                   " (n=" + std::to_string(cells[c].runs) + ")")));
  }
  s += "plot \\\n";
  for (size_t i = 0; i < parts.size(); ++i) {
    s += "  " + parts[i] + (i + 1 < parts.size() ? ", \\\n" : "\n");
  }
  files.script = std::move(s);
  return files;
}

StatusOr<PlotFiles> SummaryPlot(const v1::GetResultsResponse& results,
                                const SummaryOptions& options) {
  std::vector<const v1::CellResult*> cells;
  std::map<std::string, std::set<std::string>> axes;  // axis -> distinct values
  for (const auto& c : results.cells()) {
    if (c.last_k_test_error().n() == 0) continue;
    cells.push_back(&c);
    for (const auto& [k, v] : c.params()) axes[k].insert(v);
  }
  if (cells.empty()) {
    return FailedPreconditionError("sweep " + results.sweep().name() +
                                   ": no cell has a succeeded run yet");
  }
  // Each cell's grid values. A sweep without a grid (one cell, repeated seeds) is drawn
  // against the pseudo-axis "cell", whose value is the cell's label: one CI bar.
  std::map<const v1::CellResult*, std::map<std::string, std::string>> params_of;
  const bool by_label = axes.empty() && options.x_axis.empty();
  for (const auto* c : cells) {
    params_of[c] = by_label
                       ? std::map<std::string, std::string>{{"cell", c->cell_label()}}
                       : std::map<std::string, std::string>(c->params().begin(), c->params().end());
    if (by_label) axes["cell"].insert(c->cell_label());
  }
  std::string x_axis = options.x_axis;
  if (x_axis.empty()) {
    // The axis with the most values (the first by name among equals).
    size_t most = 0;
    for (const auto& [k, values] : axes) {
      if (values.size() > most) {
        most = values.size();
        x_axis = k;
      }
    }
  }
  if (!axes.count(x_axis)) {
    std::string names;
    for (const auto& [k, v] : axes) names += (names.empty() ? "" : ", ") + k;
    return InvalidArgumentError(
        "--x: '" + x_axis + "' is not a grid axis of sweep " + results.sweep().name() +
        (names.empty() ? " (it has no grid axes)" : " (axes: " + names + ")"));
  }
  // x positions: the values themselves when all are numbers, else 0, 1, ... in order of
  // first appearance with the values as tick labels.
  bool numeric = true;
  for (const auto& v : axes[x_axis]) {
    char* end = nullptr;
    std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size()) numeric = false;
  }
  // Cells without a value of the axis (none in a full grid) cannot be placed.
  cells.erase(std::remove_if(cells.begin(), cells.end(),
                             [&](const auto* c) { return !params_of[c].count(x_axis); }),
              cells.end());
  std::map<std::string, int> position;
  for (const auto* c : cells) position.emplace(params_of[c].at(x_axis), position.size());
  auto x_of = [&](const v1::CellResult& c) {
    const std::string& v = params_of[&c].at(x_axis);
    return numeric ? std::strtod(v.c_str(), nullptr) : static_cast<double>(position[v]);
  };
  // Series: one per combination of the other axes' values, in order of first appearance.
  std::vector<std::string> series_names;
  std::map<std::string, std::vector<const v1::CellResult*>> series;
  for (const auto* c : cells) {
    std::string name;
    for (const auto& [k, v] : params_of[c]) {
      if (k != x_axis) name += (name.empty() ? "" : ", ") + k + "=" + v;
    }
    if (name.empty()) name = "mean of last " + std::to_string(results.last_k()) + " epochs";
    if (!series.count(name)) series_names.push_back(name);
    series[name].push_back(c);
  }
  std::ostringstream data;
  data << "# resweep plot --summary: sweep " << results.sweep().name() << " ("
       << results.sweep().sweep_id() << "), test error (%) of the last " << results.last_k()
       << " epochs against " << x_axis << "; the 95% CI clipped to [0, 100]\n";
  int block = 0;
  auto label_column = [&](const v1::CellResult& c) {
    if (numeric) return std::string();
    std::string v = params_of[&c].at(x_axis);
    std::replace(v.begin(), v.end(), '"', '\'');
    return " \"" + v + "\"";
  };
  // Series side by side: series i of S is drawn at x + (i - (S - 1) / 2) * step, step
  // 1.2% of the x span (6% of the distance between names), so the error bars of cells
  // at the same x are all visible.
  double step = 0;
  if (series_names.size() > 1) {
    double low = 0, high = 0;
    for (size_t i = 0; i < cells.size(); ++i) {
      low = i ? std::min(low, x_of(*cells[i])) : x_of(*cells[i]);
      high = i ? std::max(high, x_of(*cells[i])) : x_of(*cells[i]);
    }
    step = numeric ? 0.012 * (high > low ? high - low : 1.0) : 0.06;
  }
  for (size_t i = 0; i < series_names.size(); ++i) {
    const std::string& name = series_names[i];
    const double shift = (static_cast<double>(i) - (series_names.size() - 1) / 2.0) * step;
    auto& members = series[name];
    std::sort(members.begin(), members.end(),
              [&](const auto* a, const auto* b) { return x_of(*a) < x_of(*b); });
    if (block++ > 0) data << "\n\n";
    data << "# series " << name;
    if (shift != 0)
      data << " (drawn at x " << (shift < 0 ? "- " : "+ ") << Num(std::abs(shift)) << ")";
    data << "\n# x mean ci95_low ci95_high n" << (numeric ? "" : " label") << "\n";
    for (const auto* c : members) {
      const auto& st = c->last_k_test_error();
      // The bars clipped to [0, 100]% (the tables keep the interval as computed).
      data << Num(x_of(*c) + shift) << ' ' << Num(100 * st.mean()) << ' '
           << Num(std::clamp(100 * st.ci95_low(), 0.0, 100.0)) << ' '
           << Num(std::clamp(100 * st.ci95_high(), 0.0, 100.0)) << ' ' << st.n() << label_column(*c)
           << '\n';
    }
  }
  // The published figures: one block each, so each gets one legend entry.
  auto reference_block = [&](const char* what, double (v1::CellResult::*field)() const) {
    std::string rows;
    for (const auto* c : cells) {
      if ((c->*field)() >= 0) rows += Num(x_of(*c)) + ' ' + Num(100 * (c->*field)()) + '\n';
    }
    if (rows.empty()) return -1;
    data << "\n\n# " << what << "\n# x test_error\n" << rows;
    return block++;
  };
  const int paper = reference_block("paper, Table 6", &v1::CellResult::paper_test_error);
  const int source = reference_block("2016 single run", &v1::CellResult::source_test_error);
  PlotFiles files;
  files.data = data.str();
  files.legend_omitted = series_names.size() > kMaxLegendEntries;
  if (files.legend_omitted) files.notes.push_back(LegendOmittedNote(series_names.size()));

  auto preamble = Preamble(options.output);
  if (!preamble.ok()) return preamble.status();
  std::string s = *preamble;
  s += "set xlabel " + GnuplotQuote(x_axis) + "\n";
  s += "set ylabel " +
       GnuplotQuote("test error (%), mean of the last " + std::to_string(results.last_k()) +
                    " epochs, 95% CI") +
       "\n";
  s += "set offsets graph 0.05, graph 0.05, 0, 0\n";
  // A tic at each value of the axis (at its true x: the series are drawn beside it),
  // none between.
  std::string tics;
  for (const auto& [value, at] : position) {
    tics += (tics.empty() ? "" : ", ") + (numeric ? value : GnuplotQuote(value) + " " + Num(at));
  }
  s += "set xtics (" + tics + ")\n";
  const std::string file = GnuplotQuote(options.output.data_path);
  std::vector<std::string> parts;
  for (size_t i = 0; i < series_names.size(); ++i) {
    parts.push_back(
        file + " index " + std::to_string(i) + " using 1:2:3:4" +
        " with yerrorlines linecolor rgb " + GnuplotQuote(kColours[i % kColourCount]) +
        " linewidth 2 pointtype 7 pointsize 0.8 " +
        (files.legend_omitted ? std::string("notitle") : "title " + GnuplotQuote(series_names[i])));
  }
  if (paper >= 0) {
    parts.push_back(file + " index " + std::to_string(paper) +
                    " using 1:2 with points linecolor rgb 'black' pointtype 4 pointsize 1.5 "
                    "title 'paper (Table 6)'");
  }
  if (source >= 0) {
    parts.push_back(file + " index " + std::to_string(source) +
                    " using 1:2 with points linecolor rgb 'black' pointtype 2 pointsize 1.5 "
                    "title '2016 single run'");
  }
  s += "plot \\\n";
  for (size_t i = 0; i < parts.size(); ++i) {
    s += "  " + parts[i] + (i + 1 < parts.size() ? ", \\\n" : "\n");
  }
  files.script = std::move(s);
  return files;
}

}  // namespace resweep
