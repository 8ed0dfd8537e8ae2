#include "common/sweep_spec.h"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <thread>

#include "common/hash.h"
#include "common/run_config_json.h"
#include "tests/test_util.h"

namespace resweep {
namespace {

const char* kValid = R"(name: depth
dataset: {kind: cifar10, path: /data/cifar}
model: {block: reference, depth_n: 3, shortcut: A}
train:
  epochs: 200
  batch_size: 128
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9, nesterov: false, weight_decay: 1.0e-4}
  schedule: {milestones: [80, 160], gamma: 0.1}
grid:
  model.depth_n: [3, 5, 7]
  model.block: [reference, preact]
seeds: 4
)";

// The names of the files in sweeps/, sorted.
std::vector<std::string> ShippedSweepFiles() {
  std::vector<std::string> names;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(RESWEEP_SOURCE_DIR) + "/sweeps")) {
    if (entry.path().extension() == ".yaml") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string ErrorOf(const std::string& yaml, SpecLimits limits = SpecLimits()) {
  auto spec = ParseSweepSpec(yaml, "test.yaml", limits);
  EXPECT_FALSE(spec.ok()) << "expected an error for:\n" << yaml;
  return spec.ok() ? "" : spec.status().message();
}

TEST(SweepSpec, ExpandsTheCartesianProductTimesSeeds) {
  auto spec = ParseSweepSpec(kValid, "test.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->name, "depth");
  ASSERT_EQ(spec->runs.size(), 3u * 2u * 4u);
  EXPECT_EQ(spec->seeds, (std::vector<int64_t>{0, 1, 2, 3}));
  // Cell-major, seeds inner, last axis fastest.
  EXPECT_EQ(spec->runs[0].cell->cell_label, "model.depth_n=3 model.block=reference");
  EXPECT_EQ(spec->runs[4].cell->cell_label, "model.depth_n=3 model.block=preact");
  EXPECT_EQ(spec->runs[8].cell->cell_label, "model.depth_n=5 model.block=reference");
  EXPECT_EQ(spec->runs[8].cell->config.model.depth_n, 5);
  EXPECT_EQ(spec->runs[4].cell->config.model.block, "preact");
  EXPECT_EQ(spec->runs[8].cell->config.train.optimizer.weight_decay, 1e-4);
  EXPECT_EQ(spec->runs[8].cell->config.train.schedule.milestones, (std::vector<int64_t>{80, 160}));
  // Runs of one cell share the cell key and differ in id.
  EXPECT_EQ(spec->runs[0].cell->cell_key, spec->runs[1].cell->cell_key);
  EXPECT_NE(spec->runs[0].run_id, spec->runs[1].run_id);
  EXPECT_NE(spec->runs[0].cell->cell_key, spec->runs[4].cell->cell_key);
}

TEST(SweepSpec, IdentityIsStableAndDependsOnlyOnResolvedConfigAndSeed) {
  auto a = ParseSweepSpec(kValid, "a.yaml");
  // Same content, different formatting and key order: same runs, same sweep id.
  auto b = ParseSweepSpec(R"(
seeds: 4
grid: {model.depth_n: [3, 5, 7], model.block: [reference, preact]}
train: {epochs: 200, batch_size: 128, schedule: {gamma: 0.1, milestones: [80, 160]},
        optimizer: {lr: 0.1, name: sgd, momentum: 0.9, weight_decay: 0.0001}}
model: {shortcut: A, depth_n: 3, block: reference}
dataset: {path: /data/cifar, kind: cifar10}
name: depth
)",
                          "b.yaml");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->sweep_id, b->sweep_id);
  for (size_t i = 0; i < a->runs.size(); ++i) EXPECT_EQ(a->runs[i].run_id, b->runs[i].run_id);
  // A changed hyperparameter changes every id.
  std::string changed = kValid;
  changed.replace(changed.find("lr: 0.1"), 7, "lr: 0.2");
  auto c = ParseSweepSpec(changed, "c.yaml");
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->runs[0].run_id, a->runs[0].run_id);
  EXPECT_NE(c->sweep_id, a->sweep_id);
}

// Every field of a run's identity, one line per run, for pinning.
std::string IdentityLines(const SweepSpec& spec) {
  std::string out = "sweep " + spec.sweep_id + "\n";
  for (const auto& r : spec.runs) {
    out += r.run_id + " " + r.cell->cell_key + " " + std::to_string(r.seed) + " " +
           r.cell->cell_label + " |";
    for (const auto& [k, v] : r.cell->cell_params) out += " " + k + "=" + v;
    out += "\n";
  }
  return out;
}

// A grid of thousands of cells is expanded in chunks on several threads: runs, ids,
// labels, warnings (one found only in the second half) and errors (likewise) are
// exactly what one thread gives.
TEST(SweepSpec, ALargeGridExpandsOnSeveralThreadsExactlyAsOnOne) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "the chunked path needs two cores";
  auto grid_file = [](const std::string& blocks) {
    std::string lrs, epochs;
    for (int i = 1; i <= 50; ++i) lrs += (i > 1 ? ", " : "") + std::to_string(0.002 * i);
    for (int e = 2; e <= 51; ++e) epochs += (e > 2 ? ", " : "") + std::to_string(e);
    return "name: big\ntrain:\n  optimizer: {momentum: 0.95}\n  schedule: {milestones: [1]}\n"
           "grid:\n  model.block: [" +
           blocks +
           "]\n  train.optimizer.name: [sgd, adam]\n"
           "  train.optimizer.lr: [" +
           lrs + "]\n  train.epochs: [" + epochs + "]\nseeds: 2\n";
  };
  SpecLimits one, several;
  one.max_runs = several.max_runs = 100000;
  one.max_expansion_threads = 1;
  several.max_expansion_threads = 4;
  const std::string good = grid_file("reference, preact");  // 2 x 2 x 50 x 50 = 10,000 cells
  auto a = ParseSweepSpec(good, "big.yaml", one);
  auto b = ParseSweepSpec(good, "big.yaml", several);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_EQ(a->runs.size(), 20000u);
  EXPECT_EQ(IdentityLines(*b), IdentityLines(*a));
  EXPECT_EQ(b->warnings, a->warnings);
  // Short epochs warn in every chunk; adam's unused momentum only from cell 2,500 on.
  EXPECT_EQ(a->warnings.size(), 4u);
  for (size_t i = 0; i < a->runs.size(); i += 997) {
    EXPECT_EQ(b->runs[i].cell->config_json, a->runs[i].cell->config_json);
  }
  // An unknown block in the second half of the grid only: the same errors.
  const std::string bad = grid_file("reference, bogus");
  auto c = ParseSweepSpec(bad, "big.yaml", one);
  auto d = ParseSweepSpec(bad, "big.yaml", several);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(d.status().ToString(), c.status().ToString());
  EXPECT_NE(c.status().ToString().find("'bogus' is not one of"), std::string::npos)
      << c.status().ToString();
}

// A process that may start no more threads (a pids limit reached, say) still
// expands a large grid, on the thread that asked: the same runs as one thread gives,
// no std::system_error out of the parser (it would end the coordinator). Checked in
// a child process limited to no new threads (RLIMIT_NPROC 0, as a user other than
// root, which the limit does not bind).
TEST(SweepSpec, ALargeGridExpandsWhereNoThreadCanStart) {
  std::string lrs;
  for (int i = 1; i <= 100; ++i) lrs += (i > 1 ? ", " : "") + std::to_string(0.001 * i);
  std::string epochs;
  for (int e = 2; e <= 51; ++e) epochs += (e > 2 ? ", " : "") + std::to_string(e);
  const std::string file = "name: big\ngrid:\n  train.optimizer.lr: [" + lrs +
                           "]\n  train.epochs: [" + epochs + "]\nseeds: 1\n";  // 5,000 cells
  SpecLimits one, several;
  one.max_runs = several.max_runs = 100000;
  one.max_expansion_threads = 1;
  several.max_expansion_threads = 4;
  auto expected = ParseSweepSpec(file, "big.yaml", one);
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();
  ASSERT_EQ(expected->runs.size(), 5000u);
  constexpr int kParsed = 0, kWrongRuns = 1, kThrew = 2, kNoLimit = 3;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) std::_Exit(kNoLimit);
    const rlimit none{0, 0};
    if (setrlimit(RLIMIT_NPROC, &none) != 0) std::_Exit(kNoLimit);
    try {
      std::thread([] {}).join();
      std::_Exit(kNoLimit);  // threads still start: nothing to check here
    } catch (const std::system_error&) {
    }
    try {
      auto spec = ParseSweepSpec(file, "big.yaml", several);
      std::_Exit(spec.ok() && spec->sweep_id == expected->sweep_id &&
                         spec->runs.size() == expected->runs.size()
                     ? kParsed
                     : kWrongRuns);
    } catch (const std::exception&) {
      std::_Exit(kThrew);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  if (WIFEXITED(status) && WEXITSTATUS(status) == kNoLimit) {
    GTEST_SKIP() << "cannot keep a child process from starting threads here";
  }
  ASSERT_TRUE(WIFEXITED(status)) << "the child ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), kParsed);
}

