#include "common/sweep_spec.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(spec->runs[0].cell_label, "model.depth_n=3 model.block=reference");
  EXPECT_EQ(spec->runs[4].cell_label, "model.depth_n=3 model.block=preact");
  EXPECT_EQ(spec->runs[8].cell_label, "model.depth_n=5 model.block=reference");
  EXPECT_EQ(spec->runs[8].config.model.depth_n, 5);
  EXPECT_EQ(spec->runs[4].config.model.block, "preact");
  EXPECT_EQ(spec->runs[8].config.train.optimizer.weight_decay, 1e-4);
  EXPECT_EQ(spec->runs[8].config.train.schedule.milestones, (std::vector<int64_t>{80, 160}));
  // Runs of one cell share the cell key and differ in id.
  EXPECT_EQ(spec->runs[0].cell_key, spec->runs[1].cell_key);
  EXPECT_NE(spec->runs[0].run_id, spec->runs[1].run_id);
  EXPECT_NE(spec->runs[0].cell_key, spec->runs[4].cell_key);
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

TEST(SweepSpec, CanonicalJsonRoundTrips) {
  auto spec = ParseSweepSpec(kValid, "test.yaml");
  ASSERT_TRUE(spec.ok());
  auto back = RunConfigFromJson(spec->runs[5].config_json);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(RunConfigToCanonicalJson(*back), spec->runs[5].config_json);
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
  EXPECT_DOUBLE_EQ(spec->runs[0].config.train.optimizer.lr, 0.05);
  EXPECT_DOUBLE_EQ(spec->runs[2].config.train.optimizer.lr, 0.1);
  EXPECT_EQ(spec->runs[0].config.train.schedule.milestone_unit, "iteration");
  EXPECT_EQ(spec->runs[1].seed, 11);
  EXPECT_EQ(spec->runs[0].cell_params.at("train.optimizer.lr"), "0.05");
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
                .find("more than 10 runs"),
            std::string::npos);
  EXPECT_NE(ErrorOf("name: x\ngrid:\n  model.depth_n: [1, 2]\n  train.epochs: [1, 2]\n"
                    "  train.batch_size: [1, 2]\n  train.optimizer.lr: [0.1, 0.2]\n",
                    small)
                .find("more than 10 runs"),
            std::string::npos);
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
  for (const char* name : {"fig6-depth.yaml", "blocks.yaml", "demo.yaml", "synthetic.yaml"}) {
    auto spec = LoadSweepSpecFile(std::string(RESWEEP_SOURCE_DIR) + "/sweeps/" + name);
    EXPECT_TRUE(spec.ok()) << name << ": " << spec.status().ToString();
  }
  auto depth = LoadSweepSpecFile(std::string(RESWEEP_SOURCE_DIR) + "/sweeps/fig6-depth.yaml");
  ASSERT_TRUE(depth.ok());
  EXPECT_EQ(depth->runs.size(), 25u);
  EXPECT_EQ(depth->runs.back().config.layers(), 110);
  auto missing = LoadSweepSpecFile("/nonexistent/sweep.yaml");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/sweep.yaml"), std::string::npos);
}

}  // namespace
}  // namespace resweep
