#include "cli/format.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <sstream>
#include <vector>

namespace resweep {

namespace {

std::string Percent(double fraction) {
  if (fraction < 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", fraction * 100.0);
  return buf;
}

// A count as people write it: 1234567 -> "1,234,567".
std::string Thousands(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

std::string MeanStd(const v1::Stat& s) {
  if (s.n() == 0) return "-";
  if (s.n() == 1) return Percent(s.mean());
  return Percent(s.mean()) + " ± " + Percent(s.std());
}

std::string Fixed(double v, const char* fmt) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

// Display width of UTF-8 text (counts code points; "±" is one column).
size_t Width(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s) w += (c & 0xc0) != 0x80;
  return w;
}

std::string Pad(const std::string& s, size_t width, bool right) {
  const size_t w = Width(s);
  if (w >= width) return s;
  return right ? std::string(width - w, ' ') + s : s + std::string(width - w, ' ');
}

std::string MeanCi(const v1::Stat& s) {
  if (s.n() == 0) return "-";
  if (s.n() == 1) return Percent(s.mean());
  return Percent(s.mean()) + " ± " + Percent((s.ci95_high() - s.ci95_low()) / 2);
}

std::string PValueText(double p) {
  if (p < 0) return "-";
  return p < 0.001 ? "<0.001" : Fixed(p, "%.3f");
}

// The cell against the best: best, ≈ best (cannot be told apart at alpha), worse, or
// ? (fewer than two seeds on one side: no test).
std::string Verdict(const v1::CellResult& c) {
  const auto& v = c.comparison();
  if (v.is_best()) return "best";
  if (!v.testable()) return c.last_k_test_error().n() ? "?" : "-";
  return v.indistinguishable_from_best() ? "≈ best" : "worse";
}

std::string ProbabilityText(const v1::CellComparison& v) {
  if (!v.has_probability()) return "-";
  return Fixed(v.probability_better(), "%.2f") + " [" + Fixed(v.probability_better_low(), "%.2f") +
         ", " + Fixed(v.probability_better_high(), "%.2f") + "]";
}

using nlohmann::json;

// A fraction or count that may not exist: null when `present` is false.
json Maybe(bool present, double value) { return present ? json(value) : json(nullptr); }

json StatJson(const v1::Stat& s) {
  const bool any = s.n() > 0, spread = s.n() > 1;
  return json{{"n", s.n()},
              {"mean", Maybe(any, s.mean())},
              {"std", Maybe(spread, s.std())},
              {"sem", Maybe(spread, s.sem())},
              {"ci95", spread ? json{s.ci95_low(), s.ci95_high()} : json(nullptr)},
              {"bootstrap_ci95",
               spread ? json{s.bootstrap_ci95_low(), s.bootstrap_ci95_high()} : json(nullptr)},
              {"median", Maybe(any, s.median())},
              {"q1", Maybe(any, s.q1())},
              {"q3", Maybe(any, s.q3())},
              {"iqr", Maybe(any, s.q3() - s.q1())},
              {"iqm", Maybe(any, s.iqm())},
              {"min", Maybe(any, s.min())},
              {"max", Maybe(any, s.max())},
              {"values", json(std::vector<double>(s.values().begin(), s.values().end()))}};
}

json ComparisonJson(const v1::CellComparison& v) {
  const bool poi = v.has_probability(), tested = v.testable() && !v.is_best();
  return json{{"is_best", v.is_best()},
              {"testable", v.testable()},
              {"welch_t", Maybe(tested, v.welch_t())},
              {"welch_dof", Maybe(tested, v.welch_dof())},
              {"p_welch", Maybe(tested, v.p_welch())},
              {"p_holm", Maybe(tested, v.p_holm())},
              {"indistinguishable_from_best", v.indistinguishable_from_best()},
              {"probability_better", Maybe(poi, v.probability_better())},
              {"probability_better_ci95",
               poi ? json{v.probability_better_low(), v.probability_better_high()} : json(nullptr)},
              {"seeds_needed", v.seeds_needed() > 0 ? json(v.seeds_needed()) : json(nullptr)}};
}

json CountsJson(const v1::RunCounts& c) {
  return json{{"queued", c.queued()},       {"leased", c.leased()}, {"running", c.running()},
              {"succeeded", c.succeeded()}, {"failed", c.failed()}, {"cancelled", c.cancelled()},
              {"total", c.total()}};
}

json SweepJson(const v1::SweepSummary& s) {
  return json{{"sweep_id", s.sweep_id()},
              {"name", s.name()},
              {"state", s.state()},
              {"cancel_requested", s.cancel_requested()},
              {"archived", s.archived()},
              {"created_unix_ms", s.created_unix_ms()},
              {"counts", CountsJson(s.counts())},
              {"last_k", s.last_k()},
              {"epochs_done", s.epochs_done()},
              {"epochs_total", s.epochs_total()},
              {"mean_epoch_seconds", Maybe(s.mean_epoch_seconds() > 0, s.mean_epoch_seconds())},
              {"eta_seconds", Maybe(s.eta_seconds() >= 0, s.eta_seconds())}};
}

json RunJson(const v1::RunInfo& r) {
  return json{{"run_id", r.run_id()},
              {"sweep_id", r.sweep_id()},
              {"cell", r.cell_label()},
              {"seed", r.seed()},
              {"state", r.state()},
              {"attempt", r.attempt()},
              {"worker_id", r.worker_id().empty() ? json(nullptr) : json(r.worker_id())},
              {"epoch", r.epoch()},
              {"epochs_total", r.epochs_total()},
              {"last_test_error", Maybe(r.last_test_error() >= 0, r.last_test_error())},
              {"error", r.error().empty() ? json(nullptr) : json(r.error())},
              {"param_count", r.param_count() > 0 ? json(r.param_count()) : json(nullptr)},
              {"checkpoint_epoch", r.checkpoint_epoch()}};
}

// Grid values as JSON values: numbers and booleans typed, everything else a string.
json TypedParams(const google::protobuf::Map<std::string, std::string>& params) {
  json out = json::object();
  for (const auto& [axis, label] :
       std::map<std::string, std::string>(params.begin(), params.end())) {
    json value = json::parse(label, nullptr, /*allow_exceptions=*/false);
    out[axis] = value.is_number() || value.is_boolean() ? value : json(label);
  }
  return out;
}

std::string Dump(const json& j) { return j.dump(2) + "\n"; }

std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(rows.empty() ? 0 : rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t j = 0; j < row.size(); ++j) widths[j] = std::max(widths[j], Width(row[j]));
  }
  std::ostringstream out;
  for (const auto& row : rows) {
    for (size_t j = 0; j < row.size(); ++j) {
      out << (j ? "  " : "") << (j + 1 == row.size() ? row[j] : Pad(row[j], widths[j], false));
    }
    out << "\n";
  }
  return out.str();
}

std::string Timestamp(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

Status CheckFormat(const std::string& format, std::initializer_list<const char*> allowed) {
  std::string names;
  for (const char* a : allowed) {
    if (format == a) return Status::Ok();
    names += (names.empty() ? "" : ", ") + std::string(a);
  }
  return InvalidArgumentError("unknown format '" + format + "' (" + names + ")");
}

}  // namespace

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string FormatDuration(double seconds) {
  if (seconds < 0) return "?";
  if (seconds < 90) return Fixed(seconds, "%.0f s");
  if (seconds < 90 * 60) return Fixed(seconds / 60, "%.0f min");
  if (seconds < 36 * 3600) return Fixed(seconds / 3600, "%.1f h");
  return Fixed(seconds / 86400, "%.1f d");
}

ResultsTable MakeResultsTable(const v1::GetResultsResponse& r) {
  const std::string k = std::to_string(r.last_k());
  ResultsTable table;
  table.header = {"cell",
                  "n",
                  "last-" + k + " err % (mean ± 95% CI)",
                  "std",
                  "vs best",
                  "p (Holm)",
                  "P(better) [95% CI]",
                  "seeds for 80%",
                  "final err % (mean ± std)",
                  "params",
                  "paper %",
                  "2016 run %"};
  for (int i = 0; i < r.cells_size(); ++i) {
    const auto& c = r.cells(i);
    const auto& l = c.last_k_test_error();
    const auto& v = c.comparison();
    table.rows.push_back(
        {c.cell_label(), std::to_string(c.runs_succeeded()) + "/" + std::to_string(c.runs_total()),
         MeanCi(l), l.n() > 1 ? Percent(l.std()) : "-", Verdict(c),
         v.testable() && !v.is_best() ? PValueText(v.p_holm()) : "-", ProbabilityText(v),
         v.seeds_needed() > 0 ? Thousands(v.seeds_needed()) : "-", MeanStd(c.final_test_error()),
         c.mean_param_count() > 0 ? Fixed(c.mean_param_count() / 1e6, "%.3fM") : "-",
         Percent(c.paper_test_error()), Percent(c.source_test_error())});
  }
  return table;
}

std::string MarkdownTable(const ResultsTable& table) {
  const auto& header = table.header;
  std::vector<size_t> widths(header.size());
  for (size_t j = 0; j < header.size(); ++j) {
    widths[j] = Width(header[j]);
    for (const auto& row : table.rows) widths[j] = std::max(widths[j], Width(row[j]));
  }
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& cells) {
    out << "|";
    for (size_t j = 0; j < cells.size(); ++j) out << " " << Pad(cells[j], widths[j], j > 0) << " |";
    out << "\n";
  };
  line(header);
  out << "|";
  for (size_t j = 0; j < header.size(); ++j) {
    out << (j == 0 ? ":" : "") << std::string(widths[j] + 1, '-') << (j > 0 ? ":" : "-") << "|";
  }
  out << "\n";
  for (const auto& row : table.rows) line(row);
  return out.str();
}