// Run ids, cell keys and sweep ids are stored in databases and shared between
// sweeps: these were computed by the parser before the single-parse expansion
// (commit acaf9de) and must never change.
TEST(SweepSpec, RunIdentityIsPinned) {
  auto many = ParseSweepSpec(R"(name: pinned
dataset: {kind: cifar10, train_limit: 5000}
model: {block: preact, depth_n: 2}
train:
  epochs: 30
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
  schedule: {milestones: [10, 20]}
grid:
  model.depth_n: [1, 3]
  train.optimizer.lr: [0.1, 0.025]
  train.schedule.milestones: [[15, 25], [20]]
  dataset.augment_flip: [true, false]
  model.shortcut: [A, B]
  trainer.epoch_seconds: [0.5]
seeds: [3, 1]
)",
                             "pinned.yaml");
  ASSERT_TRUE(many.ok()) << many.status().ToString();
  ASSERT_EQ(many->runs.size(), 64u);
  EXPECT_EQ(many->sweep_id, "e5d92851282e");
  EXPECT_EQ(Sha256Hex(IdentityLines(*many)),
            "1efbeecc23f49525b7e8e704fa933605ccc7bf5491b63d57647b52fc0245c4c0");
  EXPECT_EQ(many->runs[0].run_id, "e64e8399518e28528902");
  EXPECT_EQ(many->runs[0].cell->cell_key, "a6f7d58446852244");
  EXPECT_EQ(many->runs[63].run_id, "8539a0fab440deb1813a");

  // A whole section as an axis replaces the base's section (its fields not named
  // in the value fall back to the defaults, not to the base).
  auto sections = ParseSweepSpec(R"(name: sections
train:
  epochs: 12
  schedule: {milestones: [6], gamma: 0.2}
grid:
  train.schedule: [{kind: cosine, min_lr: 0.001}, {milestones: [4, 8]}]
  train.optimizer: [{name: adam, lr: 0.001}, {name: sgd, nesterov: true}]
seeds: 2
)",
                                 "sections.yaml");
  ASSERT_TRUE(sections.ok()) << sections.status().ToString();
  ASSERT_EQ(sections->runs.size(), 8u);
  EXPECT_DOUBLE_EQ(sections->runs[2].cell->config.train.schedule.gamma, 0.1);
  EXPECT_EQ(sections->sweep_id, "1878757b86c2");
  EXPECT_EQ(Sha256Hex(IdentityLines(*sections)),
            "8efaef4074ec572403ec0884da9107d1e700e46c9ed69ae8438a2871ebbaacbf");

  auto base = ParseSweepSpec("name: base\nmodel: {depth_n: 5}\n", "base.yaml");
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  ASSERT_EQ(base->runs.size(), 1u);
  EXPECT_EQ(base->runs[0].cell->cell_label, "base");
  EXPECT_EQ(base->sweep_id, "2c57a2796e2a");
  EXPECT_EQ(base->runs[0].run_id, "098678c5777296a803c8");

  std::string shipped;
  for (const char* name : {"fig6-depth.yaml", "blocks.yaml", "demo.yaml", "synthetic.yaml"}) {
    auto spec = LoadSweepSpecFile(std::string(RESWEEP_SOURCE_DIR) + "/sweeps/" + name);
    ASSERT_TRUE(spec.ok()) << name << ": " << spec.status().ToString();
    shipped += std::string(name) + " " + spec->sweep_id + "\n";
  }
  // fig6-depth.yaml changed (issue 10): Nesterov momentum as the study ran it, and
  // the warm-up for n = 18 alone; its id was 6a75d4ba3a9e.
  EXPECT_EQ(shipped,
            "fig6-depth.yaml 563abe861942\nblocks.yaml 1f9bcb9a2c28\ndemo.yaml 403313db3100\n"
            "synthetic.yaml d268630fc206\n");
}

TEST(SweepSpec, CanonicalJsonRoundTrips) {
  auto spec = ParseSweepSpec(kValid, "test.yaml");
  ASSERT_TRUE(spec.ok());
  auto back = RunConfigFromJson(spec->runs[5].cell->config_json);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(RunConfigToCanonicalJson(*back), spec->runs[5].cell->config_json);
}

TEST(SweepSpec, GridPathsReachNestedFieldsAbsentFromTheBase) {
  auto spec = ParseSweepSpec(R"(name: lr
grid:
  train.optimizer.lr: [0.05, 0.1]
  train.schedule.milestone_unit: [iteration]
seeds: [7, 11]
)",
                             "lr.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->runs.size(), 4u);
  EXPECT_DOUBLE_EQ(spec->runs[0].cell->config.train.optimizer.lr, 0.05);
  EXPECT_DOUBLE_EQ(spec->runs[2].cell->config.train.optimizer.lr, 0.1);
  EXPECT_EQ(spec->runs[0].cell->config.train.schedule.milestone_unit, "iteration");
  EXPECT_EQ(spec->runs[1].seed, 11);
  EXPECT_EQ(spec->runs[0].cell->cell_params.at("train.optimizer.lr"), "0.05");
}

TEST(SweepSpec, UnknownKeyNamesFieldAndLine) {
  const std::string e = ErrorOf("name: x\nmodel:\n  dpeth_n: 3\n");
  EXPECT_NE(e.find("test.yaml:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("model.dpeth_n"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key"), std::string::npos) << e;
  EXPECT_NE(e.find("depth_n"), std::string::npos) << e;  // lists the known keys
}

