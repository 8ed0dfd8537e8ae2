// Aggregation of a sweep's runs into per-cell statistics.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "analysis/statistics.h"
#include "analysis/statistics_cache.h"
#include "coordinator/store.h"

namespace resweep {

// One run as results see it: its link, and of its record the state, param_count, the
// results summary (final_test_error, last_k_test_error for the K asked for) and, for
// the first run of each cell, config_json (which names the cell's dataset and network).
struct RunOutcome {
  SweepRunRecord link;
  RunRecord run;
};

struct CellSummary {
  std::string cell_key;
  std::string cell_label;
  std::map<std::string, std::string> params;
  int runs_total = 0;
  int runs_succeeded = 0;
  // Over succeeded runs: the test error of the last epoch, and the mean test error of
  // the last K evaluated epochs (the headline number; the comparison is of it).
  analysis::Description final_test_error;
  analysis::Description last_k_test_error;
  analysis::CellVerdict comparison;  // against the sweep's best cell
  std::string dataset;
  std::string block;
  std::string shortcut;
  int layers = 0;
  double paper_test_error = -1;  // published figure when the cell is the paper's setting
  double source_test_error = -1;
  double mean_param_count = 0;
};

// Mean of the test error over the last `last_k` epochs that were evaluated
// (test_error >= 0); -1 when none was.
double LastKMeanTestError(const std::vector<EpochRecord>& epochs, int last_k);

// One summary per cell, in grid order (`cells`, by ordinal), each compared with the
// best cell (analysis::CompareWithBest at alpha 0.05), from the outcomes of the
// sweep's succeeded runs (any order of cells; within a cell, in link order). Published
// figures are attached only to CIFAR-10 cells whose block/shortcut match the
// publication. With a cache, statistics asked about before cost a lookup, and with a
// backing, statistics stored there too (same output).
std::vector<CellSummary> SummarizeCells(const std::vector<SweepCellRecord>& cells,
                                        const std::vector<SweepOutcomeRecord>& outcomes,
                                        analysis::StatisticsCache* cache = nullptr,
                                        analysis::StatisticsBacking* backing = nullptr);

// The same from every run of a sweep in grid order (cells numbered in the order of
// their first runs; only succeeded runs count as outcomes).
std::vector<CellSummary> SummarizeCells(const std::vector<RunOutcome>& outcomes,
                                        analysis::StatisticsCache* cache = nullptr);

}  // namespace resweep
