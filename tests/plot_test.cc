// The figures' data and gnuplot scripts (cli/plot.h) from hand-made curves and
// results, and the per-sweep curves query (Queries::Curves) over a real SQLite store.
// No gnuplot needed: tests/cli_test.cc draws real figures.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "cli/plot.h"
#include "coordinator/queries.h"
#include "coordinator/sqlite_store.h"
#include "tests/test_util.h"

namespace resweep {
namespace {

using testing::FakeClock;
using testing::TempDir;

// A run of `cell` whose metric at epoch e (1-based) is values[e-1] (as test and train
// error, loss and lr alike).
void AddRun(v1::GetCurvesResponse* r, const std::string& cell, int64_t seed,
            const std::vector<double>& values, const std::string& state = "succeeded") {
  auto* run = r->add_runs();
  run->set_run_id(cell + "-" + std::to_string(seed));
  run->set_cell_key(cell);
  run->set_cell_label(cell);
  run->set_seed(seed);
  run->set_state(state);
  for (size_t i = 0; i < values.size(); ++i) {
    auto* p = run->add_points();
    p->set_epoch(static_cast<int>(i) + 1);
    p->set_iteration(static_cast<int64_t>(i + 1) * 100);
    p->set_train_loss(values[i]);
    p->set_train_error(values[i]);
    p->set_test_error(values[i]);
    p->set_test_loss(values[i]);
    p->set_lr(values[i]);
  }
}

CurvesOptions Options(const std::string& metric = "train_loss") {
  CurvesOptions o;
  o.metric = metric;
  o.output.out_path = "fig.svg";
  o.output.data_path = "fig.dat";
  return o;
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(PlotCurves, OneSeriesPerCellMeanOverSeedsWithStdBand) {
  v1::GetCurvesResponse r;
  AddRun(&r, "n=3", 1, {1.0, 0.8, 0.6});
  AddRun(&r, "n=5", 1, {2.0, 1.0, 0.5});
  AddRun(&r, "n=3", 2, {3.0, 1.2, 0.6});
  AddRun(&r, "n=5", 2, {2.0, 3.0, 0.5});
  const auto cells = CellCurves(r, Options());
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_EQ(cells[0].label, "n=3");  // order of first appearance
  EXPECT_EQ(cells[1].label, "n=5");
  EXPECT_EQ(cells[0].runs, 2);
  EXPECT_EQ(cells[0].x, (std::vector<double>{1, 2, 3}));
  EXPECT_DOUBLE_EQ(cells[0].mean[0], 2.0);
  EXPECT_DOUBLE_EQ(cells[0].mean[1], 1.0);
  EXPECT_DOUBLE_EQ(cells[1].mean[1], 2.0);
  // Sample std of {1, 3} is sqrt(2); of {0.6, 0.6} is 0.
  EXPECT_NEAR(cells[0].low[0], 2.0 - std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(cells[0].high[0], 2.0 + std::sqrt(2.0), 1e-12);
  EXPECT_DOUBLE_EQ(cells[0].low[2], 0.6);
  EXPECT_DOUBLE_EQ(cells[0].high[2], 0.6);

  auto files = CurvesPlot(r, Options());
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  // Data: two blocks (one per cell) separated by two blank lines.
  EXPECT_EQ(Count(files->data, "\n\n\n"), 1) << files->data;
  EXPECT_NE(files->data.find("\n1 2 0.585786438 3.41421356\n"), std::string::npos) << files->data;
  // Script: one titled mean line and one band per cell; no per-seed lines.
  EXPECT_EQ(Count(files->script, " title 'n=3 (n=2)'"), 1) << files->script;
  EXPECT_EQ(Count(files->script, " title 'n=5 (n=2)'"), 1) << files->script;
  EXPECT_EQ(Count(files->script, "filledcurves"), 2);
  EXPECT_EQ(Count(files->script, "index 0 using 1:2 with lines"), 1);
  EXPECT_EQ(Count(files->script, "index 1 using 1:2 with lines"), 1);
  EXPECT_EQ(Count(files->script, "linewidth 0.6"), 0);
  EXPECT_NE(files->script.find("set terminal svg"), std::string::npos);
  EXPECT_NE(files->script.find("set output 'fig.svg'"), std::string::npos);
  EXPECT_EQ(files->script.find("logscale"), std::string::npos);
}

TEST(PlotCurves, Ci95BandIsStudentT) {
  v1::GetCurvesResponse r;
  AddRun(&r, "a", 1, {1.0});
  AddRun(&r, "a", 2, {3.0});
  CurvesOptions o = Options();
  o.band = "ci95";
  const auto cells = CellCurves(r, o);
  ASSERT_EQ(cells.size(), 1u);
  // n = 2: sem = 1, t(0.975, 1 dof) = 12.7062047 (any t table).
  EXPECT_NEAR(cells[0].low[0], 2.0 - 12.7062047, 1e-6);
  EXPECT_NEAR(cells[0].high[0], 2.0 + 12.7062047, 1e-6);

  o.band = "none";
  auto files = CurvesPlot(r, o);
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(Count(files->script, "filledcurves"), 0);
}

TEST(PlotCurves, RollingMeanPerRunBeforeTheXRangeCut) {
  v1::GetCurvesResponse r;
  AddRun(&r, "a", 1, {1, 2, 3, 4, 5, 6});
  CurvesOptions o = Options();
  o.rolling = 3;
  auto cells = CellCurves(r, o);
  ASSERT_EQ(cells.size(), 1u);
  // Trailing mean of up to 3 points: 1, 1.5, 2, 3, 4, 5.
  EXPECT_EQ(cells[0].mean, (std::vector<double>{1, 1.5, 2, 3, 4, 5}));
  o.x_min = 3;
  o.x_max = 5;
  cells = CellCurves(r, o);
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_EQ(cells[0].x, (std::vector<double>{3, 4, 5}));
  EXPECT_EQ(cells[0].mean, (std::vector<double>{2, 3, 4}));  // window reaches before x = 3
  auto files = CurvesPlot(r, o);
  ASSERT_TRUE(files.ok());
  EXPECT_NE(files->script.find("set xrange [3:5]"), std::string::npos) << files->script;
  EXPECT_NE(files->script.find("rolling mean of 3 points"), std::string::npos);
}

TEST(PlotCurves, ParseXRange) {
  auto both = ParseXRange("0:20");
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->first, 0.0);
  EXPECT_EQ(both->second, 20.0);
  auto open_end = ParseXRange("5:");
  ASSERT_TRUE(open_end.ok());
  EXPECT_EQ(open_end->first, 5.0);
  EXPECT_FALSE(open_end->second.has_value());
  for (const char* bad : {"", "5", "a:b", "3:1", "1:1", "1:2:3", "1e999:2"}) {
    auto r = ParseXRange(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--xrange"), std::string::npos);
  }
}

TEST(PlotCurves, RaggedCellsAveragedWhereEveryRunHasAValue) {
  v1::GetCurvesResponse r;
  AddRun(&r, "a", 1, {1, 2, 3, 4});
  AddRun(&r, "a", 2, {3, 4}, "running");
  AddRun(&r, "a", 3, {100, 100, 100}, "failed");  // left out
  AddRun(&r, "b", 1, {}, "queued");               // nothing yet: left out
  AddRun(&r, "b", 2, {5, 5});
  std::vector<std::string> notes;
  const auto cells = CellCurves(r, Options(), &notes);
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_EQ(cells[0].runs, 2);
  EXPECT_EQ(cells[0].x, (std::vector<double>{1, 2}));
  EXPECT_EQ(cells[0].mean, (std::vector<double>{2, 3}));
  EXPECT_EQ(cells[1].runs, 1);
  EXPECT_EQ(cells[1].mean, (std::vector<double>{5, 5}));
  const std::string all = ::testing::PrintToString(notes);
  EXPECT_NE(all.find("cell a: 1 failed or cancelled run(s) left out"), std::string::npos) << all;
  EXPECT_NE(all.find("cell a: runs have different lengths"), std::string::npos) << all;
}

TEST(PlotCurves, TestMetricsSkipEpochsNotEvaluatedAndErrorsArePercent) {
  v1::GetCurvesResponse r;
  AddRun(&r, "a", 1, {0.5, 0.25, 0.125});
  r.mutable_runs(0)->mutable_points(1)->set_test_error(-1);  // not evaluated at epoch 2
  const auto cells = CellCurves(r, Options("test_error"));
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_EQ(cells[0].x, (std::vector<double>{1, 3}));
  EXPECT_EQ(cells[0].mean, (std::vector<double>{50, 12.5}));
}

TEST(PlotCurves, IterationAxis) {
  v1::GetCurvesResponse r;
  AddRun(&r, "a", 1, {1, 2});
  CurvesOptions o = Options();
  o.x = "iteration";
  const auto cells = CellCurves(r, o);
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_EQ(cells[0].x, (std::vector<double>{100, 200}));
}

TEST(PlotCurves, SeedLinesLogYAndTerminals) {
  v1::GetCurvesResponse r;
  AddRun(&r, "it's", 1, {1, 2});
  AddRun(&r, "it's", 2, {1, 2});
  AddRun(&r, "b", 7, {1, 2});
  CurvesOptions o = Options();
  o.seeds = true;
  o.output.log_y = true;
  o.output.out_path = "out.png";
  auto files = CurvesPlot(r, o);
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(Count(files->script, "linewidth 0.6 notitle"), 3) << files->script;
  EXPECT_EQ(Count(files->data, "\n\n\n"), 4);  // 2 cell blocks + 3 run blocks
  EXPECT_NE(files->data.find("# cell b, run b-7, seed 7"), std::string::npos);
  EXPECT_NE(files->script.find("title 'it''s (n=2)'"), std::string::npos) << files->script;
  EXPECT_NE(files->script.find("set logscale y"), std::string::npos);
  EXPECT_NE(files->script.find("set terminal pngcairo"), std::string::npos);
  o.output.out_path = "out.pdf";
  EXPECT_NE(CurvesPlot(r, o)->script.find("set terminal pdfcairo"), std::string::npos);
  o.output.out_path = "out.jpg";
  auto bad = CurvesPlot(r, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--out"), std::string::npos);
}

TEST(PlotCurves, BadOptionsNameTheFlag) {
  for (auto [field, expect] : std::vector<std::pair<std::string, std::string>>{
           {"metric", "--metric"}, {"x", "--x"}, {"band", "--band"}, {"rolling", "--rolling"}}) {
    CurvesOptions o = Options();
    if (field == "metric") o.metric = "accuracy";
    if (field == "x") o.x = "time";
    if (field == "band") o.band = "iqr";
    if (field == "rolling") o.rolling = 0;
    Status st = ValidateCurvesOptions(o);
    ASSERT_FALSE(st.ok()) << field;
    EXPECT_NE(st.message().find(expect), std::string::npos) << st.message();
  }
  v1::GetCurvesResponse empty;
  auto none = CurvesPlot(empty, Options());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
}

void AddCell(v1::GetResultsResponse* r, const std::string& depth, const std::string& block,
             double mean, double low, double high, double paper = -1, double source = -1) {
  auto* c = r->add_cells();
  c->set_cell_label("n=" + depth + " " + block);
  (*c->mutable_params())["model.depth_n"] = depth;
  (*c->mutable_params())["model.block"] = block;
  auto* s = c->mutable_last_k_test_error();
  s->set_n(5);
  s->set_mean(mean);
  s->set_ci95_low(low);
  s->set_ci95_high(high);
  c->set_paper_test_error(paper);
  c->set_source_test_error(source);
}

TEST(PlotSummary, OneSeriesPerOtherAxisValueWithCiBarsAndPaperMarkers) {
  v1::GetResultsResponse r;
  r.set_last_k(5);
  AddCell(&r, "5", "reference", 0.08, 0.07, 0.09, 0.0751, 0.0772);
  AddCell(&r, "3", "reference", 0.09, 0.08, 0.10, 0.0875);
  AddCell(&r, "3", "preact", 0.085, 0.08, 0.09);
  AddCell(&r, "5", "preact", 0.075, 0.07, 0.08);
  r.add_cells()->set_cell_label("no runs yet");  // n = 0: left out
  SummaryOptions o;
  o.x_axis = "model.depth_n";
  o.output = {"s.dat", "s.svg", "", false};
  auto files = SummaryPlot(r, o);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  // Series by block, points sorted by depth, values in percent; the two series drawn
  // side by side (1.2% of the span of 2 apart), so bars at the same depth both show.
  EXPECT_NE(files->data.find("# series model.block=reference (drawn at x - 0.012)\n"
                             "# x mean ci95_low ci95_high n\n2.988 9 8 10 5\n4.988 8 7 9 5\n"),
            std::string::npos)
      << files->data;
  EXPECT_NE(files->data.find("# series model.block=preact (drawn at x + 0.012)\n"
                             "# x mean ci95_low ci95_high n\n3.012 8.5 8 9 5\n5.012 7.5 7 8 5\n"),
            std::string::npos)
      << files->data;
  EXPECT_NE(files->data.find("# paper, Table 6\n# x test_error\n5 7.51\n3 8.75\n"),
            std::string::npos)
      << files->data;
  EXPECT_NE(files->data.find("# 2016 single run\n# x test_error\n5 7.72\n"), std::string::npos);
  EXPECT_EQ(Count(files->script, "with yerrorlines"), 2) << files->script;
  EXPECT_EQ(Count(files->script, "title 'paper (Table 6)'"), 1);
  EXPECT_EQ(Count(files->script, "title '2016 single run'"), 1);
  EXPECT_NE(files->script.find("index 2 using 1:2 with points"), std::string::npos);
  EXPECT_NE(files->script.find("set xtics (3, 5)"), std::string::npos) << files->script;

  // The default axis: the one with most values (tie: first by name, model.block).
  o.x_axis = "";
  files = SummaryPlot(r, o);
  ASSERT_TRUE(files.ok());
  EXPECT_NE(files->script.find("set xlabel 'model.block'"), std::string::npos);
  // Names, not numbers, as tics at the names' true positions.
  EXPECT_NE(files->script.find("set xtics ('preact' 1, 'reference' 0)"), std::string::npos)
      << files->script;
  // Names: the series (by depth, 5 first) 6% of a name's slot apart.
  EXPECT_NE(files->data.find("-0.03 8 7 9 5 \"reference\"\n"), std::string::npos) << files->data;
  EXPECT_NE(files->data.find("0.03 9 8 10 5 \"reference\"\n"), std::string::npos) << files->data;

  o.x_axis = "train.epochs";
  auto bad = SummaryPlot(r, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--x: 'train.epochs' is not a grid axis"),
            std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("model.block, model.depth_n"), std::string::npos);
}

// A sweep without a grid (one cell, repeated seeds): the summary is the cell's CI bar
// at its label, not an error (the report draws the summary of every sweep).
TEST(PlotSummary, ASweepWithoutAGridIsOneBarAtItsCellsLabel) {
  v1::GetResultsResponse r;
  r.set_last_k(2);
  auto* c = r.add_cells();
  c->set_cell_label("base");
  auto* s = c->mutable_last_k_test_error();
  s->set_n(3);
  s->set_mean(0.1);
  s->set_ci95_low(0.09);
  s->set_ci95_high(0.11);
  c->set_paper_test_error(0.0761);
  c->set_source_test_error(-1);
  SummaryOptions o;
  o.output = {"s.dat", "s.svg", "", false};
  auto files = SummaryPlot(r, o);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_NE(files->data.find("# x mean ci95_low ci95_high n label\n0 10 9 11 3 \"base\"\n"),
            std::string::npos)
      << files->data;
  EXPECT_NE(files->data.find("# paper, Table 6\n# x test_error\n0 7.61\n"), std::string::npos)
      << files->data;
  EXPECT_EQ(Count(files->script, "with yerrorlines"), 1) << files->script;
  EXPECT_NE(files->script.find("set xlabel 'cell'"), std::string::npos) << files->script;
  EXPECT_NE(files->script.find("set xtics ('base' 0)"), std::string::npos) << files->script;
  // Naming an axis the sweep does not have is still an error.
  o.x_axis = "model.depth_n";
  auto bad = SummaryPlot(r, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("(it has no grid axes)"), std::string::npos)
      << bad.status().message();
}

// Past kMaxLegendEntries series a legend hides the plot: none is drawn, and the note
// says where the labels are.
TEST(PlotCurves, NoLegendAboveTwentyCells) {
  v1::GetCurvesResponse r;
  for (int c = 0; c < 20; ++c) AddRun(&r, "cell" + std::to_string(c), 1, {1.0, 0.5});
  auto files = CurvesPlot(r, Options());
  ASSERT_TRUE(files.ok());
  EXPECT_FALSE(files->legend_omitted);
  EXPECT_EQ(Count(files->script, " title '"), 20) << files->script;
  EXPECT_EQ(files->script.find("set key off"), std::string::npos);
  AddRun(&r, "cell20", 1, {1.0, 0.5});
  files = CurvesPlot(r, Options());
  ASSERT_TRUE(files.ok());
  EXPECT_TRUE(files->legend_omitted);
  EXPECT_EQ(Count(files->script, " title '"), 0) << files->script;
  EXPECT_EQ(Count(files->script, " notitle"), 21 + 21) << files->script;  // bands, means
  EXPECT_NE(files->script.find("set key off\n"), std::string::npos) << files->script;
  EXPECT_EQ(Count(files->data, "# cell cell20: "), 1);  // the labels stay in the data
  ASSERT_EQ(files->notes.size(), 1u);
  EXPECT_EQ(files->notes[0], LegendOmittedNote(21));
  EXPECT_NE(files->notes[0].find("legend left out: 21 series"), std::string::npos);
  EXPECT_NE(files->notes[0].find("results.csv"), std::string::npos);
}

// A 95% CI of two seeds can span -100%..250% of error: the band is drawn clipped to
// the metric's range (the means as they are), so the mean lines are not squashed.
TEST(PlotCurves, BandsClippedToTheMetricsRange) {
  v1::GetCurvesResponse r;
  AddRun(&r, "a", 1, {0.10, 0.60});  // errors 10%, 60%: t(0.975, 1) * 25 = 318 points
  AddRun(&r, "a", 2, {0.60, 0.90});
  CurvesOptions o = Options("test_error");
  o.band = "ci95";
  auto files = CurvesPlot(r, o);
  ASSERT_TRUE(files.ok());
  EXPECT_NE(files->data.find("\n1 35 0 100\n2 75 0 100\n"), std::string::npos) << files->data;
  EXPECT_NE(files->data.find("clipped to what test_error can be: [0, 100]"), std::string::npos)
      << files->data;
  // CellCurves keeps the interval as computed.
  EXPECT_LT(CellCurves(r, o)[0].low[0], -100);
  // A loss has no ceiling, but no negative values either.
  o.metric = "train_loss";
  files = CurvesPlot(r, o);
  ASSERT_TRUE(files.ok());
  EXPECT_NE(files->data.find("\n1 0.35 0 3.5265"), std::string::npos) << files->data;
}

TEST(PlotCurves, EpochTicsAreWholeNumbers) {
  v1::GetCurvesResponse r;
  AddRun(&r, "a", 1, {1.0, 0.8, 0.6});
  auto files = CurvesPlot(r, Options());
  ASSERT_TRUE(files.ok());
  EXPECT_NE(files->script.find("set xtics 1\n"), std::string::npos) << files->script;
  std::vector<double> long_run(200, 0.5);
  AddRun(&r, "b", 1, long_run);
  files = CurvesPlot(r, Options());
  ASSERT_TRUE(files.ok());
  EXPECT_NE(files->script.find("set xtics 20\n"), std::string::npos) << files->script;
  // Iterations are left to gnuplot.
  CurvesOptions o = Options();
  o.x = "iteration";
  files = CurvesPlot(r, o);
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(files->script.find("set xtics"), std::string::npos) << files->script;
}

TEST(PlotSummary, BarsClippedToZeroToHundredPercentAndNoLegendAboveTwentySeries) {
  v1::GetResultsResponse r;
  r.set_last_k(2);
  AddCell(&r, "3", "reference", 0.30, -0.70, 1.90);
  auto files = SummaryPlot(r, SummaryOptions{"model.depth_n", {"s.dat", "s.svg", "", false}});
  ASSERT_TRUE(files.ok());
  EXPECT_NE(files->data.find("\n3 30 0 100 5\n"), std::string::npos) << files->data;
  EXPECT_FALSE(files->legend_omitted);
  for (int b = 0; b < 20; ++b) AddCell(&r, "3", "block" + std::to_string(b), 0.1, 0.09, 0.11);
  files = SummaryPlot(r, SummaryOptions{"model.depth_n", {"s.dat", "s.svg", "", false}});
  ASSERT_TRUE(files.ok());
  EXPECT_TRUE(files->legend_omitted);
  EXPECT_EQ(Count(files->script, "with yerrorlines"), 21);
  EXPECT_EQ(Count(files->script, " title '"), 0) << files->script;
  ASSERT_EQ(files->notes.size(), 1u);
  EXPECT_EQ(files->notes[0], LegendOmittedNote(21));
}

TEST(CurvesQuery, DownsamplesByEpochNumberSoRunsStayAligned) {
  std::vector<EpochRecord> epochs;
  for (int e = 1; e <= 10; ++e) epochs.push_back({"r", e});
  std::vector<int> kept;
  for (const auto& e : DownsampleEpochs(epochs, 4)) kept.push_back(e.epoch);
  EXPECT_EQ(kept, (std::vector<int>{1, 5, 9, 10}));  // every 4th from 1, and the last
  kept.clear();
  for (const auto& e : DownsampleEpochs(epochs, 1)) kept.push_back(e.epoch);
  EXPECT_EQ(kept.size(), 10u);
}

TEST(CurvesQuery, OneQueryForEveryRunOfTheSweepWithIterations) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Store& s = **store;
  ASSERT_TRUE(s.InsertSweep({"sw", "curves", "y", "f", 1, false, 5, {"model.depth_n"}}).ok());
  ASSERT_TRUE(s.InsertSweep({"other", "other", "y", "f", 2, false, 5, {}}).ok());
  // Fashion-MNIST limited to 1000 images in batches of 128: 8 batches per epoch.
  const std::string config =
      R"({"dataset": {"kind": "fashion-mnist", "train_limit": 1000}, "train": {"batch_size": 128}})";
  for (int i = 0; i < 3; ++i) {
    RunRecord run;
    run.run_id = "run" + std::to_string(i);
    run.config_json = config;
    run.seed = i;
    run.state = RunState::kRunning;
    run.attempt = 1;
    run.worker_id = "w";
    ASSERT_TRUE(*s.InsertRunIfAbsent(run));
    ASSERT_TRUE(s.LinkRun({i < 2 ? "sw" : "other", run.run_id, "k" + std::to_string(i),
                           "n=" + std::to_string(i),
                           R"({"model.depth_n": ")" + std::to_string(i) + R"("})"})
                    .ok());
    for (int e = 1; e <= 10 - i; ++e) {
      EpochRecord rec{run.run_id, e, 1, 1.0 / e, 0.5, 0.4, 1.2, 0.1};
      ASSERT_TRUE(s.PutEpoch(rec, "w").ok());
    }
    if (i < 2) {  // runs 0 and 1 finished
      RunRecord done = **s.GetRun(run.run_id);
      done.state = RunState::kSucceeded;
      done.worker_id.clear();
      ASSERT_TRUE(s.UpdateRun(done).ok());
    }
  }
  FakeClock clock;
  Queries queries(&s, &clock, 30000);
  auto all = queries.Curves("curves", 0);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->runs.size(), 2u);  // the other sweep's run is not in it
  EXPECT_EQ(all->runs[0].link.cell_label, "n=0");
  EXPECT_EQ(all->runs[0].params.at("model.depth_n"), "0");
  EXPECT_EQ(all->runs[0].iterations_per_epoch, 8);
  EXPECT_EQ(all->runs[0].epochs.size(), 10u);
  EXPECT_EQ(all->runs[1].epochs.size(), 9u);
  EXPECT_DOUBLE_EQ(all->runs[0].epochs[3].train_loss, 0.25);

  // max_points 4 over 10 epochs: stride 3 (epochs 1, 4, 7, 10); the 9-epoch run keeps
  // the same epochs and its own last one.
  auto some = queries.Curves("curves", 4);
  ASSERT_TRUE(some.ok());
  std::vector<int> first, second;
  for (const auto& e : some->runs[0].epochs) first.push_back(e.epoch);
  for (const auto& e : some->runs[1].epochs) second.push_back(e.epoch);
  EXPECT_EQ(first, (std::vector<int>{1, 4, 7, 10}));
  EXPECT_EQ(second, (std::vector<int>{1, 4, 7, 9}));

  auto bad = queries.Curves("curves", -1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("max_points"), std::string::npos);
  EXPECT_EQ(queries.Curves("nope", 0).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace resweep