TEST(SweepSpec, WrongTypesAreRejectedWithTheField) {
  EXPECT_NE(ErrorOf("name: x\nmodel: {depth_n: three}\n").find("model.depth_n: must be an integer"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\nmodel: {depth_n: \"3\"}\n").find("quoted string"), std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ntrain: {epochs: 2.5}\n").find("train.epochs"), std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ntrain: {optimizer: {nesterov: maybe}}\n").find("true or false"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf("name: x\ntrain: {optimizer: [sgd]}\n").find("train.optimizer: must be a mapping"),
      std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ntrain: {optimizer: {lr: .nan}}\n").find("finite"), std::string::npos);
}

TEST(SweepSpec, OutOfRangeValuesNameTheGridLine) {
  const std::string e = ErrorOf("name: x\ngrid:\n  model.depth_n: [3,\n    0]\n");
  EXPECT_NE(e.find("test.yaml:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("model.depth_n: must be in [1, 200]"), std::string::npos) << e;
  EXPECT_NE(ErrorOf("name: x\ntrain: {epochs: 0}\n").find("train.epochs"), std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ntrain: {epochs: -5}\n").find("train.epochs"), std::string::npos);
  EXPECT_NE(ErrorOf("name: x\nmodel: {block: fancy}\n").find("'fancy' is not one of"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ntrain: {schedule: {milestones: [160, 80]}}\n").find("increasing"),
            std::string::npos);
}

TEST(SweepSpec, GridProblems) {
  EXPECT_NE(ErrorOf("name: x\ngrid:\n  model.depth_n: []\n").find("axis has no values"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ngrid:\n  model.depth_n: 3\n").find("must be a list"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ngrid:\n  depth_n: [3]\n").find("parameter path"), std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ngrid:\n  model.width: [3]\n").find("model.width"), std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ngrid:\n  model.depth_n: [3, 3]\n").find("listed twice"),
            std::string::npos);
  SpecLimits small;
  small.max_runs = 10;
  EXPECT_NE(ErrorOf("name: x\ngrid:\n  model.depth_n: [1, 2, 3, 4]\nseeds: 3\n", small)
                .find("makes 12 runs (4 cells x 3 seeds); the limit is 10"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ngrid:\n  model.depth_n: [1, 2]\n  train.epochs: [1, 2]\n"
                    "  train.batch_size: [1, 2]\n  train.optimizer.lr: [0.1, 0.2]\n",
                    small)
                .find("makes 16 runs (16 cells x 1 seed); the limit is 10"),
            std::string::npos);
}

// "name: x", the axes given, each with the values 1..n, then `tail`.
std::string GridOf(const std::vector<std::pair<std::string, int>>& axes, const std::string& tail) {
  std::string yaml = "name: x\ngrid:\n";
  for (const auto& [path, n] : axes) {
    yaml += "  " + path + ": [";
    for (int v = 1; v <= n; ++v) yaml += (v > 1 ? ", " : "") + std::to_string(v);
    yaml += "]\n";
  }
  return yaml + tail;
}

TEST(SweepSpec, TooManyRunsSaysHowMany) {
  EXPECT_EQ(ErrorOf(GridOf({{"model.depth_n", 50}, {"model.base_width", 5}}, "seeds: 50\n")),
            "test.yaml:3:3: grid: the grid x seeds makes 12,500 runs (250 cells x 50 seeds); the "
            "limit is 10,000 (the coordinator's --max-runs-per-sweep)");
  // Without a grid, the seeds alone.
  SpecLimits small;
  small.max_runs = 10;
  EXPECT_NE(ErrorOf("name: x\nseeds: 11\n", small)
                .find("test.yaml:2:8: grid: the grid x seeds makes 11 runs (1 cell x 11 seeds)"),
            std::string::npos);
  // Absurd grids saturate instead of overflowing: 10^18 cells x 5 seeds, and 10^21 cells.
  const std::vector<std::pair<std::string, int>> six = {
      {"model.depth_n", 1000},    {"model.base_width", 1000}, {"train.epochs", 1000},
      {"train.batch_size", 1000}, {"train.eval_every", 1000}, {"dataset.train_limit", 1000}};
  EXPECT_NE(ErrorOf(GridOf(six, "seeds: 5\n"))
                .find("makes more than 1,000,000,000,000,000,000 runs "
                      "(1,000,000,000,000,000,000 cells x 5 seeds); the limit is 10,000"),
            std::string::npos);
  auto seven = six;
  seven.push_back({"dataset.test_limit", 1000});
  EXPECT_NE(ErrorOf(GridOf(seven, ""))
                .find("makes more than 1,000,000,000,000,000,000 runs (axes of 1,000 x 1,000 x "
                      "1,000 x 1,000 x 1,000 x 1,000 x 1,000 values, x 1 seed); the limit is "
                      "10,000"),
            std::string::npos);
}

TEST(SweepSpec, WrongGridPathsPointAtTheKey) {
  struct Case {
    std::string grid_line;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"  modle.depth_n: [1, 2]",
       "test.yaml:3:3: grid.modle.depth_n: not a parameter path: no section 'modle'"},
      {"  model.depht_n: [1, 2]",
       "test.yaml:3:3: grid.model.depht_n: unknown parameter 'depht_n' in model (known here: "
       "base_width, block, depth_n, shortcut); did you mean model.depth_n?"},
      {"  depth_n: [1, 2]", "test.yaml:3:3: grid.depth_n: not a parameter path"},
      {"  model: [1, 2]", "test.yaml:3:3: grid.model: a whole top-level section cannot be an axis"},
      {"  model.depth_n.x: [1, 2]",
       "test.yaml:3:3: grid.model.depth_n.x: model.depth_n is a single value, not a section"},
      {"  train.optimiser.lr: [0.1]",
       "test.yaml:3:3: grid.train.optimiser.lr: unknown parameter 'optimiser' in train"},
      {"  train.optimizer.lrate: [0.1]",
       "test.yaml:3:3: grid.train.optimizer.lrate: unknown parameter 'lrate' in train.optimizer"},
      {"  model..depth_n: [1]",
       "test.yaml:3:3: grid.model..depth_n: unknown parameter '' in model"},
      {"  model.: [1]", "test.yaml:3:3: grid.model.: unknown parameter '' in model"},
      {"  seeds: [1]", "test.yaml:3:3: grid.seeds: not a parameter path: no section 'seeds'"},
      {"  results.last_k: [1]", "test.yaml:3:3: grid.results.last_k: not a parameter path"},
  };
  for (const auto& c : cases) {
    const std::string e = ErrorOf("name: x\ngrid:\n" + c.grid_line + "\n");
    EXPECT_NE(e.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in:\n" << e;
  }
  // Flow style points at the key too; a typo among valid axes is reported alone.
  const std::string flow = ErrorOf("name: x\ngrid: {model.depth_n: [1], modle.block: [preact]}\n");
  EXPECT_EQ(flow,
            "test.yaml:2:28: grid.modle.block: not a parameter path: no section 'modle' "
            "(sections: dataset, model, train, trainer); did you mean model.block?");
  // A typo inside a section-valued axis points at the key inside the value.
  const std::string inner =
      ErrorOf("name: x\ngrid:\n  train.optimizer: [{name: adam}, {name: sgd, lrate: 0.1}]\n");
  EXPECT_NE(inner.find("test.yaml:3:47: train.optimizer.lrate: unknown key"), std::string::npos)
      << inner;
}

TEST(SweepSpec, OverlappingAxesAreRejected) {
  // Which axis would win depends on their order; one of them would silently do nothing.
  const std::string e = ErrorOf(
      "name: x\ngrid:\n  train.optimizer.lr: [0.1, 0.2]\n  train.optimizer: [{name: adam}]\n");
  EXPECT_NE(e.find("test.yaml:4:3: grid.train.optimizer: overlaps the axis train.optimizer.lr "
                   "(line 3)"),
            std::string::npos)
      << e;
}

std::vector<std::string> WarningsOf(const std::string& yaml) {
  auto spec = ParseSweepSpec(yaml, "test.yaml");
  EXPECT_TRUE(spec.ok()) << "warnings never refuse a sweep: " << spec.status().ToString();
  return spec.ok() ? spec->warnings : std::vector<std::string>{"<refused>"};
}

using Lines = std::vector<std::string>;

TEST(SweepSpecWarnings, CleanSweepsHaveNone) {
  EXPECT_EQ(WarningsOf(kValid), Lines{});
  // Every shipped sweep: no warning is expected from any of them.
  for (const std::string& name : ShippedSweepFiles()) {
    auto spec = LoadSweepSpecFile(std::string(RESWEEP_SOURCE_DIR) + "/sweeps/" + name);
    ASSERT_TRUE(spec.ok()) << name << ": " << spec.status().ToString();
    EXPECT_EQ(spec->warnings, Lines{}) << name;
  }
  // Each optimizer with only its own options, schedules with theirs, milestones inside
  // the run (also in iterations), and a last-K within the evaluated epochs.
  EXPECT_EQ(WarningsOf(R"(name: clean
dataset: {kind: fashion-mnist, train_limit: 6000}
train:
  epochs: 30
  eval_every: 5
  schedule: {milestones: [10, 20], gamma: 0.2, warmup_iterations: 100, warmup_lr: 0.02}
grid:
  train.optimizer: [{name: sgd, momentum: 0.9, nesterov: true}, {name: adam, beta1: 0.8, eps: 1.0e-6},
                    {name: adamw, beta2: 0.99}, {name: rmsprop, alpha: 0.9, momentum: 0.5, eps: 0.01}]
  train.batch_size: [64, 128]
results: {last_k: 6}
)"),
            Lines{});
  EXPECT_EQ(
      WarningsOf("name: x\ntrain:\n  epochs: 20\n  schedule: {kind: cosine, min_lr: 0.001}\n"),
      Lines{});
  EXPECT_EQ(WarningsOf("name: x\ndataset: {train_limit: 5000}\ntrain:\n  epochs: 100\n"
                       "  schedule: {milestone_unit: iteration, milestones: [3000, 3900]}\n"),
            Lines{});  // 100 epochs x 40 batches = 4,000 iterations
}

TEST(SweepSpecWarnings, MilestonesPastTheLastEpoch) {
  // The default milestones [80, 160] in a 10-epoch sweep: the rate never decays.
  EXPECT_EQ(WarningsOf("name: x\ntrain: {epochs: 10}\n"),
            Lines{"test.yaml:2:17: train.schedule.milestones: the learning rate never decays: "
                  "milestones 80, 160 (the default) are all at or past train.epochs = 10 "
                  "(milestone m decays the rate from epoch m+1 on)"});
  // Milestone m applies from epoch m+1: m = epochs is already too late.
  EXPECT_EQ(WarningsOf("name: x\ntrain:\n  epochs: 30\n  schedule: {milestones: [15, 30]}\n"),
            Lines{"test.yaml:4:26: train.schedule.milestones: milestone 30 is at or past "
                  "train.epochs = 30, so it never applies (milestone m decays the rate from epoch "
                  "m+1 on)"});
  EXPECT_EQ(WarningsOf("name: x\ntrain:\n  epochs: 31\n  schedule: {milestones: [15, 30]}\n"),
            Lines{});
  // Epochs from the grid: one line per offending value, pointing at it, however many
  // cells and seeds share it.
  EXPECT_EQ(WarningsOf("name: x\ngrid:\n  train.epochs: [50, 120, 200]\n"
                       "  model.depth_n: [1, 2, 3]\nseeds: 4\n"),
            (Lines{"test.yaml:3:18: train.schedule.milestones: the learning rate never decays: "
                   "milestones 80, 160 (the default) are all at or past train.epochs = 50 "
                   "(milestone m decays the rate from epoch m+1 on)",
                   "test.yaml:3:22: train.schedule.milestones: milestone 160 (the default) is at "
                   "or past train.epochs = 120, so it never applies (milestone m decays the rate "
                   "from epoch m+1 on)"}));
  // Iteration milestones against the run's iterations: 10 epochs x 391 batches of 128.
  EXPECT_EQ(
      WarningsOf("name: x\ntrain:\n  epochs: 10\n"
                 "  schedule: {milestone_unit: iteration, milestones: [32000, 48000]}\n"),
      Lines{"test.yaml:4:53: train.schedule.milestones: the learning rate never decays: "
            "milestones 32,000, 48,000 are all at or past the run's last iteration (at most 3,910: "
            "10 epochs x 391 batches of 128 from 50,000 training images)"});
  // Only step schedules have milestones to reach.
  EXPECT_EQ(WarningsOf("name: x\ntrain: {epochs: 10, schedule: {kind: cosine}}\n"), Lines{});
}

TEST(SweepSpecWarnings, OptionsTheOptimizerIgnores) {
  EXPECT_EQ(WarningsOf("name: x\ntrain:\n  optimizer: {name: adam, lr: 0.001, momentum: 0.9, "
                       "nesterov: true}\n"),
            (Lines{"test.yaml:3:48: train.optimizer.momentum: has no effect with optimizer adam "
                   "(it applies to sgd, rmsprop)",
                   "test.yaml:3:63: train.optimizer.nesterov: has no effect with optimizer adam "
                   "(it applies to sgd)"}));
  EXPECT_EQ(WarningsOf("name: x\ntrain:\n  optimizer: {name: sgd, beta1: 0.8, eps: 0.001, "
                       "alpha: 0.9}\n"),
            (Lines{"test.yaml:3:33: train.optimizer.beta1: has no effect with optimizer sgd (it "
                   "applies to adam, adamw)",
                   "test.yaml:3:43: train.optimizer.eps: has no effect with optimizer sgd (it "
                   "applies to rmsprop, adam, adamw)",
                   "test.yaml:3:57: train.optimizer.alpha: has no effect with optimizer sgd (it "
                   "applies to rmsprop)"}));
  // The optimizer from the grid: each optimizer that ignores the base's option says
  // so once, at the option.
  EXPECT_EQ(
      WarningsOf("name: x\ntrain:\n  optimizer: {momentum: 0.95, nesterov: true}\ngrid:\n"
                 "  train.optimizer.name: [sgd, rmsprop, adam, adamw]\n"
                 "  train.optimizer.lr: [0.1, 0.01]\nseeds: 3\n"),
      (Lines{"test.yaml:3:41: train.optimizer.nesterov: has no effect with optimizer "
             "rmsprop (it applies to sgd)",
             "test.yaml:3:25: train.optimizer.momentum: has no effect with optimizer adam "
             "(it applies to sgd, rmsprop)",
             "test.yaml:3:41: train.optimizer.nesterov: has no effect with optimizer adam (it "
             "applies to sgd)",
             "test.yaml:3:25: train.optimizer.momentum: has no effect with optimizer adamw "
             "(it applies to sgd, rmsprop)",
             "test.yaml:3:41: train.optimizer.nesterov: has no effect with optimizer adamw "
             "(it applies to sgd)"}));
}

TEST(SweepSpecWarnings, OptionsTheScheduleIgnores) {
  EXPECT_EQ(
      WarningsOf("name: x\ntrain:\n  schedule: {kind: cosine, milestones: [5], min_lr: 0.01}\n"),
      Lines{"test.yaml:3:40: train.schedule.milestones: has no effect with schedule kind cosine "
            "(it applies to kind step)"});
  EXPECT_EQ(WarningsOf("name: x\ntrain:\n  schedule: {min_lr: 0.01, warmup_lr: 0.05}\n"),
            (Lines{"test.yaml:3:22: train.schedule.min_lr: has no effect with schedule kind step "
                   "(it applies to kind cosine)",
                   "test.yaml:3:39: train.schedule.warmup_lr: has no effect without a warm-up "
                   "(train.schedule.warmup_iterations is 0)"}));
}

TEST(SweepSpecWarnings, LastKBeyondTheEvaluatedEpochs) {
  // The default last_k (5) with 3 epochs: the mean includes epoch 1.
  EXPECT_EQ(WarningsOf("name: x\ntrain: {epochs: 3, schedule: {milestones: [2]}}\n"),
            Lines{"test.yaml:2:17: results.last_k: 5 is more than the 3 evaluated epochs of a run "
                  "(train.epochs is 3): the last-K mean averages all of them, the first ones "
                  "included"});
  // Evaluated epochs, not epochs: 40 epochs evaluated every 10th are 4 evaluations.
  const std::string sparse =
      "name: x\ntrain: {epochs: 40, eval_every: 10, schedule: {milestones: [20]}}\n"
      "results: {last_k: 5}\n";
  EXPECT_EQ(WarningsOf(sparse),
            Lines{"test.yaml:3:19: results.last_k: 5 is more than the 4 evaluated epochs of a run "
                  "(train.epochs is 40, train.eval_every 10): the last-K mean averages all of "
                  "them, the first ones included"});
  // The synthetic trainer reports every epoch, whatever eval_every says.
  EXPECT_EQ(WarningsOf(sparse + "trainer: {kind: synthetic}\n"), Lines{});
  // Epochs from the grid: the short values are pointed at.
  EXPECT_EQ(WarningsOf("name: x\ntrain: {schedule: {milestones: [1]}}\ngrid:\n"
                       "  train.epochs: [2, 5, 40]\n"),
            Lines{"test.yaml:4:18: results.last_k: 5 is more than the 2 evaluated epochs of a run "
                  "(train.epochs is 2): the last-K mean averages all of them, the first ones "
                  "included"});
}

TEST(SweepSpecWarnings, BaseFieldsOfASectionAxisAreUnused) {
  // The axis replaces train.optimizer whole: the base's weight decay is not used by
  // either cell (both get the default 1e-4).
  auto spec = ParseSweepSpec(
      "name: x\ntrain:\n  optimizer: {weight_decay: 5.0e-4}\ngrid:\n"
      "  train.optimizer: [{name: sgd, lr: 0.1}, {name: adam, lr: 0.001}]\n",
      "test.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_DOUBLE_EQ(spec->runs[0].cell->config.train.optimizer.weight_decay, 1e-4);
  EXPECT_EQ(spec->warnings,
            Lines{"test.yaml:3:15: train.optimizer.weight_decay: not used: the grid axis "
                  "train.optimizer (line 5) replaces the whole section, and fields its values "
                  "leave out take their defaults"});
}

TEST(SweepSpecWarnings, SyntheticTrainerHasNoTrainingTraps) {
  // No optimiser or learning rate: milestones and optimizer options cannot mislead.
  EXPECT_EQ(WarningsOf("name: x\ntrainer: {kind: synthetic}\n"
                       "train: {epochs: 10, optimizer: {name: adam, momentum: 0.9}}\n"),
            Lines{});
}

TEST(SweepSpec, DuplicateKeysSyntaxErrorsAndEncoding) {
  EXPECT_NE(ErrorOf("name: x\nmodel: {depth_n: 3, depth_n: 5}\n").find("duplicate key"),
            std::string::npos);
  const std::string syntax = ErrorOf("name: x\nmodel: {depth_n: 3\ntrain: [\n");
  EXPECT_NE(syntax.find("YAML syntax error"), std::string::npos) << syntax;
  EXPECT_NE(syntax.find("test.yaml:"), std::string::npos) << syntax;
  const std::string utf8 = ErrorOf("name: x\ndescription: caf\xe9\n");
  EXPECT_NE(utf8.find("test.yaml:2: not valid UTF-8"), std::string::npos) << utf8;
  EXPECT_NE(ErrorOf("- just\n- a list\n").find("must be a mapping"), std::string::npos);
  EXPECT_NE(ErrorOf("model: {depth_n: 3}\n").find("name: required"), std::string::npos);
}

TEST(SweepSpec, SeedsAndLimits) {
  EXPECT_NE(ErrorOf("name: x\nseeds: 0\n").find("seeds"), std::string::npos);
  EXPECT_NE(ErrorOf("name: x\nseeds: [1, 1]\n").find("duplicate seed"), std::string::npos);
  EXPECT_NE(ErrorOf("name: x\nseeds: [-1]\n").find("non-negative"), std::string::npos);
  SpecLimits tiny;
  tiny.max_bytes = 16;
  EXPECT_NE(ErrorOf("name: a-longer-name-than-sixteen-bytes\n", tiny).find("limited to 16 bytes"),
            std::string::npos);
}

TEST(SweepSpec, AliasBombIsHarmless) {
  // Each level doubles: expanding it would need 2^30 nodes. The parser only walks
  // the fields it knows, so this fails fast as an unknown key.
  std::string bomb = "name: x\na0: &a0 [1, 1]\n";
  for (int i = 1; i <= 30; ++i) {
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) +
            ", *a" + std::to_string(i - 1) + "]\n";
  }
  EXPECT_NE(ErrorOf(bomb).find("unknown key"), std::string::npos);
  // An alias used as a grid axis is read like any value: a list where an integer
  // belongs is a type error.
  const std::string grid_bomb =
      "name: x\ngrid:\n  train.schedule.milestones: &m [[1, 2]]\n  model.depth_n: *m\n";
  EXPECT_FALSE(ParseSweepSpec(grid_bomb, "g.yaml").ok());
}

TEST(SweepSpec, ShippedSweepFilesAreValid) {
  // Every file in sweeps/ parses without errors (and without warnings:
  // SweepSpecWarnings.CleanSweepsHaveNone) and expands to the runs its header
  // comment promises. A new file must be added here.
  const std::map<std::string, size_t> runs = {
      {"blocks-fmnist.yaml", 10}, {"blocks.yaml", 25},
      {"demo.yaml", 4},           {"fig6-depth-fmnist.yaml", 8},
      {"fig6-depth.yaml", 25},    {"optimizers-fmnist.yaml", 10},
      {"optimizers.yaml", 25},    {"preprocessing-fmnist.yaml", 12},
      {"preprocessing.yaml", 30}, {"synthetic.yaml", 24},
  };
  std::map<std::string, size_t> found;
  for (const std::string& name : ShippedSweepFiles()) {
    auto spec = LoadSweepSpecFile(std::string(RESWEEP_SOURCE_DIR) + "/sweeps/" + name);
    ASSERT_TRUE(spec.ok()) << name << ": " << spec.status().ToString();
    found[name] = spec->runs.size();
  }
  EXPECT_EQ(found, runs);
  auto depth = LoadSweepSpecFile(std::string(RESWEEP_SOURCE_DIR) + "/sweeps/fig6-depth.yaml");
  ASSERT_TRUE(depth.ok());
  EXPECT_EQ(depth->runs.size(), 25u);
  EXPECT_EQ(depth->runs.back().cell->config.layers(), 110);
  auto missing = LoadSweepSpecFile("/nonexistent/sweep.yaml");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/sweep.yaml"), std::string::npos);
}

TEST(SweepSpec, NamesAreSafeToTypeAndPrint) {
  for (const std::string good : {"fig6-depth", "blocks_v2", "a.b+c@d", "9"}) {
    EXPECT_TRUE(ParseSweepSpec("name: \"" + good + "\"\n", "n.yaml").ok()) << good;
  }
  for (const std::string bad :
       {"two words", "evil\\nname", "esc\\e[31mred", "--all", ".hidden", "tab\\there", "a/b"}) {
    auto spec = ParseSweepSpec("name: \"" + bad + "\"\n", "n.yaml");
    ASSERT_FALSE(spec.ok()) << bad;
    EXPECT_NE(spec.status().message().find("name"), std::string::npos) << spec.status().message();
  }
}

// Issue 8 item 5: a per-attempt time limit, validated; the synthetic hang settings
// only where they apply. Neither changes the run id of a config that does not use it.
TEST(SweepSpec, MaxRunSecondsIsValidatedAndKeepsOtherRunIds) {
  EXPECT_NE(ErrorOf("name: x\ntrain: {max_run_seconds: -1}\n").find("train.max_run_seconds"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ntrain: {max_run_seconds: .inf}\n").find("train.max_run_seconds"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ntrainer: {hang_at_epoch: 2}\n").find("trainer.hang_at_epoch"),
            std::string::npos);  // the libtorch trainer does not hang on request
  auto limited = ParseSweepSpec("name: x\ntrain: {max_run_seconds: 3600}\n", "x.yaml");
  ASSERT_TRUE(limited.ok()) << limited.status().ToString();
  EXPECT_EQ(limited->runs[0].cell->config.train.max_run_seconds, 3600);
  auto again = RunConfigFromJson(limited->runs[0].cell->config_json);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->train.max_run_seconds, 3600);  // travels to the worker
  auto plain = ParseSweepSpec("name: x\n", "x.yaml");
  auto zero = ParseSweepSpec("name: x\ntrain: {max_run_seconds: 0}\n", "x.yaml");
  ASSERT_TRUE(plain.ok() && zero.ok());
  EXPECT_EQ(plain->runs[0].run_id, zero->runs[0].run_id);
  EXPECT_NE(plain->runs[0].run_id, limited->runs[0].run_id);
}

// ---- Overrides (docs/sweep-spec.md, "Overrides") ----

const char* kDepths = R"(name: depths
model: {block: reference}
train: {epochs: 200, optimizer: {nesterov: true}}
grid:
  model.depth_n: [3, 5, 18]
  model.block: [reference, preact]
seeds: 2
)";

std::map<std::string, std::string> RunIdsByCellAndSeed(const SweepSpec& spec) {
  std::map<std::string, std::string> ids;
  for (const auto& r : spec.runs)
    ids[r.cell->cell_label + " seed " + std::to_string(r.seed)] = r.run_id;
  return ids;
}

TEST(SweepSpecOverrides, ChangeOnlyTheCellsTheyMatch) {
  auto plain = ParseSweepSpec(kDepths, "test.yaml");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  auto warm = ParseSweepSpec(std::string(kDepths) + R"(overrides:
  - where: {model.depth_n: 18}
    set: {train.schedule.warmup_iterations: 400, train.schedule.warmup_lr: 0.01}
)",
                             "test.yaml");
  ASSERT_TRUE(warm.ok()) << warm.status().ToString();
  ASSERT_EQ(warm->runs.size(), plain->runs.size());
  EXPECT_EQ(warm->warnings, Lines{});
  const auto before = RunIdsByCellAndSeed(*plain);
  const auto after = RunIdsByCellAndSeed(*warm);
  ASSERT_EQ(after.size(), 12u);
  int changed = 0;
  for (const auto& [cell, id] : after) {
    ASSERT_TRUE(before.count(cell)) << cell;  // labels do not change
    if (cell.rfind("model.depth_n=18 ", 0) == 0) {
      EXPECT_NE(id, before.at(cell)) << cell;
      ++changed;
    } else {
      EXPECT_EQ(id, before.at(cell)) << cell;  // untouched cells: the very same runs
    }
  }
  EXPECT_EQ(changed, 4);  // 2 blocks x 2 seeds
  EXPECT_NE(warm->sweep_id, plain->sweep_id);
  for (const auto& r : warm->runs) {
    const bool deep = r.cell->config.model.depth_n == 18;
    EXPECT_EQ(r.cell->config.train.schedule.warmup_iterations, deep ? 400 : 0)
        << r.cell->cell_label;
    EXPECT_DOUBLE_EQ(r.cell->config.train.schedule.warmup_lr, 0.01)
        << r.cell->cell_label;                             // the default
    EXPECT_TRUE(r.cell->config.train.optimizer.nesterov);  // the base still applies
  }
  // The override's cell is the cell a grid with the warm-up in its base would make.
  auto all_warm = ParseSweepSpec(
      "name: w\ntrain: {epochs: 200, optimizer: {nesterov: true}, schedule: "
      "{warmup_iterations: 400, warmup_lr: 0.01}}\nmodel: {depth_n: 18, block: preact}\nseeds: 2\n",
      "w.yaml");
  ASSERT_TRUE(all_warm.ok()) << all_warm.status().ToString();
  EXPECT_EQ(all_warm->runs[1].run_id, after.at("model.depth_n=18 model.block=preact seed 1"));
}

TEST(SweepSpecOverrides, WhereMatchesTypedValuesOfSeveralAxes) {
  auto spec = ParseSweepSpec(R"(name: where
train: {epochs: 10, schedule: {milestones: [5]}}
grid:
  model.depth_n: [3, 18]
  train.optimizer.lr: [0.1, 0.05]
  train.schedule.milestones: [[5], [4, 8]]
overrides:
  - where: {model.depth_n: 18, train.optimizer.lr: 0.10, train.schedule.milestones: [4, 8]}
    set: {train.epochs: 12}
)",
                             "test.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  int matched = 0;
  for (const auto& r : spec->runs) {
    const bool match = r.cell->config.model.depth_n == 18 &&
                       r.cell->config.train.optimizer.lr == 0.1 &&
                       r.cell->config.train.schedule.milestones.size() == 2;
    EXPECT_EQ(r.cell->config.train.epochs, match ? 12 : 10) << r.cell->cell_label;
    matched += match;
  }
  EXPECT_EQ(matched, 1);
  // A section axis is matched by its whole resolved value, a linked axis by label.
  auto sections = ParseSweepSpec(R"(name: sections
grid:
  train.optimizer: [{name: sgd}, {name: adam, lr: 0.001}]
  augmentation:
    - {label: on, dataset.augment_padding: 4, dataset.augment_flip: true}
    - {label: off, dataset.augment_padding: 0, dataset.augment_flip: false}
overrides:
  - where: {train.optimizer: {lr: 0.001, name: adam}, augmentation: off}
    set: {train.epochs: 7}
)",
                                 "test.yaml");
  ASSERT_TRUE(sections.ok()) << sections.status().ToString();
  ASSERT_EQ(sections->runs.size(), 4u);
  for (const auto& r : sections->runs) {
    const bool match =
        r.cell->config.train.optimizer.name == "adam" && !r.cell->config.dataset.augment_flip;
    EXPECT_EQ(r.cell->config.train.epochs, match ? 7 : 200) << r.cell->cell_label;
  }
}

TEST(SweepSpecOverrides, SeveralApplyInFileOrderAndMustAgree) {
  // Overlapping overrides setting different fields both apply; the same value twice
  // is fine.
  auto both = ParseSweepSpec(std::string(kDepths) + R"(overrides:
  - where: {model.depth_n: 18}
    set: {train.schedule.warmup_iterations: 400, train.epochs: 180}
  - where: {model.block: preact}
    set: {train.schedule.warmup_lr: 0.02, train.epochs: 180}
)",
                             "test.yaml");
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  for (const auto& r : both->runs) {
    const bool deep = r.cell->config.model.depth_n == 18,
               preact = r.cell->config.model.block == "preact";
    EXPECT_EQ(r.cell->config.train.schedule.warmup_iterations, deep ? 400 : 0);
    EXPECT_DOUBLE_EQ(r.cell->config.train.schedule.warmup_lr, preact ? 0.02 : 0.01);
    EXPECT_EQ(r.cell->config.train.epochs, deep || preact ? 180 : 200);
  }
  // Different values for a cell both match: an error naming both, whatever the order.
  EXPECT_EQ(ErrorOf(std::string(kDepths) + R"(overrides:
  - where: {model.depth_n: 18}
    set: {train.epochs: 180}
  - where: {model.block: preact}
    set: {train.epochs: 160}
)"),
            "test.yaml:12:25: overrides[1].set.train.epochs: conflicts with the override at line "
            "9, which sets it to 180 in some of the same cells: overrides that match one cell "
            "must agree");
  // Different values for disjoint cells are fine.
  auto disjoint = ParseSweepSpec(std::string(kDepths) + R"(overrides:
  - where: {model.depth_n: 18}
    set: {train.epochs: 180}
  - where: {model.depth_n: 5}
    set: {train.epochs: 160}
)",
                                 "test.yaml");
  ASSERT_TRUE(disjoint.ok()) << disjoint.status().ToString();
  EXPECT_EQ(disjoint->runs.back().cell->config.train.epochs, 180);
}

