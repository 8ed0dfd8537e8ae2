#include "cli/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>
#include <sstream>

#include "cli/format.h"
#include "common/run_config.h"
#include "common/run_config_json.h"

namespace resweep {

namespace {

std::string Fixed(double v, const char* fmt) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

// A number as a person writes it: 0.1, 1e-04 -> 0.0001, 40, 3000 -> 3,000.
std::string Number(double v) {
  if (v == std::floor(v) && std::abs(v) < 1e15) {
    std::string digits = Fixed(std::abs(v), "%.0f"), out;
    for (size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
      out += digits[i];
    }
    return (v < 0 ? "-" : "") + out;
  }
  return Fixed(v, "%.6g");
}

std::string Code(const std::string& s) { return "`" + s + "`"; }

std::string Join(const std::vector<std::string>& parts, const std::string& sep = ", ") {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

std::string Count(int64_t n) { return Number(static_cast<double>(n)); }

// "n seeds" with the noun in the singular for one.
std::string Seeds(int64_t n) { return Count(n) + (n == 1 ? " seed" : " seeds"); }

// The first kReadingListLimit of `parts` joined, then how many more there are: a sweep
// of a thousand cells must not list them all in every sentence (results.csv has them).
std::string JoinCapped(const std::vector<std::string>& parts) {
  if (parts.size() <= kReadingListLimit) return Join(parts);
  const std::vector<std::string> shown(parts.begin(), parts.begin() + kReadingListLimit);
  return Join(shown) + " ... and " + Count(static_cast<int64_t>(parts.size() - shown.size())) +
         " more (see results.csv)";
}

// One cell as the protocol sees it.
struct CellConfig {
  std::string label;
  std::map<std::string, std::string> params;  // grid axis -> value
  RunConfig config;
};

using Phrase = std::function<std::string(const RunConfig&)>;

// What `phrase` says of the cells: once when every cell says the same; else each
// different thing once, with which cells say it: by a grid axis's values when one
// axis decides it, else by the cells' labels.
std::string Vary(const std::vector<CellConfig>& cells, const Phrase& phrase) {
  std::vector<std::string> said;  // distinct phrases, in order of first appearance
  std::map<std::string, std::vector<const CellConfig*>> by;
  for (const auto& c : cells) {
    const std::string p = phrase(c.config);
    if (!by.count(p)) said.push_back(p);
    by[p].push_back(&c);
  }
  if (said.size() <= 1) return said.empty() ? "-" : said[0];
  // An axis decides the phrase when cells with the same value of it say the same.
  std::set<std::string> axes;
  for (const auto& c : cells) {
    for (const auto& [k, v] : c.params) axes.insert(k);
  }
  for (const auto& axis : axes) {
    std::map<std::string, std::string> phrase_of_value;
    bool decides = true;
    for (const auto& c : cells) {
      auto it = c.params.find(axis);
      if (it == c.params.end()) {
        decides = false;
        break;
      }
      auto [at, inserted] = phrase_of_value.emplace(it->second, phrase(c.config));
      if (!inserted && at->second != phrase(c.config)) decides = false;
    }
    if (!decides) continue;
    if (phrase_of_value.size() == said.size()) {
      return Join(said) + " (by " + Code(axis) + ")";
    }
    // Fewer phrases than values: a setting of some values only (an override).
    size_t largest = 0;
    for (size_t i = 1; i < said.size(); ++i) {
      if (by[said[i]].size() > by[said[largest]].size()) largest = i;
    }
    std::vector<std::string> parts;
    for (size_t i = 0; i < said.size(); ++i) {
      if (i == largest) continue;
      std::vector<std::string> values;
      for (const auto& [value, p] : phrase_of_value) {
        if (p == said[i]) values.push_back(value);
      }
      parts.push_back(said[i] + " for " + Code(axis) + " = " + Join(values));
    }
    parts.push_back(said[largest] + " otherwise");
    return Join(parts, "; ");
  }
  std::vector<std::string> parts;
  for (const auto& p : said) {
    std::vector<std::string> labels;
    for (const auto* c : by[p]) labels.push_back(Code(c->label));
    parts.push_back(p + " (" + Join(labels) + ")");
  }
  return Join(parts, "; ");
}

std::string DatasetName(const std::string& kind) {
  if (kind == "cifar10") return "CIFAR-10";
  if (kind == "fashion-mnist") return "Fashion-MNIST";
  return kind;
}

std::string Images(int64_t limit, const char* which) {
  return limit > 0 ? "the first " + Number(static_cast<double>(limit)) + " " + which + " images"
                   : std::string("all ") + which + " images";
}

std::string Preprocess(const std::string& p) {
  if (p == "per-channel") return "per-channel mean/std normalisation (training-set statistics)";
  if (p == "per-pixel-mean") return "per-pixel mean subtraction";
  if (p == "none") return "none";
  return p;
}

std::string Augmentation(const DatasetConfig& d) {
  std::vector<std::string> parts;
  if (d.augment_padding > 0) {
    parts.push_back("pad " + std::to_string(d.augment_padding) + " px and random crop");
  }
  if (d.augment_flip) parts.push_back("random horizontal flip");
  return parts.empty() ? "none" : Join(parts);
}

std::string Shortcut(const std::string& s) {
  if (s == "A") return "option-A shortcuts (identity, zero-padded where the shape changes)";
  if (s == "B") return "option-B shortcuts (1x1 projection where the shape changes)";
  return "shortcut " + s;
}

std::string Optimizer(const OptimizerConfig& o) {
  std::string s;
  if (o.name == "sgd") {
    s = "SGD, momentum " + Number(o.momentum) + (o.nesterov ? " (Nesterov)" : "");
  } else if (o.name == "rmsprop") {
    s = "RMSprop, alpha " + Number(o.alpha) + ", momentum " + Number(o.momentum) + ", eps " +
        Number(o.eps);
  } else if (o.name == "adam" || o.name == "adamw") {
    s = std::string(o.name == "adam" ? "Adam" : "AdamW") + ", betas " + Number(o.beta1) + "/" +
        Number(o.beta2) + ", eps " + Number(o.eps);
  } else {
    s = o.name;
  }
  return s + ", weight decay " + Number(o.weight_decay);
}

std::string Schedule(const ScheduleConfig& s) {
  if (s.kind == "step") {
    std::vector<std::string> at;
    for (int64_t m : s.milestones) at.push_back(Number(static_cast<double>(m)));
    if (at.empty()) return "constant";
    return "multiplied by " + Number(s.gamma) + " at " + s.milestone_unit +
           (at.size() > 1 ? "s " : " ") + Join(at);
  }
  if (s.kind == "cosine") return "cosine decay to " + Number(s.min_lr);
  return s.kind;
}

std::string Warmup(const ScheduleConfig& s) {
  if (s.warmup_iterations <= 0) return "none";
  if (s.warmup_kind == "linear") {
    return "linear from " + Number(s.warmup_lr) + " over the first " +
           Number(static_cast<double>(s.warmup_iterations)) + " iterations";
  }
  return "lr " + Number(s.warmup_lr) + " for the first " +
         Number(static_cast<double>(s.warmup_iterations)) + " iterations";
}

std::string Trainer(const TrainerConfig& t) {
  if (t.kind == "synthetic") {
    return "**synthetic**: no network is trained; each epoch's metrics are made up from the "
           "config and the seed (for trying the system, not a result)";
  }
  if (t.kind == "libtorch") return "LibTorch";
  return t.kind;
}

std::string RunsText(int succeeded, int total, const v1::RunCounts& counts) {
  std::string s = Count(succeeded) + "/" + Count(total) + " runs succeeded";
  if (counts.failed()) s += ", " + Count(counts.failed()) + " failed";
  if (counts.cancelled()) s += ", " + Count(counts.cancelled()) + " cancelled";
  const int open = counts.queued() + counts.leased() + counts.running();
  if (open) s += ", " + Count(open) + " not finished";
  return s;
}

}  // namespace

StatusOr<std::string> ProtocolMarkdown(const ReportInput& in) {
  std::vector<CellConfig> cells;
  for (const auto& c : in.results.cells()) {
    auto it = in.cell_configs.find(c.cell_label());
    if (it == in.cell_configs.end()) continue;
    auto config = RunConfigFromJson(it->second);
    if (!config.ok()) {
      return InvalidArgumentError("the config of cell " + c.cell_label() +
                                  " does not parse: " + config.status().message());
    }
    cells.push_back({c.cell_label(), {c.params().begin(), c.params().end()}, *config});
  }
  if (cells.empty()) return std::string("No run's config is known yet.\n");
  std::ostringstream out;
  auto bullet = [&](const std::string& what, const Phrase& phrase) {
    out << "- **" << what << "**: " << Vary(cells, phrase) << "\n";
  };
  bullet("Data", [](const RunConfig& c) {
    return DatasetName(c.dataset.kind) + ", " + Images(c.dataset.train_limit, "training") + ", " +
           Images(c.dataset.test_limit, "test");
  });
  bullet("Preprocessing", [](const RunConfig& c) { return Preprocess(c.dataset.preprocess); });
  bullet("Augmentation", [](const RunConfig& c) { return Augmentation(c.dataset); });
  bullet("Network", [](const RunConfig&) {
    return std::string("CIFAR ResNet, 6n+2 layers, three stages, global average pooling");
  });
  bullet("Block", [](const RunConfig& c) { return Code(c.model.block); });
  bullet("Depth", [](const RunConfig& c) {
    return "n = " + std::to_string(c.model.depth_n) + " (" + std::to_string(c.layers()) +
           " layers)";
  });
  bullet("Shortcuts", [](const RunConfig& c) { return Shortcut(c.model.shortcut); });
  bullet("Widths", [](const RunConfig& c) {
    const int w = c.model.base_width;
    return std::to_string(w) + "/" + std::to_string(2 * w) + "/" + std::to_string(4 * w) +
           " filters";
  });
  bullet("Optimizer", [](const RunConfig& c) { return Optimizer(c.train.optimizer); });
  bullet("Learning rate", [](const RunConfig& c) {
    return Number(c.train.optimizer.lr) + ", " + Schedule(c.train.schedule);
  });
  bullet("Warm-up", [](const RunConfig& c) { return Warmup(c.train.schedule); });
  bullet("Epochs", [](const RunConfig& c) {
    return std::to_string(c.train.epochs) + ", test set evaluated " +
           (c.train.eval_every <= 1
                ? std::string("after every epoch")
                : "every " + std::to_string(c.train.eval_every) + " epochs and after the last");
  });
  bullet("Batch size", [](const RunConfig& c) { return std::to_string(c.train.batch_size); });
  bullet("Trainer", [](const RunConfig& c) { return Trainer(c.trainer); });

  // Seeds: from the runs themselves.
  std::map<std::string, std::set<int64_t>> seeds_of;
  std::set<int64_t> all_seeds;
  for (const auto& r : in.curves.runs()) {
    seeds_of[r.cell_label()].insert(r.seed());
    all_seeds.insert(r.seed());
  }
  std::set<size_t> per_cell;
  for (const auto& [label, s] : seeds_of) per_cell.insert(s.size());
  std::vector<std::string> seed_list;
  for (int64_t s : all_seeds) seed_list.push_back(std::to_string(s));
  if (seed_list.size() > 12) {
    seed_list.resize(12);
    seed_list.push_back("...");
  }
  out << "- **Seeds**: "
      << (per_cell.size() == 1 ? Count(static_cast<int64_t>(*per_cell.begin())) + " per cell"
                               : std::string("a different number per cell"))
      << " (seeds " << Join(seed_list) << "), " << Count(in.curves.runs_size()) << " runs in "
      << Count(in.results.cells_size()) << " cells\n";
  std::set<std::string> axes;
  for (const auto& c : in.results.cells()) {
    for (const auto& [k, v] : c.params()) axes.insert(k);
  }
  std::vector<std::string> axis_texts;
  for (const auto& axis : axes) {
    std::vector<std::string> values;
    for (const auto& c : in.results.cells()) {
      auto it = c.params().find(axis);
      if (it != c.params().end() &&
          std::find(values.begin(), values.end(), it->second) == values.end()) {
        values.push_back(it->second);
      }
    }
    axis_texts.push_back(Code(axis) + " (" + Join(values) + ")");
  }
  out << "- **Grid**: " << (axis_texts.empty() ? "one cell" : Join(axis_texts, "; ")) << "\n";
  out << "- **Measure**: per run, the mean test error of its last " << in.results.last_k()
      << " evaluated epochs; per cell, the mean of that over its seeds\n";
  return out.str();
}

std::string ReadingMarkdown(const v1::GetResultsResponse& r) {
  const int best = r.best_cell();
  if (best < 0 || best >= r.cells_size()) {
    return "No cell has a succeeded run yet: there is nothing to read.\n";
  }
  // The table's own cell texts, so the reading says what the table says.
  const ResultsTable table = MakeResultsTable(r);
  const double alpha = r.alpha() > 0 ? r.alpha() : 0.05;
  const std::string level = Fixed(100 * (1 - alpha), "%.0f") + "%";
  const auto& b = r.cells(best);
  const int best_n = b.last_k_test_error().n();
  std::ostringstream out;
  out << "- Lowest mean: " << Code(b.cell_label()) << ", " << table.rows[best][2] << "%";
  if (best_n == 1) {
    // One run is no mean over seeds: say so rather than crown it.
    out << ", from a single run (n = 1): one seed is not a mean over seeds, and no other cell "
           "can be tested against it.\n";
  } else {
    out << " (n = " << Seeds(best_n) << ").\n";
  }
  std::vector<std::string> same, worse, untested, without_runs;
  for (int i = 0; i < r.cells_size(); ++i) {
    const auto& c = r.cells(i);
    const auto& v = c.comparison();
    if (i == best) continue;
    if (c.last_k_test_error().n() == 0) {
      without_runs.push_back(Code(c.cell_label()));
      continue;
    }
    if (!v.testable()) {
      untested.push_back(Code(c.cell_label()));
    } else if (v.indistinguishable_from_best()) {
      same.push_back(Code(c.cell_label()));
    } else {
      worse.push_back(Code(c.cell_label()));
    }
  }
  // "none" only says something when some cell was tested: with every other cell
  // untested it would read as "all are worse", which no test showed.
  if (!same.empty() || !worse.empty()) {
    out << "- Cells indistinguishable from the best at " << level
        << " (Welch t-test, Holm-adjusted): " << (same.empty() ? "none" : JoinCapped(same))
        << ".\n";
  }
  if (!worse.empty()) {
    out << "- Worse than the best at " << level << ": " << JoinCapped(worse) << ".\n";
  }
  if (!untested.empty()) {
    out << "- Not tested (fewer than two seeds on one side): " << JoinCapped(untested) << ".\n";
  }
  if (!without_runs.empty()) {
    out << "- No succeeded run, so not compared: " << JoinCapped(without_runs) << ".\n";
  }
  // Seeds needed: planned at the level GetResults used (alpha over the number of cells
  // tested, so a plan never promises what the Holm-adjusted verdict would not grant),
  // for the cells not told apart from the best yet (the others are separated already).
  const std::string seeds_level = SeedsNeededLevelText(r);
  size_t planned = 0, more = 0;
  for (int i = 0; i < r.cells_size(); ++i) {
    const auto& v = r.cells(i).comparison();
    if (i == best || !v.testable() || !v.indistinguishable_from_best()) continue;
    if (planned == kReadingListLimit) {
      ++more;
      continue;
    }
    ++planned;
    out << "- Seeds needed to separate " << Code(r.cells(i).cell_label()) << " from "
        << Code(b.cell_label()) << ": "
        << (v.seeds_needed() > 0 ? Count(v.seeds_needed()) + " per cell" : std::string("unknown"))
        << " (80% power at " << seeds_level << ", given the spread seen; this sweep has "
        << Count(r.cells(i).last_k_test_error().n()) << ").\n";
  }
  if (more > 0) {
    out << "- ... and " << Count(static_cast<int64_t>(more))
        << " more cells' seeds needed (the seeds_needed column of results.csv).\n";
  }
  bool published = false;
  for (const auto& c : r.cells()) {
    published = published || c.paper_test_error() >= 0 || c.source_test_error() >= 0;
  }
  if (published) {
    out << "- The paper's and the 2016 run's figures are single runs (the paper's 110-layer "
           "figure is its best of 5), not means over seeds: read them against the interval, "
           "not the mean alone.\n";
  } else {
    out << "- No published figure applies to these cells.\n";
  }
  if (r.sweep().state() == "active") {
    out << "- The sweep is still running: these numbers will change.\n";
  } else if (r.sweep().state() == "cancelled") {
    out << "- The sweep was cancelled: the cells hold only the runs that finished before.\n";
  }
  return out.str();
}

StatusOr<std::string> ReportReadme(const ReportInput& in) {
  const auto& r = in.results;
  const auto& s = r.sweep();
  std::ostringstream out;
  out << "# " << s.name() << "\n\n";
  out << "Sweep " << Code(s.sweep_id()) << ", " << s.state() << ": "
      << RunsText(s.counts().succeeded(), s.counts().total(), s.counts()) << ". "
      << "Every error below is, per run, the mean test error of its last " << r.last_k()
      << " evaluated epochs, and per cell the mean over its seeds with a Student-t 95% "
         "confidence interval: never the best seed, never the best epoch.\n\n";
  out << "## Protocol\n\n";
  RESWEEP_ASSIGN_OR_RETURN(std::string protocol, ProtocolMarkdown(in));
  out << protocol << "\n";
  out << "## Results\n\n" << MarkdownTable(MakeResultsTable(r)) << "\n";
  // The legend as one paragraph (it is wrapped for a terminal).
  std::string legend = ResultsLegend(r);
  std::replace(legend.begin(), legend.end(), '\n', ' ');
  while (!legend.empty() && legend.back() == ' ') legend.pop_back();
  out << legend << "\n\n";
  out << "## Reading\n\n" << ReadingMarkdown(r) << "\n";
  if (!in.figures.empty()) {
    out << "## Figures\n\n";
    for (const auto& f : in.figures) {
      out << "### " << f.title << "\n\n![" << f.title << "](" << f.file << ")\n\n" << f.caption;
      if (!f.vector_file.empty()) out << " Also as [SVG](" << f.vector_file << ").";
      out << " Drawn by `" << f.command << "`.\n\n";
    }
  }
  out << "## Files\n\n"
      << "- [results.csv](results.csv): every statistic per cell, as `resweep results "
      << s.sweep_id() << " --format csv" << in.last_k_flag << in.db_flag
      << "` prints it (errors as fractions).\n"
      << "- [runs.csv](runs.csv): one line per run, as `resweep runs " << s.sweep_id()
      << " --format csv" << in.db_flag << "` prints it.\n"
      << "- [epochs.csv](epochs.csv): one line per run and epoch (losses, errors as fractions, "
         "learning rate).\n";
  if (!in.figures.empty()) {
    out << "- `figures/`: each figure with its gnuplot data (`.dat`) and script (`.gp`); the "
           "`resweep plot` commands under the figures draw them again, run from this folder.\n";
  }
  out << "\n---\nWritten by `" << in.command << "` (resweep " << in.version << ").\n";
  return out.str();
}

int LastKUsed(const v1::GetCurvesResponse& curves, int last_k) {
  std::set<int> used;
  for (const auto& r : curves.runs()) {
    if (r.state() != "succeeded") continue;
    int evaluated = 0;
    for (const auto& p : r.points()) evaluated += p.test_error() >= 0;
    if (evaluated > 0) used.insert(std::min(last_k, evaluated));
  }
  return used.size() == 1 ? *used.begin() : last_k;
}

std::string EpochsCsv(const v1::GetCurvesResponse& curves) {
  std::ostringstream out;
  out << "run_id,cell,seed,state,epoch,iteration,train_loss,train_error_frac,test_loss,"
         "test_error_frac,lr\n";
  auto num = [](double v) { return Fixed(v, "%.9g"); };
  for (const auto& r : curves.runs()) {
    for (const auto& p : r.points()) {
      out << CsvField(r.run_id()) << ',' << CsvField(r.cell_label()) << ',' << r.seed() << ','
          << CsvField(r.state()) << ',' << p.epoch() << ',' << p.iteration() << ','
          << num(p.train_loss()) << ',' << num(p.train_error()) << ','
          << (p.test_loss() >= 0 ? num(p.test_loss()) : "") << ','
          << (p.test_error() >= 0 ? num(p.test_error()) : "") << ',' << num(p.lr()) << '\n';
    }
  }
  return out.str();
}

}  // namespace resweep