double SeedsNeededAlpha(const v1::GetResultsResponse& r) {
  if (r.seeds_needed_alpha() > 0) return r.seeds_needed_alpha();
  return r.alpha() > 0 ? r.alpha() : 0.05;
}

int ComparisonsWithBest(const v1::GetResultsResponse& r) {
  int m = 0;
  for (const auto& c : r.cells()) m += c.comparison().testable() && !c.comparison().is_best();
  return m;
}

std::string SeedsNeededLevelText(const v1::GetResultsResponse& r) {
  const double alpha = r.alpha() > 0 ? r.alpha() : 0.05;
  const double level = SeedsNeededAlpha(r);
  const int m = ComparisonsWithBest(r);
  if (level >= alpha || m <= 1) return "alpha " + Fixed(level, "%.3g");
  return "alpha " + Fixed(alpha, "%.2g") + "/" + Thousands(m) + " = " + Fixed(level, "%.3g") +
         " (Bonferroni over the " + Thousands(m) + " cells tested against the best)";
}

std::string ResultsLegend(const v1::GetResultsResponse& r) {
  const std::string k = std::to_string(r.last_k());
  std::ostringstream out;
  out << "last-" << k << ": per run, the mean test error of its last " << k
      << " evaluated epochs; mean ± the Student-t 95% confidence\n"
         "interval of the mean over seeds; std: sample standard deviation across seeds. vs best: "
         "'≈ best' when a\n"
         "Welch t-test against the best cell, Holm-adjusted across the sweep (p), cannot tell "
         "them apart at "
      << Fixed(r.alpha() > 0 ? r.alpha() : 0.05, "%.2g")
      << "; '?' with\n"
         "fewer than two seeds. P(better): the chance a seed of the cell beats a seed of the "
         "best ('-' with fewer\n"
         "than three seeds on either side). seeds for 80%: seeds per cell a Welch test would "
         "need to separate the cell\n"
         "from the best 80% of the time, given the spread seen, at "
      << SeedsNeededLevelText(r)
      << ".\n"
         "final: test error after the last epoch.\n";
  return out.str();
}

