#include "coordinator/results_format.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <vector>

#include "common/stats.h"

namespace resweep {

namespace {

std::string Percent(double fraction) {
  if (fraction < 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", fraction * 100.0);
  return buf;
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

Summary FromProto(const v1::Stat& s) {
  Summary out;
  out.n = s.n();
  out.mean = s.mean();
  out.std = s.std();
  out.min = s.min();
  out.max = s.max();
  return out;
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

// Index of the cell with the lowest mean last-K error (with at least one run).
int BestCell(const v1::GetResultsResponse& r) {
  int best = -1;
  for (int i = 0; i < r.cells_size(); ++i) {
    const auto& s = r.cells(i).last_k_test_error();
    if (s.n() == 0) continue;
    if (best < 0 || s.mean() < r.cells(best).last_k_test_error().mean()) best = i;
  }
  return best;
}

std::string PValueVersusBest(const v1::GetResultsResponse& r, int i, int best) {
  if (best < 0 || i == best) return best == i ? "best" : "-";
  const double p = WelchTTestPValue(FromProto(r.cells(i).last_k_test_error()),
                                    FromProto(r.cells(best).last_k_test_error()));
  if (p < 0) return "-";
  return p < 0.001 ? "<0.001" : Fixed(p, "%.3f");
}

}  // namespace

StatusOr<std::string> FormatResults(const v1::GetResultsResponse& r, const std::string& format) {
  const std::string k = std::to_string(r.last_k());
  const int best = BestCell(r);
  if (format == "json") {
    std::string out;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    options.always_print_primitive_fields = true;
    auto st = google::protobuf::util::MessageToJsonString(r, &out, options);
    if (!st.ok()) return InternalError("json: " + st.ToString());
    return out;
  }
  if (format == "csv") {
    std::ostringstream out;
    out << "cell,runs_succeeded,runs_total,final_n,final_mean,final_std,final_min,final_max,"
           "lastk_k,lastk_n,lastk_mean,lastk_std,lastk_min,lastk_max,p_vs_best,params,"
           "paper_error,source_error\n";
    for (int i = 0; i < r.cells_size(); ++i) {
      const auto& c = r.cells(i);
      const auto& f = c.final_test_error();
      const auto& l = c.last_k_test_error();
      out << '"' << c.cell_label() << "\"," << c.runs_succeeded() << ',' << c.runs_total() << ','
          << f.n() << ',' << Fixed(f.mean(), "%.6f") << ',' << Fixed(f.std(), "%.6f") << ','
          << Fixed(f.min(), "%.6f") << ',' << Fixed(f.max(), "%.6f") << ',' << k << ',' << l.n()
          << ',' << Fixed(l.mean(), "%.6f") << ',' << Fixed(l.std(), "%.6f") << ','
          << Fixed(l.min(), "%.6f") << ',' << Fixed(l.max(), "%.6f") << ','
          << PValueVersusBest(r, i, best) << ',' << Fixed(c.mean_param_count(), "%.0f") << ','
          << (c.paper_test_error() < 0 ? "" : Fixed(c.paper_test_error(), "%.4f")) << ','
          << (c.source_test_error() < 0 ? "" : Fixed(c.source_test_error(), "%.6f")) << '\n';
    }
    return out.str();
  }
  if (format != "table" && format != "markdown") {
    return InvalidArgumentError("unknown format '" + format + "' (table, markdown, csv, json)");
  }

  const std::vector<std::string> header = {
      "cell",      "n",      "final err % (mean ± std)",
      "min",       "max",    "last-" + k + " err % (mean ± std)",
      "p vs best", "params", "paper %",
      "2016 run %"};
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < r.cells_size(); ++i) {
    const auto& c = r.cells(i);
    const auto& f = c.final_test_error();
    rows.push_back({c.cell_label(),
                    std::to_string(c.runs_succeeded()) + "/" + std::to_string(c.runs_total()),
                    MeanStd(f), f.n() ? Percent(f.min()) : "-", f.n() ? Percent(f.max()) : "-",
                    MeanStd(c.last_k_test_error()), PValueVersusBest(r, i, best),
                    c.mean_param_count() > 0 ? Fixed(c.mean_param_count() / 1e6, "%.3fM") : "-",
                    Percent(c.paper_test_error()), Percent(c.source_test_error())});
  }
  std::vector<size_t> widths(header.size());
  for (size_t j = 0; j < header.size(); ++j) {
    widths[j] = Width(header[j]);
    for (const auto& row : rows) widths[j] = std::max(widths[j], Width(row[j]));
  }
  std::ostringstream out;
  const auto& s = r.sweep();
  if (format == "markdown") {
    out << "### " << s.name() << " (" << s.sweep_id() << ", " << s.state() << ")\n\n";
    auto line = [&](const std::vector<std::string>& cells) {
      out << "|";
      for (size_t j = 0; j < cells.size(); ++j)
        out << " " << Pad(cells[j], widths[j], j > 0) << " |";
      out << "\n";
    };
    line(header);
    out << "|";
    for (size_t j = 0; j < header.size(); ++j) {
      out << (j == 0 ? ":" : "") << std::string(widths[j] + 1, '-') << (j > 0 ? ":" : "-") << "|";
    }
    out << "\n";
    for (const auto& row : rows) line(row);
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
  out << "\nfinal: test error after the last epoch; last-" << k << ": mean of the last " << k
      << " evaluated epochs per run; std: sample standard deviation across seeds;\n"
         "p vs best: Welch two-sided t-test of last-"
      << k << " errors against the best cell (small p: the difference is unlikely noise).\n";
  return out.str();
}

std::string FormatRuns(const v1::ListRunsResponse& runs) {
  std::vector<std::vector<std::string>> rows = {
      {"run", "cell", "seed", "state", "epoch", "attempt", "worker", "test err %", "note"}};
  for (const auto& r : runs.runs()) {
    rows.push_back({r.run_id(), r.cell_label(), std::to_string(r.seed()), r.state(),
                    std::to_string(r.epoch()) + "/" + std::to_string(r.epochs_total()),
                    std::to_string(r.attempt()), r.worker_id().empty() ? "-" : r.worker_id(),
                    Percent(r.last_test_error()), r.error()});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
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

std::string FormatSweepLine(const v1::SweepSummary& s) {
  const auto& c = s.counts();
  std::ostringstream out;
  out << s.sweep_id() << "  " << s.name() << "  " << s.state() << "  total " << c.total()
      << ": queued " << c.queued() << ", leased " << c.leased() << ", running " << c.running()
      << ", succeeded " << c.succeeded() << ", failed " << c.failed() << ", cancelled "
      << c.cancelled();
  return out.str();
}

}  // namespace resweep
