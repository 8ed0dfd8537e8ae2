#include "coordinator/results.h"

#include <numeric>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/reference_results.h"
#include "common/run_config_json.h"

namespace resweep {

double LastKMeanTestError(const std::vector<EpochRecord>& epochs, int last_k) {
  double sum = 0;
  int n = 0;
  for (auto it = epochs.rbegin(); it != epochs.rend() && n < last_k; ++it) {
    if (it->test_error < 0) continue;
    sum += it->test_error;
    ++n;
  }
  return n ? sum / n : -1.0;
}

std::vector<CellSummary> SummarizeCells(const std::vector<SweepCellRecord>& cells,
                                        const std::vector<SweepOutcomeRecord>& outcomes,
                                        analysis::StatisticsCache* cache,
                                        analysis::StatisticsBacking* backing) {
  std::vector<CellSummary> out(cells.size());
  std::vector<int> slot_of_ordinal;  // cell ordinal -> index in `out`
  for (size_t i = 0; i < cells.size(); ++i) {
    const SweepCellRecord& record = cells[i];
    if (record.ordinal < 0) continue;
    if (static_cast<size_t>(record.ordinal) >= slot_of_ordinal.size())
      slot_of_ordinal.resize(record.ordinal + 1, -1);
    slot_of_ordinal[record.ordinal] = static_cast<int>(i);
    CellSummary& c = out[i];
    c.cell_key = record.cell_key;
    c.cell_label = record.cell_label;
    c.runs_total = record.runs_total;
    try {
      c.params =
          nlohmann::json::parse(record.cell_params_json).get<std::map<std::string, std::string>>();
    } catch (const std::exception&) {
    }
    auto config = RunConfigFromJson(record.config_json);
    if (config.ok()) {
      c.dataset = config->dataset.kind;
      c.block = config->model.block;
      c.shortcut = config->model.shortcut;
      c.layers = config->layers();
      if (c.dataset == "cifar10" && c.shortcut == "A" && config->trainer.kind == "libtorch") {
        if (c.block == "reference") c.paper_test_error = PaperTestError(c.layers);
        c.source_test_error = SourceTestError(c.block, c.layers);
      }
    }
  }
  std::vector<std::vector<double>> finals(cells.size()), lastks(cells.size());
  std::vector<double> param_sums(cells.size(), 0);
  for (const auto& o : outcomes) {
    if (o.cell_ordinal < 0 || static_cast<size_t>(o.cell_ordinal) >= slot_of_ordinal.size() ||
        slot_of_ordinal[o.cell_ordinal] < 0) {
      continue;
    }
    const int i = slot_of_ordinal[o.cell_ordinal];
    ++out[i].runs_succeeded;
    // The final epoch's error; when the last epoch was not evaluated (eval_every),
    // the newest evaluated one.
    if (o.final_test_error >= 0) finals[i].push_back(o.final_test_error);
    if (o.last_k_test_error >= 0) lastks[i].push_back(o.last_k_test_error);
    param_sums[i] += static_cast<double>(o.param_count);
  }
  std::optional<analysis::StatisticsCache> own_cache;  // a backing is consulted through one
  if (backing && !cache) cache = &own_cache.emplace();
  analysis::Comparison comparison =
      analysis::CompareWithBest(lastks, analysis::kDefaultAlpha, analysis::kBootstrapSeed,
                                analysis::kBootstrapResamples, cache, backing);
  for (size_t i = 0; i < out.size(); ++i) {
    CellSummary& c = out[i];
    c.final_test_error = cache ? cache->Describe(finals[i], analysis::kBootstrapSeed,
                                                 analysis::kBootstrapResamples, backing)
                               : analysis::Describe(finals[i]);
    c.comparison = std::move(comparison.cells[i]);
    c.last_k_test_error = c.comparison.description;
    c.mean_param_count = c.runs_succeeded ? param_sums[i] / c.runs_succeeded : 0;
  }
  return out;
}

std::vector<CellSummary> SummarizeCells(const std::vector<RunOutcome>& outcomes,
                                        analysis::StatisticsCache* cache) {
  std::vector<SweepCellRecord> cells;
  std::map<std::string, size_t> index;
  std::vector<SweepOutcomeRecord> succeeded;
  for (const auto& o : outcomes) {
    auto [it, inserted] = index.emplace(o.link.cell_key, cells.size());
    if (inserted) {
      cells.push_back({static_cast<int>(cells.size()), o.link.cell_key, o.link.cell_label,
                       o.link.cell_params_json, o.run.config_json, 0});
    }
    SweepCellRecord& cell = cells[it->second];
    ++cell.runs_total;
    if (o.run.state != RunState::kSucceeded) continue;
    succeeded.push_back({cell.ordinal, o.run.run_id, o.run.summary_k, o.run.final_test_error,
                         o.run.last_k_test_error, o.run.param_count});
  }
  return SummarizeCells(cells, succeeded, cache);
}

}  // namespace resweep