StatusOr<std::string> FormatResults(const v1::GetResultsResponse& r, const std::string& format) {
  const std::string k = std::to_string(r.last_k());
  if (format == "json") {
    json cells = json::array();
    for (int i = 0; i < r.cells_size(); ++i) {
      const auto& c = r.cells(i);
      const auto& v = c.comparison();
      cells.push_back(
          json{{"cell", c.cell_label()},
               {"params", TypedParams(c.params())},
               {"runs_total", c.runs_total()},
               {"runs_succeeded", c.runs_succeeded()},
               {"final_test_error", StatJson(c.final_test_error())},
               {"last_k_test_error", StatJson(c.last_k_test_error())},
               {"is_best", v.is_best()},
               {"p_vs_best", Maybe(v.testable() && !v.is_best(), v.p_welch())},
               {"comparison", ComparisonJson(v)},
               {"param_count", c.mean_param_count() > 0
                                   ? json(static_cast<int64_t>(std::llround(c.mean_param_count())))
                                   : json(nullptr)},
               {"dataset", c.dataset()},
               {"block", c.block()},
               {"layers", c.layers()},
               {"shortcut", c.shortcut()},
               {"paper_test_error", Maybe(c.paper_test_error() >= 0, c.paper_test_error())},
               {"source_test_error", Maybe(c.source_test_error() >= 0, c.source_test_error())}});
    }
    return Dump(
        json{{"sweep", SweepJson(r.sweep())},
             {"last_k", r.last_k()},
             {"error_unit", "fraction"},
             {"best_cell", r.best_cell() >= 0 ? json(r.best_cell()) : json(nullptr)},
             {"alpha", r.alpha()},
             {"p_vs_best_test", "Welch two-sided t-test of last-K test errors"},
             {"p_holm", "p_vs_best adjusted with Holm's method across the sweep's comparisons"},
             {"probability_better",
              "P(a seed of the cell has lower last-K error than a seed of the best cell), "
              "stratified bootstrap 95% interval"},
             {"seeds_needed_alpha", SeedsNeededAlpha(r)},
             {"seeds_needed",
              "seeds per cell for 80% power of a Welch test at seeds_needed_alpha against the best "
              "(alpha / the number of cells tested against it: Bonferroni, stricter than Holm)"},
             {"cells", cells}});
  }
  if (format == "csv") {
    std::ostringstream out;
    // Error columns are fractions (0..1): the _frac suffix says so. New columns are
    // appended, so scripts reading the first ones keep working.
    out << "cell,runs_succeeded,runs_total,final_n,final_mean_frac,final_std_frac,"
           "final_min_frac,final_max_frac,lastk_k,lastk_n,lastk_mean_frac,lastk_std_frac,"
           "lastk_min_frac,lastk_max_frac,is_best,p_vs_best,param_count,paper_error_frac,"
           "source_error_frac,lastk_sem_frac,lastk_ci95_low_frac,lastk_ci95_high_frac,"
           "lastk_median_frac,lastk_q1_frac,lastk_q3_frac,lastk_iqm_frac,"
           "lastk_bootstrap_ci95_low_frac,lastk_bootstrap_ci95_high_frac,p_holm,"
           "indistinguishable_from_best,probability_better,probability_better_low,"
           "probability_better_high,seeds_needed,lastk_values_frac\n";
    for (int i = 0; i < r.cells_size(); ++i) {
      const auto& c = r.cells(i);
      const auto& f = c.final_test_error();
      const auto& l = c.last_k_test_error();
      const auto& v = c.comparison();
      auto num = [](bool present, double x) { return present ? Fixed(x, "%.6f") : ""; };
      const bool tested = v.testable() && !v.is_best();
      auto p = [](bool present, double x) { return present ? Fixed(x, "%.6g") : ""; };
      std::string values;
      for (double x : l.values()) values += (values.empty() ? "" : ";") + Fixed(x, "%.6f");
      // The label always quoted (as it always was), its own quotes doubled (RFC 4180): a
      // section axis's label is JSON, full of quotes.
      std::string label = "\"";
      for (char ch : c.cell_label()) label += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      out << label << "\"," << c.runs_succeeded() << ',' << c.runs_total() << ',' << f.n() << ','
          << num(f.n() > 0, f.mean()) << ',' << num(f.n() > 1, f.std()) << ','
          << num(f.n() > 0, f.min()) << ',' << num(f.n() > 0, f.max()) << ',' << k << ',' << l.n()
          << ',' << num(l.n() > 0, l.mean()) << ',' << num(l.n() > 1, l.std()) << ','
          << num(l.n() > 0, l.min()) << ',' << num(l.n() > 0, l.max()) << ','
          << (v.is_best() ? "true" : "false") << ',' << p(tested, v.p_welch()) << ','
          << (c.mean_param_count() > 0 ? Fixed(c.mean_param_count(), "%.0f") : "") << ','
          << (c.paper_test_error() < 0 ? "" : Fixed(c.paper_test_error(), "%.4f")) << ','
          << (c.source_test_error() < 0 ? "" : Fixed(c.source_test_error(), "%.6f")) << ','
          << num(l.n() > 1, l.sem()) << ',' << num(l.n() > 1, l.ci95_low()) << ','
          << num(l.n() > 1, l.ci95_high()) << ',' << num(l.n() > 0, l.median()) << ','
          << num(l.n() > 0, l.q1()) << ',' << num(l.n() > 0, l.q3()) << ','
          << num(l.n() > 0, l.iqm()) << ',' << num(l.n() > 1, l.bootstrap_ci95_low()) << ','
          << num(l.n() > 1, l.bootstrap_ci95_high()) << ',' << p(tested, v.p_holm()) << ','
          << (v.testable() || v.is_best() ? (v.indistinguishable_from_best() ? "true" : "false")
                                          : "")
          << ',' << p(v.has_probability(), v.probability_better()) << ','
          << p(v.has_probability(), v.probability_better_low()) << ','
          << p(v.has_probability(), v.probability_better_high()) << ','
          << (v.seeds_needed() > 0 ? std::to_string(v.seeds_needed()) : "") << ',' << values
          << '\n';
    }
    return out.str();
  }
  if (format != "table" && format != "markdown") {
    return InvalidArgumentError("unknown format '" + format + "' (table, markdown, csv, json)");
  }

  const ResultsTable table = MakeResultsTable(r);
  const auto& header = table.header;
  const auto& rows = table.rows;
  std::vector<size_t> widths(header.size());
  for (size_t j = 0; j < header.size(); ++j) {
    widths[j] = Width(header[j]);
    for (const auto& row : rows) widths[j] = std::max(widths[j], Width(row[j]));
  }
  std::ostringstream out;
  const auto& s = r.sweep();
  if (format == "markdown") {
    out << "### " << s.name() << " (" << s.sweep_id() << ", " << s.state() << ")\n\n"
        << MarkdownTable(table);
  } else {
    out << "sweep " << s.name() << " (" << s.sweep_id() << "): " << s.state() << ", "
        << s.counts().succeeded() << "/" << s.counts().total() << " runs succeeded";
    if (s.counts().failed()) out << ", " << s.counts().failed() << " failed";
    out << "\n";
    auto line = [&](const std::vector<std::string>& cells) {
      for (size_t j = 0; j < cells.size(); ++j) {
        out << (j ? "  " : "") << Pad(cells[j], widths[j], j > 0);
      }
      out << "\n";
    };
    line(header);
    size_t total = 0;
    for (size_t w : widths) total += w + 2;
    out << std::string(total - 2, '-') << "\n";
    for (const auto& row : rows) line(row);
  }
  out << "\n" << ResultsLegend(r);
  return out.str();
}

