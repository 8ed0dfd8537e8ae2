#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/format.h"
#include "common/reference_results.h"
#include "common/stats.h"
#include "coordinator/results.h"

namespace resweep {
namespace {

TEST(Stats, MeanAndSampleStdMatchHandComputedValues) {
  Summary s = Summarize({0.1, 0.2, 0.3});
  EXPECT_EQ(s.n, 3);
  EXPECT_NEAR(s.mean, 0.2, 1e-15);
  EXPECT_NEAR(s.std, 0.1, 1e-15);  // sqrt(((-.1)^2 + 0 + .1^2) / 2)
  EXPECT_DOUBLE_EQ(s.min, 0.1);
  EXPECT_DOUBLE_EQ(s.max, 0.3);
  Summary t = Summarize({0.0645, 0.0661, 0.0652, 0.0670, 0.0677});
  EXPECT_NEAR(t.mean, 0.0661, 1e-12);
  EXPECT_NEAR(t.std, 0.0012980755, 1e-9);
  EXPECT_EQ(Summarize({0.5}).std, 0.0);
  EXPECT_EQ(Summarize({}).n, 0);
}

TEST(Stats, WelchPValueMatchesReference) {
  Summary a{5, 10, 1, 0, 0}, b{5, 12, 1, 0, 0};
  EXPECT_NEAR(WelchTTestPValue(a, b), 0.0133491, 1e-5);  // t = 3.162, df = 8
  Summary c{4, 0.070, 0.004, 0, 0}, d{6, 0.075, 0.006, 0, 0};
  EXPECT_NEAR(WelchTTestPValue(c, d), 0.152603, 1e-4);  // df = 7.98
  EXPECT_NEAR(WelchTTestPValue(a, a), 1.0, 1e-9);
  EXPECT_LT(WelchTTestPValue(Summary{1, 0, 0, 0, 0}, a), 0);
}

TEST(Results, LastKSkipsUnevaluatedEpochs) {
  std::vector<EpochRecord> epochs(5);
  const double errors[] = {0.5, 0.4, -1, 0.2, -1};
  for (int i = 0; i < 5; ++i) {
    epochs[i].epoch = i + 1;
    epochs[i].test_error = errors[i];
  }
  EXPECT_NEAR(LastKMeanTestError(epochs, 2), 0.3, 1e-12);
  EXPECT_NEAR(LastKMeanTestError(epochs, 10), (0.5 + 0.4 + 0.2) / 3, 1e-12);
}

TEST(Results, PublishedFiguresAttachOnlyToThePapersSetting) {
  EXPECT_DOUBLE_EQ(PaperTestError(20), 0.0875);
  EXPECT_DOUBLE_EQ(PaperTestError(110), 0.0643);
  EXPECT_LT(PaperTestError(21), 0);
  EXPECT_DOUBLE_EQ(SourceTestError("no-relu-bn-after-add", 20), 0.079102);
  EXPECT_LT(SourceTestError("preact", 20), 0);

  RunOutcome o;
  o.link = {"s", "r", "cell", "model.depth_n=3", "{\"model.depth_n\":\"3\"}"};
  o.run.state = RunState::kSucceeded;
  o.run.config_json = R"({"dataset":{"kind":"cifar10"},"model":{"depth_n":3,"block":"reference"}})";
  o.epochs.resize(1);
  o.epochs[0].test_error = 0.09;
  auto cells = SummarizeCells({o}, 5);
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_EQ(cells[0].layers, 20);
  EXPECT_DOUBLE_EQ(cells[0].paper_test_error, 0.0875);
  EXPECT_EQ(cells[0].params.at("model.depth_n"), "3");
  o.run.config_json = R"({"dataset":{"kind":"fashion-mnist"},"model":{"depth_n":3}})";
  EXPECT_LT(SummarizeCells({o}, 5)[0].paper_test_error, 0);
}

TEST(ResultsFormat, EveryFormatCarriesTheNumbers) {
  v1::GetResultsResponse r;
  r.set_last_k(5);
  r.mutable_sweep()->set_name("depth");
  auto* c = r.add_cells();
  c->set_cell_label("model.depth_n=3");
  c->set_runs_total(5);
  c->set_runs_succeeded(5);
  c->mutable_final_test_error()->set_n(5);
  c->mutable_final_test_error()->set_mean(0.0842);
  c->mutable_final_test_error()->set_std(0.0021);
  c->mutable_last_k_test_error()->set_n(5);
  c->mutable_last_k_test_error()->set_mean(0.0850);
  c->set_paper_test_error(0.0875);
  auto table = FormatResults(r, "table");
  ASSERT_TRUE(table.ok());
  EXPECT_NE(table->find("8.42 ± 0.21"), std::string::npos) << *table;
  EXPECT_NE(table->find("8.75"), std::string::npos);
  EXPECT_NE(table->find("5/5"), std::string::npos);
  auto md = FormatResults(r, "markdown");
  EXPECT_NE(md->find("| model.depth_n=3"), std::string::npos) << *md;
  auto csv = FormatResults(r, "csv");
  EXPECT_NE(csv->find("\"model.depth_n=3\",5,5,5,0.084200,0.002100"), std::string::npos) << *csv;
  // JSON: numbers as numbers, null where a number does not exist, the comparison
  // columns the table shows.
  auto* empty = r.add_cells();
  empty->set_cell_label("model.depth_n=5");
  empty->set_runs_total(5);
  empty->set_paper_test_error(-1);
  empty->set_source_test_error(-1);
  auto json_text = FormatResults(r, "json");
  ASSERT_TRUE(json_text.ok());
  const auto j = nlohmann::json::parse(*json_text);
  EXPECT_EQ(j["error_unit"], "fraction");
  EXPECT_EQ(j["cells"][0]["cell"], "model.depth_n=3");
  EXPECT_DOUBLE_EQ(j["cells"][0]["final_test_error"]["mean"].get<double>(), 0.0842);
  EXPECT_DOUBLE_EQ(j["cells"][0]["paper_test_error"].get<double>(), 0.0875);
  EXPECT_TRUE(j["cells"][0]["is_best"].get<bool>());
  EXPECT_TRUE(j["cells"][0]["p_vs_best"].is_null());
  EXPECT_FALSE(j["cells"][1]["is_best"].get<bool>());
  EXPECT_TRUE(j["cells"][1]["final_test_error"]["mean"].is_null());
  EXPECT_TRUE(j["cells"][1]["final_test_error"]["std"].is_null());
  EXPECT_TRUE(j["cells"][1]["paper_test_error"].is_null());
  EXPECT_TRUE(j["cells"][1]["p_vs_best"].is_null());
  EXPECT_EQ(j["cells"][1]["runs_succeeded"], 0);
  // CSV: an empty field, not -1 or 0, for a number that does not exist.
  auto csv2 = FormatResults(r, "csv");
  EXPECT_NE(csv2->find("\"model.depth_n=5\",0,5,0,,,,,5,0,,,,,false,,,,"), std::string::npos)
      << *csv2;
  EXPECT_EQ(FormatResults(r, "xml").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace resweep
