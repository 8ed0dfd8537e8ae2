#include "common/reference_results.h"

namespace resweep {

namespace {

struct PaperRow {
  int layers;
  double error;
};
// he2015_table6.csv, test_error_percent / 100. 110 layers: best of 5 (mean 6.61).
constexpr PaperRow kPaper[] = {{20, 0.0875}, {32, 0.0751},  {44, 0.0717},
                               {56, 0.0697}, {110, 0.0643}, {1202, 0.0793}};

struct SourceRow {
  const char* block;
  int layers;
  double error;
};
// source_results.csv. The source's "no-relu-bn-before-add" is this project's "no-relu".
constexpr SourceRow kSource[] = {
    {"reference", 20, 0.084473},  {"reference", 32, 0.079102},
    {"reference", 44, 0.075684},  {"reference", 56, 0.063477},
    {"reference", 110, 0.067871}, {"bn-after-add", 20, 0.083496},
    {"no-relu", 20, 0.089355},    {"no-relu-bn-after-add", 20, 0.079102},
};

}  // namespace

double PaperTestError(int layers) {
  for (const auto& row : kPaper) {
    if (row.layers == layers) return row.error;
  }
  return -1.0;
}

double SourceTestError(const std::string& block, int layers) {
  for (const auto& row : kSource) {
    if (block == row.block && row.layers == layers) return row.error;
  }
  return -1.0;
}

}  // namespace resweep