namespace {

const std::vector<std::string> kRunsTableHeader = {
    "run", "cell", "seed", "state", "epoch", "attempt", "worker", "test err %", "note"};

std::vector<std::string> RunTableRow(const v1::RunInfo& r) {
  return {r.run_id(),
          r.cell_label(),
          std::to_string(r.seed()),
          r.state(),
          std::to_string(r.epoch()) + "/" + std::to_string(r.epochs_total()),
          std::to_string(r.attempt()),
          r.worker_id().empty() ? "-" : r.worker_id(),
          Percent(r.last_test_error()),
          r.error()};
}

// Error rates as fractions (the _frac suffix says so); absent values empty.
constexpr char kRunsCsvHeader[] =
    "run_id,sweep_id,cell,seed,state,attempt,worker_id,epoch,epochs_total,"
    "last_test_error_frac,error,param_count,checkpoint_epoch\n";

std::string RunCsvLine(const v1::RunInfo& r) {
  std::ostringstream out;
  out << CsvField(r.run_id()) << ',' << CsvField(r.sweep_id()) << ',' << CsvField(r.cell_label())
      << ',' << r.seed() << ',' << CsvField(r.state()) << ',' << r.attempt() << ','
      << CsvField(r.worker_id()) << ',' << r.epoch() << ',' << r.epochs_total() << ','
      << (r.last_test_error() >= 0 ? Fixed(r.last_test_error(), "%.6f") : "") << ','
      << CsvField(r.error()) << ',' << (r.param_count() > 0 ? std::to_string(r.param_count()) : "")
      << ',' << r.checkpoint_epoch() << '\n';
  return out.str();
}

}  // namespace

