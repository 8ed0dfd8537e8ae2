#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analysis/statistics.h"
#include "cli/format.h"
#include "common/reference_results.h"
#include "coordinator/convert.h"
#include "coordinator/results.h"

namespace resweep {
namespace {

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
  o.run.final_test_error = o.run.last_k_test_error = 0.09;
  auto cells = SummarizeCells({o});
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_EQ(cells[0].layers, 20);
  EXPECT_DOUBLE_EQ(cells[0].paper_test_error, 0.0875);
  EXPECT_EQ(cells[0].params.at("model.depth_n"), "3");
  o.run.config_json = R"({"dataset":{"kind":"fashion-mnist"},"model":{"depth_n":3}})";
  EXPECT_LT(SummarizeCells({o})[0].paper_test_error, 0);
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
  c->mutable_comparison()->set_is_best(true);  // the coordinator decides, not the CLI
  r.set_best_cell(0);
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

// A section axis's label is its value as JSON, full of quotes; a string axis's value
// can hold quotes and commas too. The label's quotes are doubled (RFC 4180), so the
// line keeps its columns: it once wrote them as they were, and `"train.optimizer={"name":
// "sgd",...}"` split into 43 columns of a 35-column header in results.csv.
TEST(ResultsFormat, CsvDoublesTheQuotesOfACellLabel) {
  v1::GetResultsResponse r;
  r.set_last_k(2);
  auto* c = r.add_cells();
  c->set_cell_label(R"(train.optimizer={"lr":0.1,"name":"sgd"})");
  c->set_runs_total(3);
  c->set_runs_succeeded(3);
  auto csv = FormatResults(r, "csv");
  ASSERT_TRUE(csv.ok());
  const std::string line = csv->substr(csv->find('\n') + 1);
  EXPECT_EQ(line.rfind(R"("train.optimizer={""lr"":0.1,""name"":""sgd""}",3,3,)", 0), 0u) << line;
  // Outside the quoted label, the line has as many commas as the header.
  const std::string header = csv->substr(0, csv->find('\n'));
  const size_t label_end = line.find("}\",") + 2;
  EXPECT_EQ(std::count(line.begin() + label_end, line.end(), ','),
            std::count(header.begin(), header.end(), ','))
      << line;
}

// Every output takes its statistics from the analysis library through the results the
// coordinator computes: the same seeds give the same numbers in the table, JSON and CSV.
TEST(ResultsFormat, ComparisonColumnsComeFromTheAnalysisLibrary) {
  auto outcome = [](const std::string& cell, int64_t seed, double error) {
    RunOutcome o;
    o.link.cell_key = cell;
    o.link.cell_label = "model.block=" + cell;
    o.run.state = RunState::kSucceeded;
    o.run.seed = seed;
    o.run.config_json = R"({"dataset":{"kind":"fashion-mnist"}})";
    o.run.final_test_error = o.run.last_k_test_error = error;
    return o;
  };
  std::vector<RunOutcome> outcomes;
  const std::vector<double> a = {0.0690, 0.0712, 0.0688, 0.0725, 0.0701};
  const std::vector<double> b = {0.0650, 0.0668, 0.0655, 0.0672, 0.0660};
  const std::vector<double> c = {0.0645, 0.0661, 0.0652, 0.0670, 0.0677, 0.0701, 0.0633};
  for (size_t i = 0; i < a.size(); ++i) outcomes.push_back(outcome("a", i, a[i]));
  for (size_t i = 0; i < b.size(); ++i) outcomes.push_back(outcome("b", i, b[i]));
  for (size_t i = 0; i < c.size(); ++i) outcomes.push_back(outcome("c", i, c[i]));
  outcomes.push_back(outcome("d", 0, 0.08));
  ResultsView view;
  view.last_k = 1;
  view.cells = SummarizeCells(outcomes);
  v1::GetResultsResponse r;
  ToProto(view, &r);
  ASSERT_EQ(r.cells_size(), 4);
  EXPECT_EQ(r.best_cell(), 1);
  const auto expected = analysis::CompareWithBest({a, b, c, {0.08}});
  const auto j = nlohmann::json::parse(*FormatResults(r, "json"));
  EXPECT_EQ(j["best_cell"], 1);
  for (int i = 0; i < 4; ++i) {
    const auto& want = expected.cells[i];
    const auto& got = j["cells"][i];
    EXPECT_EQ(got["is_best"].get<bool>(), want.is_best) << i;
    EXPECT_EQ(got["comparison"]["indistinguishable_from_best"].get<bool>(),
              want.indistinguishable_from_best)
        << i;
    EXPECT_DOUBLE_EQ(got["last_k_test_error"]["ci95"].is_null()
                         ? want.description.mean
                         : got["last_k_test_error"]["ci95"][0].get<double>(),
                     want.description.ci95.low)
        << i;
    if (want.welch) {
      EXPECT_DOUBLE_EQ(got["p_vs_best"].get<double>(), want.welch->p) << i;
      EXPECT_DOUBLE_EQ(got["comparison"]["p_holm"].get<double>(), want.p_holm) << i;
      EXPECT_EQ(got["comparison"]["seeds_needed"].get<int>(), *want.seeds_needed) << i;
    } else {
      EXPECT_TRUE(got["comparison"]["p_holm"].is_null()) << i;
    }
    EXPECT_EQ(got["last_k_test_error"]["values"].size(), want.description.values.size()) << i;
  }
  // a: clearly worse (p_holm < 0.05); c: cannot be told apart; d: one seed, no test.
  EXPECT_FALSE(j["cells"][0]["comparison"]["indistinguishable_from_best"].get<bool>());
  EXPECT_TRUE(j["cells"][2]["comparison"]["indistinguishable_from_best"].get<bool>());
  EXPECT_FALSE(j["cells"][3]["comparison"]["testable"].get<bool>());
  // d has one seed: no probability of improvement (null, '-' in the table).
  EXPECT_TRUE(j["cells"][3]["comparison"]["probability_better"].is_null());
  EXPECT_TRUE(j["cells"][3]["comparison"]["probability_better_ci95"].is_null());
  // Seeds needed planned at alpha over the two cells tested against the best (a, c).
  EXPECT_DOUBLE_EQ(r.seeds_needed_alpha(), 0.025);
  EXPECT_DOUBLE_EQ(j["seeds_needed_alpha"].get<double>(), 0.025);
  EXPECT_EQ(*expected.cells[0].seeds_needed,
            *analysis::SeedsNeeded(
                expected.cells[0].description.mean, expected.cells[0].description.std,
                expected.cells[1].description.mean, expected.cells[1].description.std, 0.025));

  const std::string table = *FormatResults(r, "table");
  EXPECT_NE(table.find("≈ best"), std::string::npos) << table;
  EXPECT_NE(table.find("worse"), std::string::npos) << table;
  EXPECT_NE(table.find(" ? "), std::string::npos) << table;
  EXPECT_NE(table.find("at alpha 0.05/2 = 0.025 (Bonferroni over the 2 cells tested against the "
                       "best)"),
            std::string::npos)
      << table;
  // b's mean 6.61% with its Student-t half width, as the table prints it.
  const auto& bd = expected.cells[1].description;
  char cell[64];
  std::snprintf(cell, sizeof(cell), "%.2f ± %.2f", bd.mean * 100,
                (bd.ci95.high - bd.ci95.low) / 2 * 100);
  EXPECT_NE(table.find(cell), std::string::npos) << cell << "\n" << table;

  const std::string csv = *FormatResults(r, "csv");
  EXPECT_NE(csv.find(",p_holm,indistinguishable_from_best,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("0.065000;0.066800;0.065500;0.067200;0.066000"), std::string::npos) << csv;
}

TEST(WorkersFormat, GroupsSlotsByDevice) {
  v1::ListWorkersResponse list;
  auto* w = list.add_workers();
  w->set_worker_id("w-1");
  w->set_host("gpu-node");
  w->set_state("alive");
  for (const char* d : {"cuda:0", "cuda:0", "cuda:0", "cuda:0", "cuda:1", "cuda:1"})
    w->add_devices(d);
  w->add_runs_held("r-1");
  auto table = FormatWorkers(list, "table");
  ASSERT_TRUE(table.ok());
  EXPECT_NE(table->find("cuda:0 x4,cuda:1 x2"), std::string::npos) << *table;
  EXPECT_NE(table->find("1/6"), std::string::npos) << *table;  // runs held / slots
  // JSON keeps one entry per slot, for scripts.
  auto json_text = FormatWorkers(list, "json");
  ASSERT_TRUE(json_text.ok());
  EXPECT_EQ(nlohmann::json::parse(*json_text)["workers"][0]["devices"].size(), 6u);
}

}  // namespace
}  // namespace resweep
