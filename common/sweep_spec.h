// Sweep files: parsing, strict validation and grid expansion.
//
// A sweep file is a base RunConfig (sections dataset/model/train/trainer), a grid
// that maps dotted parameter paths to lists of values, optional per-cell overrides,
// and seeds. Every run is one cell of the cartesian product of the grid axes, times
// one seed. A grid axis is either a path (one parameter, or a nested section that
// each value replaces whole) or a linked axis: a name whose values each set several
// paths together. An override sets fields of the cells whose axis values match its
// `where`. docs/sweep-spec.md is the user-facing reference.
//
// Validation is strict and happens before anything is queued: unknown keys, duplicate
// keys, wrong types, out-of-range values, empty axes and oversized grids are errors
// whose messages name the source, line, column and field path. Valid settings that
// cannot do what they were written for (SweepSpec::warnings) are reported, not refused.
// The file is parsed once; expansion costs time linear in cells x seeds.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/run_config.h"
#include "common/status.h"

namespace resweep {

struct SpecLimits {
  int64_t max_runs = 10000;  // cells x seeds
  int64_t max_seeds = 1000;
  int64_t max_axis_values = 1000;
  int64_t max_axes = 16;
  int64_t max_overrides = 1000;
  int64_t max_bytes = 1 << 20;  // sweep file size
  // Threads that expand a grid of thousands of cells (at most one per core); the
  // result is the same with any number.
  int max_expansion_threads = 4;
};

struct GridAxis {
  std::string path;  // e.g. "model.depth_n"; a linked axis: its name, e.g. "optimizer"
  int64_t size = 0;
  std::vector<std::string> linked_paths;  // a linked axis: the paths each value sets
};

// One grid cell: its resolved config and what names it, shared by its runs (one per
// seed), so that a sweep of many seeds holds each config once.
struct ExpandedCell {
  std::string cell_key;  // hash of the canonical config: the cell's identity
  // "model.depth_n=3 model.block=reference" ("base" without a grid); a linked axis
  // contributes "NAME=LABEL" ("optimizer=adam"). Overrides never change it.
  std::string cell_label;
  std::map<std::string, std::string> cell_params;  // axis path (or name) -> value (or label)
  RunConfig config;
  std::string config_json;  // canonical
};

struct ExpandedRun {
  std::string run_id;  // hash of canonical config + seed: the run's identity
  int64_t seed = 0;
  std::shared_ptr<const ExpandedCell> cell;  // never null
};

struct SweepSpec {
  std::string sweep_id;  // hash of name + every run id: equal files give equal ids
  std::string name;
  std::string description;
  std::vector<GridAxis> grid;
  std::vector<int64_t> seeds;
  int last_k = 5;                 // results: mean of the last K epochs' test error
  int max_attempts = 0;           // 0 = the coordinator's default
  std::vector<ExpandedRun> runs;  // cell-major, seeds inner
  // Settings that are valid but cannot do what was meant (a step milestone past the
  // last epoch, an option the chosen optimizer ignores, ...), each
  // "source:line:col: field: message" pointing at the value that causes it, once
  // however many cells share it. Never errors: the sweep is accepted as written.
  std::vector<std::string> warnings;
};

// Parses and expands `yaml_text`. `source_name` (a file name) prefixes errors.
StatusOr<SweepSpec> ParseSweepSpec(const std::string& yaml_text, const std::string& source_name,
                                   const SpecLimits& limits = SpecLimits());

// Reads `path` (refusing files over limits.max_bytes) and parses it.
StatusOr<SweepSpec> LoadSweepSpecFile(const std::string& path,
                                      const SpecLimits& limits = SpecLimits());

// Validates a RunConfig's values (ranges, enum names). Used by the parser and by
// workers on the config they are leased. `field_prefix` prefixes field names.
Status ValidateRunConfig(const RunConfig& config);

}  // namespace resweep