StatusOr<RunsWriter> RunsWriter::Make(const std::string& format, std::ostream* out) {
  RESWEEP_RETURN_IF_ERROR(CheckFormat(format, {"table", "json", "csv"}));
  return RunsWriter(format, out);
}

void RunsWriter::Write(const v1::ListRunsResponse& page) {
  if (finished_) return;
  if (format_ == "json") {
    // As Dump(json{{"error_unit", "fraction"}, {"runs", [...]}}), one run at a time.
    for (const auto& r : page.runs()) {
      *out_ << (started_ ? ",\n    " : "{\n  \"error_unit\": \"fraction\",\n  \"runs\": [\n    ");
      started_ = true;
      const std::string text = RunJson(r).dump(2);
      for (char c : text) {
        *out_ << c;
        if (c == '\n') *out_ << "    ";
      }
    }
    return;
  }
  if (format_ == "csv") {
    if (!started_) *out_ << kRunsCsvHeader;
    started_ = true;
    for (const auto& r : page.runs()) *out_ << RunCsvLine(r);
    return;
  }
  std::vector<std::vector<std::string>> rows;
  if (!started_) rows.push_back(kRunsTableHeader);
  for (const auto& r : page.runs()) rows.push_back(RunTableRow(r));
  if (widths_.empty()) widths_.assign(kRunsTableHeader.size(), 0);
  for (const auto& row : rows) {
    for (size_t j = 0; j < row.size(); ++j) widths_[j] = std::max(widths_[j], Width(row[j]));
  }
  started_ = true;
  for (const auto& row : rows) {
    for (size_t j = 0; j < row.size(); ++j) {
      *out_ << (j ? "  " : "") << (j + 1 == row.size() ? row[j] : Pad(row[j], widths_[j], false));
    }
    *out_ << "\n";
  }
}