TEST(SweepSpecOverrides, ValuesAreValidatedLikeTheBaseAndPointAtTheOverride) {
  // A cell's resolved config is checked: the range error points at the override.
  EXPECT_EQ(ErrorOf(std::string(kDepths) + R"(overrides:
  - where: {model.depth_n: 18}
    set: {train.schedule.warmup_lr: 20}
)"),
            "test.yaml:10:37: train.schedule.warmup_lr: must be in (0, 10]");
  EXPECT_EQ(ErrorOf(std::string(kDepths) + R"(overrides:
  - where: {model.depth_n: 18}
    set: {train.schedule.warmup_iterations: "400"}
)"),
            "test.yaml:10:45: train.schedule.warmup_iterations: must be an integer, got the "
            "quoted string \"400\"");
  // Warnings point at the override too (a warm-up rate without a warm-up).
  EXPECT_EQ(WarningsOf(std::string(kDepths) + R"(overrides:
  - where: {model.depth_n: 18}
    set: {train.schedule.warmup_lr: 0.02}
)"),
            Lines{"test.yaml:10:37: train.schedule.warmup_lr: has no effect without a warm-up "
                  "(train.schedule.warmup_iterations is 0)"});
}

TEST(SweepSpecOverrides, MistakesAreErrorsAtTheirLine) {
  struct Case {
    std::string overrides;
    std::string expect;
  };
  const std::string prefix = std::string(kDepths) + "overrides:\n";
  const std::vector<Case> cases = {
      // where: a grid axis, and one of its values
      {"  - where: {model.depht_n: 18}\n    set: {train.epochs: 10}\n",
       "test.yaml:9:13: overrides[0].where.model.depht_n: not a grid axis: where matches values "
       "of grid axes (axes: model.depth_n, model.block); did you mean model.depth_n?"},
      {"  - where: {train.epochs: 200}\n    set: {train.epochs: 10}\n",
       "test.yaml:9:13: overrides[0].where.train.epochs: not a grid axis"},
      {"  - where: {model.depth_n: 17}\n    set: {train.epochs: 10}\n",
       "test.yaml:9:28: overrides[0].where.model.depth_n: 17 matches no value of the axis, so no "
       "cell (values: 3, 5, 18)"},
      {"  - where: {model.block: prefact}\n    set: {train.epochs: 10}\n",
       "test.yaml:9:26: overrides[0].where.model.block: prefact matches no value of the axis, so "
       "no cell (values: reference, preact)"},
      {"  - where: {model.depth_n: eighteen}\n    set: {train.epochs: 10}\n",
       "test.yaml:9:28: model.depth_n: must be an integer, got 'eighteen'"},
      {"  - where: {}\n    set: {train.epochs: 10}\n",
       "test.yaml:9:12: overrides[0].where: is empty: grid axis values that pick the cells"},
      {"  - set: {train.epochs: 10}\n",
       "test.yaml:9:5: overrides[0].where: required: grid axis values"},
      {"  - where: {model.depth_n: 18}\n",
       "test.yaml:9:5: overrides[0].set: required: the fields to change"},
      {"  - where: {model.depth_n: 18}\n    set: {}\n",
       "test.yaml:10:10: overrides[0].set: is empty: the fields to change"},
      {"  - where: {model.depth_n: 18}\n    set: [train.epochs]\n",
       "test.yaml:10:10: overrides[0].set: must be a mapping, got a list"},
      // set: known single fields that no axis sets
      {"  - where: {model.depth_n: 18}\n    set: {train.schedule.warmup_iteratons: 400}\n",
       "test.yaml:10:11: overrides[0].set.train.schedule.warmup_iteratons: unknown parameter "
       "'warmup_iteratons' in train.schedule (known here: gamma, kind, milestone_unit, "
       "milestones, min_lr, warmup_iterations, warmup_kind, warmup_lr); did you mean "
       "train.schedule.warmup_iterations?"},
      {"  - where: {model.depth_n: 18}\n    set: {model.block: preact}\n",
       "test.yaml:10:11: overrides[0].set.model.block: is set by the axis model.block (line 6): "
       "an override cannot change a parameter a grid axis sets"},
      {"  - where: {model.depth_n: 18}\n    set: {train.schedule: {warmup_iterations: 400}}\n",
       "test.yaml:10:11: overrides[0].set.train.schedule: names a section: set single "
       "parameters, e.g. train.schedule.gamma"},
      {"  - where: {model.depth_n: 18}\n    set: {train.epochs: 10, train.epochs: 20}\n",
       "overrides[0].set.train.epochs: duplicate key"},
      // the entry itself
      {"  - where: {model.depth_n: 18}\n    when: {model.block: preact}\n"
       "    set: {train.epochs: 10}\n",
       "test.yaml:10:5: overrides[0].when: unknown key (known here: set, where)"},
      {"  - [model.depth_n, 18]\n",
       "test.yaml:9:5: overrides[0]: must be a mapping {where: ..., set: ...}, got a list"},
  };
  for (const auto& c : cases) {
    const std::string e = ErrorOf(prefix + c.overrides);
    EXPECT_NE(e.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in:\n" << e;
  }
  EXPECT_EQ(ErrorOf("name: x\noverrides: {where: {model.depth_n: 3}}\n"),
            "test.yaml:2:12: overrides: must be a list of {where: ..., set: ...}, got a mapping");
  EXPECT_EQ(ErrorOf("name: x\noverrides:\n  - where: {model.depth_n: 3}\n"
                    "    set: {train.epochs: 10}\n"),
            "test.yaml:3:13: overrides[0].where.model.depth_n: not a grid axis: where matches "
            "values of grid axes (this sweep has no grid)");
  // An axis set inside a section axis is still that axis's.
  EXPECT_NE(ErrorOf("name: x\ngrid:\n  train.optimizer: [{name: sgd}, {name: adam}]\n"
                    "overrides:\n  - where: {train.optimizer: {name: adam}}\n"
                    "    set: {train.optimizer.lr: 0.001}\n")
                .find("test.yaml:6:11: overrides[0].set.train.optimizer.lr: is set by the axis "
                      "train.optimizer (line 3)"),
            std::string::npos);
  SpecLimits few;
  few.max_overrides = 1;
  EXPECT_NE(ErrorOf(prefix + "  - {where: {model.depth_n: 3}, set: {train.epochs: 9}}\n"
                             "  - {where: {model.depth_n: 5}, set: {train.epochs: 9}}\n",
                    few)
                .find("overrides: at most 1 overrides"),
            std::string::npos);
}

// ---- Linked axes (docs/sweep-spec.md, "Linked axes") ----

TEST(SweepSpecLinkedAxes, ValuesMoveTogetherWithReadableLabels) {
  auto spec = ParseSweepSpec(R"(name: linked
train: {optimizer: {weight_decay: 5.0e-4}}
grid:
  model.block: [reference, preact]
  optimizer:
    - {train.optimizer.name: sgd, train.optimizer.lr: 0.1}
    - {train.optimizer.name: adam, train.optimizer.lr: 0.001}
seeds: 2
)",
                             "test.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->warnings, Lines{});
  ASSERT_EQ(spec->runs.size(), 2u * 2u * 2u);  // a linked axis is one axis
  ASSERT_EQ(spec->grid.size(), 2u);
  EXPECT_EQ(spec->grid[1].path, "optimizer");
  EXPECT_EQ(spec->grid[1].size, 2);
  EXPECT_EQ(spec->grid[1].linked_paths,
            (std::vector<std::string>{"train.optimizer.name", "train.optimizer.lr"}));
  EXPECT_TRUE(spec->grid[0].linked_paths.empty());
  EXPECT_EQ(spec->runs[0].cell->cell_label, "model.block=reference optimizer=sgd");
  EXPECT_EQ(spec->runs[2].cell->cell_label, "model.block=reference optimizer=adam");
  EXPECT_EQ(
      spec->runs[2].cell->cell_params,
      (std::map<std::string, std::string>{{"model.block", "reference"}, {"optimizer", "adam"}}));
  for (const auto& r : spec->runs) {
    const bool adam = r.cell->config.train.optimizer.name == "adam";
    EXPECT_DOUBLE_EQ(r.cell->config.train.optimizer.lr, adam ? 0.001 : 0.1);
    // Fields the entries do not list keep the base's value.
    EXPECT_DOUBLE_EQ(r.cell->config.train.optimizer.weight_decay, 5e-4);
  }
  // Identity is the resolved config's: the linked cells are the runs that the same
  // settings written without a grid make.
  auto single = ParseSweepSpec(
      "name: s\ntrain: {optimizer: {name: adam, lr: 0.001, weight_decay: 5.0e-4}}\n"
      "model: {block: preact}\nseeds: 2\n",
      "s.yaml");
  ASSERT_TRUE(single.ok()) << single.status().ToString();
  EXPECT_EQ(single->runs[1].run_id, spec->runs.back().run_id);
}

TEST(SweepSpecLinkedAxes, LabelsAndSectionValues) {
  // A section path in an entry replaces that section, as a section axis does; the
  // label names the value instead of its JSON.
  auto spec = ParseSweepSpec(R"(name: labels
grid:
  optimizer:
    - {label: sgd-nesterov, train.optimizer: {name: sgd, nesterov: true}}
    - {label: adam, train.optimizer: {name: adam, lr: 0.001}}
  augmentation:
    - {label: crop+flip, dataset.augment_padding: 4, dataset.augment_flip: true}
    - {label: none, dataset.augment_padding: 0, dataset.augment_flip: false}
)",
                             "test.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->runs.size(), 4u);
  EXPECT_EQ(spec->runs[0].cell->cell_label, "optimizer=sgd-nesterov augmentation=crop+flip");
  EXPECT_EQ(spec->runs[3].cell->cell_label, "optimizer=adam augmentation=none");
  EXPECT_TRUE(spec->runs[0].cell->config.train.optimizer.nesterov);
  EXPECT_DOUBLE_EQ(spec->runs[0].cell->config.train.optimizer.lr, 0.1);  // the default
  EXPECT_EQ(spec->runs[3].cell->config.dataset.augment_padding, 0);
  EXPECT_FALSE(spec->runs[3].cell->config.dataset.augment_flip);
  // The same cells as the section axis without labels: labels are not identity.
  auto unlabelled = ParseSweepSpec(R"(name: labels
grid:
  train.optimizer: [{name: sgd, nesterov: true}, {name: adam, lr: 0.001}]
  dataset.augment_padding: [4]
)",
                                   "test.yaml");
  ASSERT_TRUE(unlabelled.ok()) << unlabelled.status().ToString();
  EXPECT_EQ(unlabelled->runs[1].run_id, spec->runs[2].run_id);
  // Base fields of a section an entry replaces are unused: a warning, as for a
  // section axis.
  EXPECT_EQ(WarningsOf("name: x\ntrain: {optimizer: {momentum: 0.8}}\ngrid:\n  optimizer:\n"
                       "    - {label: a, train.optimizer: {name: sgd}}\n"),
            Lines{"test.yaml:2:21: train.optimizer.momentum: not used: the linked axis optimizer "
                  "(line 4) replaces the whole section, and fields its values leave out take "
                  "their defaults"});
}

