#include "coordinator/results.h"

#include <numeric>

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

std::vector<CellSummary> SummarizeCells(const std::vector<RunOutcome>& outcomes,
                                        analysis::StatisticsCache* cache) {
  std::vector<CellSummary> cells;
  std::map<std::string, size_t> index;
  std::map<std::string, std::vector<double>> finals, lastks, params;
  for (const auto& o : outcomes) {
    auto [it, inserted] = index.emplace(o.link.cell_key, cells.size());
    if (inserted) {
      CellSummary c;
      c.cell_key = o.link.cell_key;
      c.cell_label = o.link.cell_label;
      try {
        c.params = nlohmann::json::parse(o.link.cell_params_json)
                       .get<std::map<std::string, std::string>>();
      } catch (const std::exception&) {
      }
      auto config = RunConfigFromJson(o.run.config_json);
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
      cells.push_back(std::move(c));
    }
    CellSummary& cell = cells[it->second];
    ++cell.runs_total;
    if (o.run.state != RunState::kSucceeded) continue;
    ++cell.runs_succeeded;
    // The final epoch's error; when the last epoch was not evaluated (eval_every),
    // the newest evaluated one.
    if (o.run.final_test_error >= 0) finals[cell.cell_key].push_back(o.run.final_test_error);
    if (o.run.last_k_test_error >= 0) lastks[cell.cell_key].push_back(o.run.last_k_test_error);
    params[cell.cell_key].push_back(static_cast<double>(o.run.param_count));
  }
  std::vector<std::vector<double>> headline;
  for (const auto& c : cells) headline.push_back(lastks[c.cell_key]);
  analysis::Comparison comparison =
      analysis::CompareWithBest(headline, analysis::kDefaultAlpha, analysis::kBootstrapSeed,
                                analysis::kBootstrapResamples, cache);
  for (size_t i = 0; i < cells.size(); ++i) {
    CellSummary& c = cells[i];
    const auto& final_values = finals[c.cell_key];
    c.final_test_error = cache ? cache->Describe(final_values, analysis::kBootstrapSeed,
                                                 analysis::kBootstrapResamples)
                               : analysis::Describe(final_values);
    c.comparison = std::move(comparison.cells[i]);
    c.last_k_test_error = c.comparison.description;
    const auto& p = params[c.cell_key];
    c.mean_param_count = p.empty() ? 0 : std::accumulate(p.begin(), p.end(), 0.0) / p.size();
  }
  return cells;
}

}  // namespace resweep