void RunsWriter::Finish() {
  if (finished_) return;
  if (format_ == "json") {
    *out_ << (started_ ? "\n  ]\n}\n" : "{\n  \"error_unit\": \"fraction\",\n  \"runs\": []\n}\n");
  } else if (!started_) {
    Write(v1::ListRunsResponse());  // the header alone
  }
  finished_ = true;
}

StatusOr<std::string> FormatRuns(const v1::ListRunsResponse& runs, const std::string& format) {
  std::ostringstream out;
  RESWEEP_ASSIGN_OR_RETURN(RunsWriter writer, RunsWriter::Make(format, &out));
  writer.Write(runs);
  writer.Finish();
  return out.str();
}

std::string FormatSweepLine(const v1::SweepSummary& s) {
  const auto& c = s.counts();
  std::ostringstream out;
  out << s.sweep_id() << "  " << s.name() << "  " << s.state();
  if (s.cancel_requested() && s.state() == "active") out << " (cancel requested)";
  if (s.archived()) out << " (deleted)";
  out << "  runs " << c.total() << ": queued " << c.queued() << ", leased " << c.leased()
      << ", running " << c.running() << ", succeeded " << c.succeeded() << ", failed " << c.failed()
      << ", cancelled " << c.cancelled();
  if (s.epochs_total() > 0) {
    out << "  epochs " << s.epochs_done() << "/" << s.epochs_total() << " ("
        << Fixed(100.0 * s.epochs_done() / s.epochs_total(), "%.0f") << "%)";
  }
  if (s.state() == "active") {
    out << "  ETA " << (s.eta_seconds() >= 0 ? FormatDuration(s.eta_seconds()) : "unknown yet");
  }
  return out.str();
}

std::string FormatWatchFrame(const v1::SweepSummary& sweep, const v1::GetResultsResponse& results,
                             const std::map<std::string, CellProgress>& cells, int width) {
  std::ostringstream out;
  out << FormatSweepLine(sweep) << "\n\n";
  size_t label_width = 4;
  for (const auto& c : results.cells()) label_width = std::max(label_width, c.cell_label().size());
  // label, bar, then " 100%  25/25 runs done, 25 running, 25 failed" (about 48 columns)
  label_width = std::min<size_t>(label_width, static_cast<size_t>(std::max(12, width / 3)));
  const int bar_width = std::clamp(width - static_cast<int>(label_width) - 52, 10, 40);
  for (const auto& c : results.cells()) {
    CellProgress p;
    if (auto it = cells.find(c.cell_label()); it != cells.end()) {
      p = it->second;
    } else {
      p.runs_total = c.runs_total();
      p.runs_finished = c.runs_succeeded();
    }
    // Epochs where they are known, else runs.
    const double done = p.epochs_total > 0 ? static_cast<double>(p.epochs_done) / p.epochs_total
                        : p.runs_total > 0 ? static_cast<double>(p.runs_finished) / p.runs_total
                                           : 0.0;
    const int filled = static_cast<int>(done * bar_width + 1e-9);
    std::string label = c.cell_label();
    if (label.size() > label_width) label = label.substr(0, label_width - 1) + "~";
    out << label << std::string(label_width - label.size(), ' ') << " [" << std::string(filled, '#')
        << std::string(bar_width - filled, '.') << "] " << Fixed(100.0 * done, "%3.0f") << "%  "
        << p.runs_finished << "/" << p.runs_total << " runs done";
    if (p.runs_running > 0) out << ", " << p.runs_running << " running";
    if (p.runs_failed > 0) out << ", " << p.runs_failed << " failed";
    out << "\n";
  }
  out << "\n";
  if (auto table = FormatResults(results, "table"); table.ok()) out << *table;
  return out.str();
}