TEST(SweepSpecLinkedAxes, MistakesAreErrorsAtTheirLine) {
  struct Case {
    std::string axis;
    std::string expect;
  };
  const std::vector<Case> cases = {
      // every entry sets the same paths
      {"  optimizer:\n    - {train.optimizer.name: sgd, train.optimizer.lr: 0.1}\n"
       "    - {train.optimizer.name: adam}\n",
       "test.yaml:5:7: grid.optimizer[1]: does not set train.optimizer.lr, which the first entry "
       "(line 4) sets: every entry of a linked axis sets the same parameters"},
      {"  optimizer:\n    - {train.optimizer.name: sgd}\n"
       "    - {train.optimizer.name: adam, train.optimizer.lr: 0.001}\n",
       "test.yaml:5:7: grid.optimizer[1]: sets train.optimizer.lr, which the first entry (line 4) "
       "does not: every entry of a linked axis sets the same parameters"},
      // paths: known, and each parameter set by one axis
      {"  optimizer:\n    - {train.optimizer.nam: sgd}\n",
       "test.yaml:4:8: grid.optimizer[0].train.optimizer.nam: unknown parameter 'nam' in "
       "train.optimizer"},
      {"  optimizer:\n    - {train.optimizer.name: sgd}\n  train.optimizer.name: [adam]\n",
       "test.yaml:5:3: grid.train.optimizer.name: overlaps the linked axis optimizer (its "
       "train.optimizer.name, line 3): at most one axis may set a parameter"},
      {"  train.optimizer: [{name: adam}]\n  optimizer:\n    - {train.optimizer.lr: 0.1}\n",
       "test.yaml:5:8: grid.optimizer[0].train.optimizer.lr: overlaps the axis train.optimizer "
       "(line 3): at most one axis may set a parameter"},
      {"  optimizer:\n    - {train.optimizer: {name: sgd}, train.optimizer.lr: 0.1}\n",
       "test.yaml:4:38: grid.optimizer[0].train.optimizer.lr: overlaps train.optimizer in the "
       "same entry: each parameter once"},
      // labels: distinct and printable
      {"  optimizer:\n    - {train.optimizer.name: sgd, train.optimizer.lr: 0.1}\n"
       "    - {train.optimizer.name: sgd, train.optimizer.lr: 0.05}\n",
       "test.yaml:5:7: grid.optimizer[1]: labelled 'sgd' like the entry at line 4: give the "
       "entries distinct labels (label: NAME)"},
      {"  optimizer:\n    - {label: fast, train.optimizer.lr: 0.1}\n"
       "    - {label: fast, train.optimizer.lr: 0.05}\n",
       "test.yaml:5:15: grid.optimizer[1]: labelled 'fast' like the entry at line 4"},
      {"  optimizer:\n    - {label: two words, train.optimizer.lr: 0.1}\n",
       "test.yaml:4:15: grid.optimizer[0].label: must be 1 to 64 letters, digits or"},
      // entries
      {"  optimizer:\n    - {train.optimizer.lr: 0.1}\n    - 0.05\n",
       "test.yaml:5:7: grid.optimizer[1]: must be a mapping of parameter paths to values (an "
       "entry of a linked axis), got a scalar"},
      {"  optimizer:\n    - {label: a}\n", "test.yaml:4:7: grid.optimizer[0]: sets no parameter"},
      {"  optimizer:\n    - {train.optimizer.lr: 0.1, train.optimizer.lr: 0.2}\n",
       "grid.optimizer[0].train.optimizer.lr: duplicate key"},
      // values: typed and checked like the base, at their line
      {"  optimizer:\n    - {train.optimizer.name: sgd, train.optimizer.lr: fast}\n",
       "test.yaml:4:55: train.optimizer.lr: must be a number, got 'fast'"},
      {"  optimizer:\n    - {train.optimizer.name: sgd, train.optimizer.lr: 0.1}\n"
       "    - {train.optimizer.name: adam, train.optimizer.lr: 20}\n",
       "test.yaml:5:56: train.optimizer.lr: must be in (0, 10]"},
      // names: not a section, and a list of scalars under a name is a path typo
      {"  model: [{depth_n: 3}]\n",
       "test.yaml:3:3: grid.model: a whole top-level section cannot be an axis"},
      {"  depth_n: [3, 5]\n", "test.yaml:3:3: grid.depth_n: not a parameter path"},
      {"  optimizer: []\n", "test.yaml:3:3: grid.optimizer: not a parameter path"},
  };
  for (const auto& c : cases) {
    const std::string e = ErrorOf("name: x\ngrid:\n" + c.axis);
    EXPECT_NE(e.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in:\n" << e;
  }
}

// ---- The shipped study sweeps ----

TEST(SweepSpec, ShippedStudySweepsMatchTheStudy) {
  auto load = [](const std::string& name) {
    auto spec = LoadSweepSpecFile(std::string(RESWEEP_SOURCE_DIR) + "/sweeps/" + name);
    EXPECT_TRUE(spec.ok()) << name << ": " << spec.status().ToString();
    return spec.ok() ? *spec : SweepSpec();
  };
  // The study's protocol, shared by every CIFAR-10 sweep's reference cell: all four
  // sweeps contain the very same runs for it.
  const SweepSpec depth = load("fig6-depth.yaml");
  ASSERT_EQ(depth.runs.size(), 25u);
  EXPECT_EQ(depth.seeds, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  std::set<int> depths;
  for (const auto& r : depth.runs) {
    const RunConfig& c = r.cell->config;
    depths.insert(c.model.depth_n);
    EXPECT_EQ(c.model.block, "reference");
    EXPECT_EQ(c.model.shortcut, "A");
    EXPECT_EQ(c.train.epochs, 200);
    EXPECT_EQ(c.train.batch_size, 128);
    EXPECT_EQ(c.train.optimizer.name, "sgd");
    EXPECT_TRUE(c.train.optimizer.nesterov);
    EXPECT_DOUBLE_EQ(c.train.optimizer.lr, 0.1);
    EXPECT_EQ(c.train.schedule.milestones, (std::vector<int64_t>{80, 160}));
    // The warm-up at 110 layers only.
    EXPECT_EQ(c.train.schedule.warmup_iterations, c.model.depth_n == 18 ? 400 : 0);
    EXPECT_DOUBLE_EQ(c.train.schedule.warmup_lr, 0.01);
  }
  EXPECT_EQ(depths, (std::set<int>{3, 5, 7, 9, 18}));
  const std::string reference = depth.runs[0].run_id;
  const SweepSpec blocks = load("blocks.yaml");
  EXPECT_EQ(blocks.runs[0].cell->cell_label, "model.block=reference");
  EXPECT_EQ(blocks.runs[0].run_id, reference);
  const SweepSpec optimizers = load("optimizers.yaml");
  std::map<std::string, std::pair<std::string, double>> optimizer_of;
  for (const auto& r : optimizers.runs) {
    optimizer_of[r.cell->cell_params.at("optimizer")] = {r.cell->config.train.optimizer.name,
                                                         r.cell->config.train.optimizer.lr};
    if (r.cell->cell_label == "optimizer=sgd-nesterov" && r.seed == 0) {
      EXPECT_EQ(r.run_id, reference);
    }
  }
  EXPECT_EQ(optimizer_of,
            (std::map<std::string, std::pair<std::string, double>>{{"sgd", {"sgd", 0.1}},
                                                                   {"sgd-nesterov", {"sgd", 0.1}},
                                                                   {"rmsprop", {"rmsprop", 0.001}},
                                                                   {"adam", {"adam", 0.001}},
                                                                   {"adamw", {"adamw", 0.001}}}));
  const SweepSpec preprocessing = load("preprocessing.yaml");
  std::set<std::string> cells;
  for (const auto& r : preprocessing.runs) {
    cells.insert(r.cell->cell_label);
    EXPECT_EQ(r.cell->config.dataset.augment_flip, r.cell->config.dataset.augment_padding == 4);
    if (r.cell->cell_label == "dataset.preprocess=per-channel augmentation=crop+flip" &&
        r.seed == 0) {
      EXPECT_EQ(r.run_id, reference);
    }
  }
  EXPECT_EQ(cells.size(), 6u);
  // The Fashion-MNIST twins: small subsets, few epochs, the warm-up at the deepest.
  for (const char* name : {"fig6-depth-fmnist.yaml", "blocks-fmnist.yaml", "optimizers-fmnist.yaml",
                           "preprocessing-fmnist.yaml"}) {
    const SweepSpec twin = load(name);
    ASSERT_FALSE(twin.runs.empty()) << name;
    for (const auto& r : twin.runs) {
      EXPECT_EQ(r.cell->config.dataset.kind, "fashion-mnist") << name;
      EXPECT_LE(r.cell->config.dataset.train_limit, 5000) << name;
      EXPECT_LE(r.cell->config.dataset.test_limit, 2000) << name;
      EXPECT_LE(r.cell->config.train.epochs, 5) << name;
      EXPECT_LE(r.cell->config.model.depth_n, 5) << name;
    }
    EXPECT_LE(twin.seeds.size(), 3u) << name;
  }
  for (const auto& r : load("fig6-depth-fmnist.yaml").runs) {
    EXPECT_EQ(r.cell->config.train.schedule.warmup_iterations,
              r.cell->config.model.depth_n == 5 ? 40 : 0);
  }
}

}  // namespace
// Run ids hash a cell's config once and each seed's suffix after it: a copied
// Sha256 must go on from the copy's state, the original unchanged.
TEST(Sha256, CopiesCarryTheStateSoFar) {
  const std::string prefix(1000, 'c');  // longer than a block, not a whole number of them
  Sha256 config;
  config.Update(prefix);
  EXPECT_EQ(config.HexDigest(), Sha256Hex(prefix));
  for (int seed : {0, 1, 12345}) {
    Sha256 run = config;
    run.Update("\nseed=" + std::to_string(seed));
    EXPECT_EQ(run.HexDigest(), Sha256Hex(prefix + "\nseed=" + std::to_string(seed)));
  }
  EXPECT_EQ(config.HexDigest(), Sha256Hex(prefix));
  Sha256 assigned;
  assigned.Update("other");
  assigned = config;
  assigned.Update("x");
  EXPECT_EQ(assigned.HexDigest(), Sha256Hex(prefix + "x"));
  EXPECT_EQ(Sha256().HexDigest(), Sha256Hex(""));
}

}  // namespace resweep
