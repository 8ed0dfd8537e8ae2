// The report's pieces (cli/report.h) from hand-made coordinator answers: the protocol
// in words, the reading of the comparison, the README's shape, epochs.csv. No
// coordinator, no gnuplot: tests/cli_test.cc writes real reports.
#include <gtest/gtest.h>

#include "cli/format.h"
#include "cli/plot.h"
#include "cli/report.h"
#include "common/run_config_json.h"

namespace resweep {
namespace {

bool Has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// A cell with last-K values and the comparison fields GetResults would send.
v1::CellResult* AddCell(v1::GetResultsResponse* r, const std::string& depth, double mean, int n) {
  auto* c = r->add_cells();
  c->set_cell_label("model.depth_n=" + depth);
  (*c->mutable_params())["model.depth_n"] = depth;
  c->set_runs_total(n);
  c->set_runs_succeeded(n);
  auto* s = c->mutable_last_k_test_error();
  s->set_n(n);
  s->set_mean(mean);
  s->set_std(0.01);
  s->set_ci95_low(mean - 0.02);
  s->set_ci95_high(mean + 0.02);
  c->set_paper_test_error(-1);
  c->set_source_test_error(-1);
  return c;
}

v1::GetResultsResponse ThreeCells() {
  v1::GetResultsResponse r;
  r.mutable_sweep()->set_name("depths");
  r.mutable_sweep()->set_sweep_id("abc123");
  r.mutable_sweep()->set_state("done");
  r.set_last_k(2);
  r.set_alpha(0.05);
  r.set_best_cell(1);
  auto* a = AddCell(&r, "1", 0.20, 3);
  a->mutable_comparison()->set_testable(true);
  a->mutable_comparison()->set_p_holm(0.01);
  a->mutable_comparison()->set_seeds_needed(4);
  auto* b = AddCell(&r, "2", 0.10, 3);
  b->mutable_comparison()->set_is_best(true);
  b->mutable_comparison()->set_indistinguishable_from_best(true);
  auto* c = AddCell(&r, "3", 0.11, 3);
  c->mutable_comparison()->set_testable(true);
  c->mutable_comparison()->set_indistinguishable_from_best(true);
  c->mutable_comparison()->set_p_holm(0.6);
  c->mutable_comparison()->set_seeds_needed(40);
  AddCell(&r, "5", 0.3, 1);  // one seed: not tested
  r.set_best_cell(1);
  r.set_seeds_needed_alpha(0.025);  // two cells tested
  return r;
}

TEST(Report, ReadingNamesTheBestTheIndistinguishableTheWorseAndTheSeedsNeeded) {
  const std::string reading = ReadingMarkdown(ThreeCells());
  // The best with the table's own "mean ± CI" text.
  EXPECT_TRUE(Has(reading, "Lowest mean: `model.depth_n=2`, 10.00 ± 2.00% (n = 3 seeds)"))
      << reading;
  EXPECT_TRUE(Has(reading,
                  "Cells indistinguishable from the best at 95% (Welch t-test, Holm-adjusted): "
                  "`model.depth_n=3`.\n"))
      << reading;
  EXPECT_TRUE(Has(reading, "Worse than the best at 95%: `model.depth_n=1`.\n")) << reading;
  EXPECT_TRUE(Has(reading, "Not tested (fewer than two seeds on one side): `model.depth_n=5`."))
      << reading;
  EXPECT_TRUE(Has(reading,
                  "Seeds needed to separate `model.depth_n=3` from `model.depth_n=2`: 40 per cell"))
      << reading;
  // Already told apart from the best: no plan to separate it (it is separated).
  EXPECT_FALSE(Has(reading, "Seeds needed to separate `model.depth_n=1`")) << reading;
  EXPECT_FALSE(Has(reading, "separate `model.depth_n=5`")) << reading;
  EXPECT_TRUE(Has(reading, "No published figure applies")) << reading;
  // The plan's level is the one GetResults planned at (alpha over the 2 cells tested),
  // not the 95% of the Holm-adjusted verdicts.
  EXPECT_TRUE(Has(reading,
                  "40 per cell (80% power at alpha 0.05/2 = 0.025 (Bonferroni over the 2 cells "
                  "tested against the best), given the spread seen; this sweep has 3)"))
      << reading;
  EXPECT_FALSE(Has(reading, "80% power at 95%")) << reading;

  v1::GetResultsResponse empty;
  empty.set_best_cell(-1);
  EXPECT_TRUE(Has(ReadingMarkdown(empty), "nothing to read"));
}

// A cancelled sweep whose best cell has one seed, one other cell one seed (untestable)
// and one no succeeded run: no test was made, so the reading must not say "none is
// indistinguishable" (read: all are worse), and it names the cells it left out.
TEST(Report, ReadingClaimsNoDifferenceWhenNoCellWasTested) {
  v1::GetResultsResponse r;
  r.mutable_sweep()->set_state("cancelled");
  r.set_last_k(2);
  r.set_alpha(0.05);
  AddCell(&r, "1", 0.20, 1);
  AddCell(&r, "2", 0.10, 1)->mutable_comparison()->set_is_best(true);
  AddCell(&r, "3", 0, 0);
  r.set_best_cell(1);
  const std::string reading = ReadingMarkdown(r);
  // One run is not crowned a mean over seeds ("n = 1 seeds").
  EXPECT_TRUE(Has(reading,
                  "Lowest mean: `model.depth_n=2`, 10.00%, from a single run (n = 1): one seed "
                  "is not a mean over seeds"))
      << reading;
  EXPECT_FALSE(Has(reading, "seeds)")) << reading;
  EXPECT_FALSE(Has(reading, "indistinguishable")) << reading;
  EXPECT_FALSE(Has(reading, "Worse")) << reading;
  EXPECT_TRUE(Has(reading, "Not tested (fewer than two seeds on one side): `model.depth_n=1`.\n"))
      << reading;
  EXPECT_TRUE(Has(reading, "No succeeded run, so not compared: `model.depth_n=3`.\n")) << reading;
  EXPECT_TRUE(Has(reading, "The sweep was cancelled")) << reading;
}

// A sweep of a thousand cells: the reading names at most kReadingListLimit cells per
// list and says how many more (a 1,000-cell README once was 457 KB, mostly reading),
// and writes big counts with thousands separators.
TEST(Report, ReadingOfAHugeSweepListsTwentyAndCountsTheRest) {
  v1::GetResultsResponse r;
  r.set_last_k(2);
  r.set_alpha(0.05);
  r.set_best_cell(0);
  AddCell(&r, "0", 0.10, 3)->mutable_comparison()->set_is_best(true);
  for (int i = 1; i < 1000; ++i) {
    auto* c = AddCell(&r, std::to_string(i), 0.11, 3);
    c->mutable_comparison()->set_testable(true);
    c->mutable_comparison()->set_indistinguishable_from_best(i % 2 == 0);
    c->mutable_comparison()->set_p_holm(i % 2 == 0 ? 1 : 0.01);
    c->mutable_comparison()->set_seeds_needed(12345);
  }
  r.set_seeds_needed_alpha(0.05 / 999);
  const std::string reading = ReadingMarkdown(r);
  EXPECT_LT(reading.size(), 10000u) << reading.size();
  // 499 even cells are indistinguishable, 500 odd ones worse: 20 named, the rest counted.
  EXPECT_TRUE(Has(reading, "`model.depth_n=40` ... and 479 more (see results.csv).\n")) << reading;
  EXPECT_FALSE(Has(reading, "`model.depth_n=42`")) << reading;
  EXPECT_TRUE(Has(reading, "`model.depth_n=39` ... and 480 more (see results.csv).\n")) << reading;
  int lines = 0;
  for (size_t at = reading.find("- Seeds needed to separate"); at != std::string::npos;
       at = reading.find("- Seeds needed to separate", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 20);
  // The 499 cells not yet told apart from the best: 20 planned, 479 counted.
  EXPECT_TRUE(Has(reading, "- ... and 479 more cells' seeds needed")) << reading;
  EXPECT_TRUE(Has(reading,
                  ": 12,345 per cell (80% power at alpha 0.05/999 = 5.01e-05 (Bonferroni "
                  "over the 999 cells tested against the best)"))
      << reading;
  // The table writes the count with separators too.
  EXPECT_EQ(MakeResultsTable(r).rows[1][7], "12,345");
}

TEST(Report, LastKUsedIsWhatEveryRunAveragedNotMoreThanItHad) {
  v1::GetCurvesResponse curves;
  auto add = [&](int epochs, const std::string& state) {
    auto* run = curves.add_runs();
    run->set_state(state);
    for (int e = 1; e <= epochs; ++e) {
      auto* p = run->add_points();
      p->set_epoch(e);
      p->set_test_error(e % 2 == 0 ? 0.1 : -1);  // every other epoch evaluated
    }
  };
  add(20, "succeeded");  // 10 evaluated
  add(20, "succeeded");
  add(3, "failed");  // not in the results
  EXPECT_EQ(LastKUsed(curves, 50), 10);
  EXPECT_EQ(LastKUsed(curves, 10), 10);
  EXPECT_EQ(LastKUsed(curves, 5), 5);
  add(8, "succeeded");  // 4 evaluated: runs differ above K 4, so K stays as asked
  EXPECT_EQ(LastKUsed(curves, 50), 50);
  EXPECT_EQ(LastKUsed(curves, 4), 4);
  EXPECT_EQ(LastKUsed(v1::GetCurvesResponse(), 7), 7);
}

std::string ConfigJson(int depth_n, int warmup_iterations) {
  RunConfig c;
  c.dataset.kind = "fashion-mnist";
  c.dataset.train_limit = 3000;
  c.dataset.augment_padding = 2;
  c.model.depth_n = depth_n;
  c.train.epochs = 4;
  c.train.batch_size = 64;
  c.train.optimizer.nesterov = true;
  c.train.schedule.milestones = {2, 3};
  c.train.schedule.warmup_iterations = warmup_iterations;
  return RunConfigToCanonicalJson(c);
}

ReportInput ThreeDepths() {
  ReportInput in;
  in.results = ThreeCells();
  in.results.mutable_cells()->RemoveLast();  // depth 5
  in.cell_configs = {{"model.depth_n=1", ConfigJson(1, 0)},
                     {"model.depth_n=2", ConfigJson(2, 0)},
                     {"model.depth_n=3", ConfigJson(3, 40)}};
  for (const char* depth : {"1", "2", "3"}) {
    for (int seed = 0; seed < 3; ++seed) {
      auto* run = in.curves.add_runs();
      run->set_run_id(std::string("r") + depth + std::to_string(seed));
      run->set_cell_label(std::string("model.depth_n=") + depth);
      run->set_seed(seed);
    }
  }
  return in;
}

TEST(Report, ProtocolSaysSharedSettingsOnceAxesByValueAndOverridesWithTheirCells) {
  auto protocol = ProtocolMarkdown(ThreeDepths());
  ASSERT_TRUE(protocol.ok()) << protocol.status().ToString();
  const std::string& p = *protocol;
  EXPECT_TRUE(Has(p,
                  "- **Data**: Fashion-MNIST, the first 3,000 training images, all test "
                  "images\n"))
      << p;
  EXPECT_TRUE(Has(p, "- **Augmentation**: pad 2 px and random crop, random horizontal flip\n"))
      << p;
  EXPECT_TRUE(Has(p,
                  "- **Depth**: n = 1 (8 layers), n = 2 (14 layers), n = 3 (20 layers) (by "
                  "`model.depth_n`)\n"))
      << p;
  EXPECT_TRUE(Has(p, "- **Optimizer**: SGD, momentum 0.9 (Nesterov), weight decay 0.0001\n")) << p;
  EXPECT_TRUE(Has(p, "- **Learning rate**: 0.1, multiplied by 0.1 at epochs 2, 3\n")) << p;
  // An override of one cell: named with its axis value, the rest "otherwise".
  EXPECT_TRUE(Has(p,
                  "- **Warm-up**: lr 0.01 for the first 40 iterations for `model.depth_n` = 3; "
                  "none otherwise\n"))
      << p;
  EXPECT_TRUE(Has(p, "- **Epochs**: 4, test set evaluated after every epoch\n")) << p;
  EXPECT_TRUE(Has(p, "- **Batch size**: 64\n")) << p;
  EXPECT_TRUE(Has(p, "- **Seeds**: 3 per cell (seeds 0, 1, 2), 9 runs in 3 cells\n")) << p;
  EXPECT_TRUE(Has(p, "- **Grid**: `model.depth_n` (1, 2, 3)\n")) << p;
  EXPECT_TRUE(Has(p, "- **Trainer**: LibTorch\n")) << p;
  EXPECT_TRUE(Has(p, "last 2 evaluated epochs")) << p;

  ReportInput bad = ThreeDepths();
  bad.cell_configs["model.depth_n=2"] = "{not json";
  auto refused = ProtocolMarkdown(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(Has(refused.status().message(), "model.depth_n=2")) << refused.status().message();
}

TEST(Report, ReadmeHasTheStudysSectionsTheResultsTableAndTheFigures) {
  ReportInput in = ThreeDepths();
  in.figures.push_back({"figures/train-loss.png", "figures/train-loss.svg", "Training loss",
                        "Training loss per cell.", "resweep plot abc123 --metric train_loss"});
  in.command = "resweep report abc123 -o out";
  in.version = "1.2.3";
  auto readme = ReportReadme(in);
  ASSERT_TRUE(readme.ok()) << readme.status().ToString();
  const std::string& m = *readme;
  size_t at = 0;
  for (const char* section : {"# depths\n", "## Protocol\n", "## Results\n", "## Reading\n",
                              "## Figures\n", "## Files\n"}) {
    const size_t found = m.find(section, at);
    ASSERT_NE(found, std::string::npos) << section << " missing or out of order:\n" << m;
    at = found;
  }
  // The table is the one `results --format markdown` prints, row for row.
  EXPECT_TRUE(Has(m, MarkdownTable(MakeResultsTable(in.results)))) << m;
  EXPECT_TRUE(Has(m, "never the best seed, never the best epoch")) << m;
  EXPECT_TRUE(Has(m, "![Training loss](figures/train-loss.png)")) << m;
  EXPECT_TRUE(Has(m, "Also as [SVG](figures/train-loss.svg).")) << m;
  EXPECT_TRUE(Has(m, "Drawn by `resweep plot abc123 --metric train_loss`.")) << m;
  EXPECT_TRUE(Has(m, "Written by `resweep report abc123 -o out` (resweep 1.2.3).")) << m;
  EXPECT_TRUE(Has(m, "`resweep results " + in.results.sweep().sweep_id() + " --format csv`")) << m;

  // The Files section's commands read what the report read: its K and its database.
  in.last_k_flag = " --last-k 3";
  in.db_flag = " --db '/data/my sweeps.db'";
  readme = ReportReadme(in);
  ASSERT_TRUE(readme.ok());
  EXPECT_TRUE(Has(*readme, "`resweep results " + in.results.sweep().sweep_id() +
                               " --format csv --last-k 3 --db '/data/my sweeps.db'` prints it"))
      << *readme;
  EXPECT_TRUE(Has(*readme, "`resweep runs " + in.results.sweep().sweep_id() +
                               " --format csv --db '/data/my sweeps.db'` prints it"))
      << *readme;

  in.figures.clear();
  readme = ReportReadme(in);
  ASSERT_TRUE(readme.ok());
  EXPECT_FALSE(Has(*readme, "## Figures")) << *readme;
}

TEST(Report, EpochsCsvOneLinePerRunAndEpochWithAbsentTestValuesEmpty) {
  v1::GetCurvesResponse curves;
  auto* run = curves.add_runs();
  run->set_run_id("r1");
  run->set_cell_label("model.block=a,b");  // a comma: quoted
  run->set_seed(7);
  run->set_state("succeeded");
  for (int e = 1; e <= 2; ++e) {
    auto* p = run->add_points();
    p->set_epoch(e);
    p->set_iteration(e * 10);
    p->set_train_loss(1.5 / e);
    p->set_train_error(0.25);
    p->set_test_loss(e == 1 ? -1 : 0.5);
    p->set_test_error(e == 1 ? -1 : 0.125);
    p->set_lr(0.1);
  }
  EXPECT_EQ(EpochsCsv(curves),
            "run_id,cell,seed,state,epoch,iteration,train_loss,train_error_frac,test_loss,"
            "test_error_frac,lr\n"
            "r1,\"model.block=a,b\",7,succeeded,1,10,1.5,0.25,,,0.1\n"
            "r1,\"model.block=a,b\",7,succeeded,2,20,0.75,0.25,0.5,0.125,0.1\n");
}

TEST(Report, ZoomPresetShowsTheFirstQuarterOfTheEpochsAtLeastTwo) {
  EXPECT_EQ(FirstEpochsEnd(200), 50);
  EXPECT_EQ(FirstEpochsEnd(5), 2);
  EXPECT_EQ(FirstEpochsEnd(1), 1);
  v1::GetCurvesResponse curves;
  auto* run = curves.add_runs();
  run->set_run_id("r");
  run->set_cell_key("c");
  run->set_cell_label("c");
  run->set_state("succeeded");
  for (int e = 1; e <= 12; ++e) {
    auto* p = run->add_points();
    p->set_epoch(e);
    p->set_iteration(e * 100);
    p->set_train_loss(1.0 / e);
  }
  CurvesOptions o;
  o.metric = "train_loss";
  o.first_epochs = true;
  o.output = {"z.svg.dat", "z.svg", "", false};
  auto files = CurvesPlot(curves, o);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_TRUE(Has(files->script, "set xrange [*:3]")) << files->script;
  const auto cells = CellCurves(curves, o);
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_EQ(cells[0].x, (std::vector<double>{1, 2, 3}));
  // On the iteration axis: up to the iterations at the end of that epoch.
  o.x = "iteration";
  files = CurvesPlot(curves, o);
  ASSERT_TRUE(files.ok());
  EXPECT_TRUE(Has(files->script, "set xrange [*:300]")) << files->script;
}

}  // namespace
}  // namespace resweep