StatusOr<std::string> FormatSweeps(const v1::ListSweepsResponse& sweeps,
                                   const v1::ListRunsResponse* running, const std::string& format) {
  RESWEEP_RETURN_IF_ERROR(CheckFormat(format, {"table", "json"}));
  if (format == "json") {
    json list = json::array();
    for (const auto& s : sweeps.sweeps()) {
      json j = SweepJson(s);
      if (running) {
        json active = json::array();
        for (const auto& r : running->runs()) {
          if (r.sweep_id() == s.sweep_id()) active.push_back(RunJson(r));
        }
        j["active_runs"] = active;
      }
      list.push_back(j);
    }
    return Dump(json{{"sweeps", list}});
  }
  if (sweeps.sweeps_size() == 0) return std::string("no sweeps\n");
  std::ostringstream out;
  for (const auto& s : sweeps.sweeps()) {
    out << FormatSweepLine(s) << "\n";
    if (!running) continue;
    for (const auto& r : running->runs()) {
      if (r.sweep_id() != s.sweep_id()) continue;
      char line[512];
      std::snprintf(line, sizeof(line), "  %-40s seed %-3lld %-8s epoch %d/%d on %s",
                    r.cell_label().c_str(), static_cast<long long>(r.seed()), r.state().c_str(),
                    r.epoch(), r.epochs_total(), r.worker_id().c_str());
      out << line << "\n";
    }
  }
  return out.str();
}

namespace {

// "cuda:0 x4,cuda:1 x4": a worker's slots by device, in order, a count where a
// device has several.
std::string GroupDevices(const google::protobuf::RepeatedPtrField<std::string>& slots) {
  std::vector<std::pair<std::string, int>> groups;
  for (const auto& d : slots) {
    auto it =
        std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == d; });
    if (it == groups.end()) {
      groups.emplace_back(d, 1);
    } else {
      ++it->second;
    }
  }
  std::string out;
  for (const auto& [device, count] : groups) {
    out += (out.empty() ? "" : ",") + device + (count > 1 ? " x" + std::to_string(count) : "");
  }
  return out;
}

std::string QuarantineLeft(const v1::WorkerInfo& w) {
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  return FormatDuration(std::max<int64_t>(0, w.quarantined_until_unix_ms() - now_ms) / 1000.0);
}

}  // namespace

std::string FormatQuarantines(const v1::ListWorkersResponse& workers) {
  std::string out;
  for (const auto& w : workers.workers()) {
    if (w.quarantined_until_unix_ms() <= 0) continue;
    out += "worker " + w.worker_id() + " quarantined (no new runs) for " + QuarantineLeft(w) +
           " more: " + w.quarantine_reason() + "\n";
  }
  return out;
}

StatusOr<std::string> FormatWorkers(const v1::ListWorkersResponse& workers,
                                    const std::string& format) {
  RESWEEP_RETURN_IF_ERROR(CheckFormat(format, {"table", "json"}));
  if (format == "json") {
    json list = json::array();
    for (const auto& w : workers.workers()) {
      list.push_back(json{
          {"worker_id", w.worker_id()},
          {"name", w.name()},
          {"host", w.host()},
          {"devices", std::vector<std::string>(w.devices().begin(), w.devices().end())},
          {"slots", w.devices_size()},
          {"runs_held", std::vector<std::string>(w.runs_held().begin(), w.runs_held().end())},
          {"images_per_sec", w.images_per_sec()},
          {"registered_unix_ms", w.registered_unix_ms()},
          {"last_seen_unix_ms", w.last_seen_unix_ms()},
          {"heartbeat_age_seconds", w.heartbeat_age_seconds()},
          {"state", w.state()},
          {"consecutive_host_faults", w.consecutive_host_faults()},
          {"quarantine_level", w.quarantine_level()},
          {"quarantined_until_unix_ms",
           w.quarantined_until_unix_ms() > 0 ? json(w.quarantined_until_unix_ms()) : json(nullptr)},
          {"quarantine_reason",
           w.quarantine_reason().empty() ? json(nullptr) : json(w.quarantine_reason())}});
    }
    return Dump(json{{"workers", list}});
  }
  if (workers.workers_size() == 0) return std::string("no workers\n");
  std::vector<std::vector<std::string>> rows = {
      {"worker", "host", "state", "last seen", "slots", "devices", "images/s", "runs held"}};
  for (const auto& w : workers.workers()) {
    std::string devices, held;
    devices = GroupDevices(w.devices());
    for (const auto& r : w.runs_held()) held += (held.empty() ? "" : ",") + r;
    std::string state = w.state();
    if (w.quarantined_until_unix_ms() > 0) {
      state += ", quarantined " + QuarantineLeft(w) + " more";
    } else if (w.consecutive_host_faults() > 0) {
      state += ", " + std::to_string(w.consecutive_host_faults()) + " host fault(s)";
    }
    rows.push_back({w.worker_id(), w.host(), state,
                    FormatDuration(w.heartbeat_age_seconds()) + " ago",
                    std::to_string(w.runs_held_size()) + "/" + std::to_string(w.devices_size()),
                    devices, w.runs_held_size() > 0 ? Fixed(w.images_per_sec(), "%.0f") : "-",
                    held.empty() ? "-" : held});
  }
  return Table(rows);
}

StatusOr<std::string> FormatRun(const v1::GetRunResponse& r, const std::string& format) {
  RESWEEP_RETURN_IF_ERROR(CheckFormat(format, {"table", "json"}));
  const auto& run = r.run();
  if (format == "json") {
    json attempts = json::array();
    for (const auto& a : r.attempts()) {
      attempts.push_back(
          json{{"attempt", a.attempt()},
               {"worker_id", a.worker_id()},
               {"state", a.state()},
               {"started_unix_ms", a.started_unix_ms()},
               {"ended_unix_ms", a.ended_unix_ms() > 0 ? json(a.ended_unix_ms()) : json(nullptr)},
               {"reason", a.reason().empty() ? json(nullptr) : json(a.reason())},
               {"log_tail", a.log_tail().empty() ? json(nullptr) : json(a.log_tail())}});
    }
    json epochs = json::array();
    for (const auto& e : r.epochs()) {
      epochs.push_back(json{{"epoch", e.epoch()},
                            {"train_loss", e.train_loss()},
                            {"train_error", e.train_error()},
                            {"test_error", Maybe(e.test_error() >= 0, e.test_error())},
                            {"test_loss", Maybe(e.test_loss() >= 0, e.test_loss())},
                            {"lr", e.lr()},
                            {"seconds", e.seconds()},
                            {"images_per_sec", e.images_per_sec()}});
    }
    json config = json::parse(r.config_json(), nullptr, false);
    json out = RunJson(run);
    out["error_unit"] = "fraction";
    out["config"] = config.is_discarded() ? json(r.config_json()) : config;
    out["sweep_ids"] = std::vector<std::string>(r.sweep_ids().begin(), r.sweep_ids().end());
    out["failures"] = r.failures();
    out["max_attempts"] = r.max_attempts();
    out["attempts"] = attempts;
    out["epochs"] = epochs;
    return Dump(out);
  }
  std::ostringstream out;
  out << "run " << run.run_id() << "  " << run.cell_label() << "  seed " << run.seed() << "\n"
      << "state " << run.state() << ", epoch " << run.epoch() << "/" << run.epochs_total()
      << ", attempt " << run.attempt() << " (lost leases and retryable failures: " << r.failures()
      << " of " << r.max_attempts() << " allowed)";
  const bool finished =
      run.state() == "succeeded" || run.state() == "failed" || run.state() == "cancelled";
  if (run.checkpoint_epoch() > 0 && !finished) {
    out << ", checkpoint of epoch " << run.checkpoint_epoch();
  }
  out << "\n";
  if (!run.error().empty()) out << "error: " << run.error() << "\n";
  out << "sweeps:";
  for (const auto& id : r.sweep_ids()) out << " " << id;
  out << "\nconfig: " << r.config_json() << "\n\nattempts:\n";
  std::vector<std::vector<std::string>> rows = {
      {"  attempt", "worker", "state", "started", "ended", "reason"}};
  for (const auto& a : r.attempts()) {
    rows.push_back({"  " + std::to_string(a.attempt()), a.worker_id(), a.state(),
                    Timestamp(a.started_unix_ms()), Timestamp(a.ended_unix_ms()),
                    a.reason().empty() ? "-" : a.reason()});
  }
  out << Table(rows);
  for (const auto& a : r.attempts()) {
    if (a.log_tail().empty()) continue;
    out << "\ntrainer log of attempt " << a.attempt() << " (last lines):\n";
    std::istringstream lines(a.log_tail());
    for (std::string line; std::getline(lines, line);) out << "  | " << line << "\n";
  }
  out << "\nepochs:\n";
  std::vector<std::vector<std::string>> erows = {
      {"  epoch", "train loss", "train err %", "test err %", "lr", "seconds", "img/s"}};
  for (const auto& e : r.epochs()) {
    erows.push_back({"  " + std::to_string(e.epoch()), Fixed(e.train_loss(), "%.4f"),
                     Percent(e.train_error()), Percent(e.test_error()), Fixed(e.lr(), "%.4g"),
                     Fixed(e.seconds(), "%.2f"), Fixed(e.images_per_sec(), "%.0f")});
  }
  if (r.epochs_size() == 0) erows.push_back({"  (none yet)"});
  out << Table(erows);
  return out.str();
}

}  // namespace resweep
