// The statistics library against values computed independently. Unless a test says
// otherwise, reference values come from SciPy 1.10.1 / NumPy 1.24 (Debian 12's
// python3-scipy); the calls are given next to each value.
#include "analysis/statistics.h"
#include "analysis/statistics_cache.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

namespace resweep::analysis {
namespace {

// Seven and five seeds of two cells' test error.
const std::vector<double> kX = {0.0645, 0.0661, 0.0652, 0.0670, 0.0677, 0.0701, 0.0633};
const std::vector<double> kY = {0.0690, 0.0712, 0.0688, 0.0725, 0.0701};

TEST(Distributions, QuantilesMatchPublishedAndScipyValues) {
  // The t table's t_{0.975, 4} = 2.776; scipy.stats.t.ppf(.975, 4) = 2.7764451052.
  EXPECT_NEAR(StudentTQuantile(0.975, 4), 2.7764451052, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.975, 7.5), 2.3330396266, 1e-9);  // t.ppf(.975, 7.5)
  EXPECT_NEAR(StudentTQuantile(0.8, 3.2), 0.9688795923, 1e-9);    // t.ppf(.8, 3.2)
  EXPECT_NEAR(NormalQuantile(0.975), 1.9599639845, 1e-9);         // norm.ppf(.975)
}

TEST(Describe, MatchesScipyOnSevenSeeds) {
  const Description d = Describe(kX);
  EXPECT_EQ(d.n, 7);
  EXPECT_NEAR(d.mean, 0.0662714285714, 1e-12);   // x.mean()
  EXPECT_NEAR(d.std, 0.00224997354482, 1e-12);   // x.std(ddof=1)
  EXPECT_NEAR(d.sem, 0.000850410065152, 1e-12);  // scipy.stats.sem(x)
  // scipy.stats.t.interval(0.95, 6, loc=mean, scale=sem)
  EXPECT_NEAR(d.ci95.low, 0.0641905501067, 1e-11);
  EXPECT_NEAR(d.ci95.high, 0.0683523070362, 1e-11);
  EXPECT_NEAR(d.median, 0.0661, 1e-12);  // np.median(x)
  EXPECT_NEAR(d.q1, 0.06485, 1e-12);     // np.percentile(x, 25)
  EXPECT_NEAR(d.q3, 0.06735, 1e-12);     // np.percentile(x, 75)
  EXPECT_NEAR(d.iqr, 0.0025, 1e-12);
  EXPECT_NEAR(d.iqm, 0.0661, 1e-12);  // scipy.stats.trim_mean(x, 0.25)
  EXPECT_DOUBLE_EQ(d.min, 0.0633);
  EXPECT_DOUBLE_EQ(d.max, 0.0701);
  EXPECT_EQ(d.values, kX);
  // scipy.stats.bootstrap((x,), np.mean, method='percentile', n_resamples=100000):
  // (0.0648, 0.0678714). Another generator, so equal up to resampling noise: 3% of
  // the interval's width.
  const double width = 0.0678714 - 0.0648;
  EXPECT_NEAR(d.bootstrap_ci95.low, 0.0648, 0.03 * width);
  EXPECT_NEAR(d.bootstrap_ci95.high, 0.0678714, 0.03 * width);
}

TEST(Describe, IsReproducibleAndDegradesGracefully) {
  const Description a = Describe(kX), b = Describe(kX);
  EXPECT_EQ(a.bootstrap_ci95.low, b.bootstrap_ci95.low);
  EXPECT_EQ(a.bootstrap_ci95.high, b.bootstrap_ci95.high);
  const Description other_seed = Describe(kX, kBootstrapSeed + 1);
  EXPECT_NE(a.bootstrap_ci95.low, other_seed.bootstrap_ci95.low);

  const Description one = Describe({0.07});
  EXPECT_EQ(one.n, 1);
  EXPECT_EQ(one.std, 0);
  EXPECT_EQ(one.ci95.low, 0.07);
  EXPECT_EQ(one.ci95.high, 0.07);
  EXPECT_EQ(one.iqm, 0.07);
  EXPECT_EQ(Describe({}).n, 0);
  // trim_mean([1, 2, 3, 4, 100], 0.25) = 3: one value cut from each end.
  EXPECT_DOUBLE_EQ(Describe({100, 2, 1, 4, 3}).iqm, 3.0);
}

TEST(Welch, MatchesScipy) {
  // scipy.stats.ttest_ind(x, y, equal_var=False)
  const auto w = Welch(kX, kY);
  ASSERT_TRUE(w.has_value());
  EXPECT_NEAR(w->t, -3.688763968, 1e-8);
  EXPECT_NEAR(w->p, 0.004185379217, 1e-10);
  EXPECT_NEAR(w->dof, 9.999994468, 1e-6);
  EXPECT_NEAR(Welch(kY, kX)->p, w->p, 1e-15);  // symmetric
  // ttest_ind([9, 10, 11, 10, 10], [12, 11, 13, 12, 12], equal_var=False)
  const auto integers = Welch({9, 10, 11, 10, 10}, {12, 11, 13, 12, 12});
  EXPECT_NEAR(integers->t, -4.472135955, 1e-8);
  EXPECT_NEAR(integers->p, 0.002077337711, 1e-11);
  EXPECT_FALSE(Welch({0.1}, kX).has_value());
  EXPECT_EQ(Welch({0.1, 0.1}, {0.1, 0.1})->p, 1);
  EXPECT_EQ(Welch({0.1, 0.1}, {0.2, 0.2})->p, 0);
}

TEST(Holm, AdjustsByRankAndKeepsOrder) {
  // By hand from Holm (1979): sorted 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06,
  // 0.04 x 1 = 0.04 -> raised to 0.06 to stay monotone.
  const auto adjusted = HolmAdjust({0.01, 0.04, 0.03, 0.005, -1});
  ASSERT_EQ(adjusted.size(), 5u);
  EXPECT_NEAR(adjusted[0], 0.03, 1e-15);
  EXPECT_NEAR(adjusted[1], 0.06, 1e-15);
  EXPECT_NEAR(adjusted[2], 0.06, 1e-15);
  EXPECT_NEAR(adjusted[3], 0.02, 1e-15);
  EXPECT_EQ(adjusted[4], -1);                 // no test: kept and not counted
  EXPECT_EQ(HolmAdjust({0.5, 0.9})[1], 1.0);  // capped at 1
}

TEST(ProbabilityOfImprovement, MannWhitneyEstimateWithTiesAndBootstrap) {
  // scipy.stats.mannwhitneyu(y, x).statistic / (7 * 5) = 0.9285714286
  const auto p = ProbabilityAIsLower(kX, kY);
  ASSERT_TRUE(p.has_value());
  EXPECT_NEAR(p->estimate, 0.9285714286, 1e-10);
  // Ties count one half: mannwhitneyu(w, z).statistic / 12 = 0.4166666667.
  EXPECT_NEAR(ProbabilityAIsLower({0.07, 0.068, 0.068, 0.066}, {0.068, 0.069, 0.065})->estimate,
              0.4166666667, 1e-10);
  // A stratified percentile bootstrap in NumPy (100,000 resamples) gives
  // (0.742857, 1.0); the interval is made of multiples of 1/35.
  EXPECT_NEAR(p->ci95.low, 0.742857, 1.5 / 35);
  EXPECT_EQ(p->ci95.high, 1.0);
  EXPECT_FALSE(ProbabilityAIsLower({}, kY).has_value());
}

TEST(SeedsNeeded, AgreesWithExactPowerOfTheTTest) {
  // R's power.t.test(delta = 1, sd = 1, power = 0.8) gives n = 16.71 -> 17 per group;
  // the exact noncentral-t power (scipy.stats.nct) is 0.807 at 17 and 0.781 at 16.
  EXPECT_EQ(SeedsNeeded(0, 1, 1, 1), 17);
  // Exact minimal n by scipy.stats.nct for test-error-sized cells: 8 for a 0.2 point
  // difference with std 0.13 points; 12 for 0.5 with 0.4.
  EXPECT_EQ(SeedsNeeded(0.070, 0.0013, 0.068, 0.0013), 8);
  EXPECT_EQ(SeedsNeeded(0.075, 0.004, 0.070, 0.004), 12);
  EXPECT_EQ(SeedsNeeded(0.08, 0.002, 0.07, 0.002), 3);
  EXPECT_EQ(SeedsNeeded(0.08, 0, 0.07, 0), 2);
  EXPECT_FALSE(SeedsNeeded(0.07, 0.01, 0.07, 0.01).has_value());
  EXPECT_EQ(SeedsNeeded(0.07, 0.01, 0.0700001, 0.01), 1000000);  // capped
}

// A lone seed with the lowest value is not the best while other cells have several
// seeds (it would leave every other cell untested); with no repeated cell, it is.
TEST(CompareWithBest, ALoneSeedIsNotTheBestWhereCellsHaveSeveralSeeds) {
  const std::vector<double> a = {0.10, 0.11, 0.12}, b = {0.20, 0.21, 0.23};
  const Comparison c = CompareWithBest({{0.05}, b, a});
  EXPECT_EQ(c.best, 2);
  EXPECT_FALSE(c.cells[0].is_best);
  EXPECT_FALSE(c.cells[0].testable);  // one value: no Welch test
  EXPECT_TRUE(c.cells[1].testable);
  EXPECT_EQ(c.comparisons, 1);
  EXPECT_EQ(CompareWithBest({{0.30}, {0.05}, {}}).best, 1);
}

TEST(CompareWithBest, PicksTheLowestMeanAndMarksWhatCannotBeToldApart) {
  const std::vector<double> close = {0.0650, 0.0668, 0.0655, 0.0672, 0.0660};
  const Comparison c = CompareWithBest({kY, kX, close, {0.09}, {}});
  EXPECT_EQ(c.best, 2);  // close's mean 0.0661 < kX's 0.06627
  ASSERT_EQ(c.cells.size(), 5u);
  EXPECT_TRUE(c.cells[2].is_best);
  EXPECT_TRUE(c.cells[2].indistinguishable_from_best);
  EXPECT_FALSE(c.cells[2].welch.has_value());
  // kX against the best: far from significant.
  EXPECT_TRUE(c.cells[1].testable);
  EXPECT_TRUE(c.cells[1].indistinguishable_from_best);
  // ttest_ind(x, close, equal_var=False).pvalue = 0.8599064569: Holm keeps it (its
  // rank is second of two).
  EXPECT_NEAR(c.cells[1].welch->p, 0.8599064569, 1e-9);
  EXPECT_NEAR(c.cells[1].p_holm, 0.8599064569, 1e-9);
  // ttest_ind(y, close, equal_var=False).pvalue = 0.0015357469, x 2 comparisons.
  EXPECT_NEAR(c.cells[0].welch->p, 0.0015357469, 1e-9);
  EXPECT_NEAR(c.cells[0].p_holm, 2 * 0.0015357469, 2e-9);
  EXPECT_FALSE(c.cells[0].indistinguishable_from_best);
  EXPECT_LT(c.cells[0].probability_better_than_best->estimate, 0.1);
  EXPECT_TRUE(c.cells[0].seeds_needed.has_value());
  // One seed: no test, no verdict, and no probability of improvement (fewer than
  // kMinSeedsForProbability values).
  EXPECT_FALSE(c.cells[3].testable);
  EXPECT_FALSE(c.cells[3].indistinguishable_from_best);
  EXPECT_EQ(c.cells[3].p_holm, -1);
  EXPECT_FALSE(c.cells[3].probability_better_than_best.has_value());
  EXPECT_FALSE(c.cells[3].seeds_needed.has_value());
  // No values: nothing.
  EXPECT_FALSE(c.cells[4].probability_better_than_best.has_value());
  EXPECT_EQ(CompareWithBest({{}, {}}).best, -1);
}

// With two seeds a side the bootstrap of P(better) can only redraw the same few
// resamples: two cells a Welch test cannot tell apart (p 0.84) came out "0.00 [0.00,
// 0.00]". It is given only from three seeds on each side.
TEST(CompareWithBest, NoProbabilityOfImprovementWithFewerThanThreeSeedsOnASide) {
  const std::vector<double> best = {0.20, 0.30};  // mean 0.25
  const std::vector<double> other = {0.31, 0.32};
  Comparison c = CompareWithBest({other, best});
  ASSERT_EQ(c.best, 1);
  EXPECT_TRUE(c.cells[0].testable);  // Welch needs two: still tested
  EXPECT_FALSE(c.cells[0].probability_better_than_best.has_value());
  // Three a side for the cell, two for the best: still none.
  c = CompareWithBest({{0.31, 0.32, 0.33}, best});
  EXPECT_FALSE(c.cells[0].probability_better_than_best.has_value());
  // Three and three, overlapping: given, with an interval of some width.
  c = CompareWithBest({{0.24, 0.31, 0.33}, {0.20, 0.30, 0.25}});
  ASSERT_TRUE(c.cells[0].probability_better_than_best.has_value());
  EXPECT_LT(c.cells[0].probability_better_than_best->ci95.low,
            c.cells[0].probability_better_than_best->ci95.high);
}

TEST(CompareWithBest, SeedsNeededArePlannedAtAlphaOverTheNumberOfComparisons) {
  EXPECT_DOUBLE_EQ(SeedsNeededAlpha(0.05, 0), 0.05);
  EXPECT_DOUBLE_EQ(SeedsNeededAlpha(0.05, 1), 0.05);
  EXPECT_DOUBLE_EQ(SeedsNeededAlpha(0.05, 4), 0.0125);
  // A best cell and 49 cells like it a little worse: each alone would look different
  // (Welch p 0.021), none is after Holm's correction over 49 comparisons (p_holm 1), so
  // a plan at the unadjusted 0.05 (a few seeds) would contradict the verdict. The plan
  // is made at 0.05 / 49 instead.
  const std::vector<double> best = {0.10, 0.11, 0.12};
  const std::vector<double> worse = {0.13, 0.14, 0.15};
  std::vector<std::vector<double>> cells(49, worse);
  cells.push_back(best);
  cells.push_back({0.2});  // one seed: not tested, not counted
  const Comparison c = CompareWithBest(cells);
  ASSERT_EQ(c.best, 49);
  EXPECT_EQ(c.comparisons, 49);
  EXPECT_DOUBLE_EQ(c.seeds_needed_alpha, 0.05 / 49);
  const CellVerdict& v = c.cells[0];
  ASSERT_TRUE(v.welch.has_value());
  EXPECT_LT(v.welch->p, 0.05);
  EXPECT_GE(v.p_holm, 0.05);
  EXPECT_TRUE(v.indistinguishable_from_best);
  const int at_alpha = *SeedsNeeded(0.14, 0.01, 0.11, 0.01, 0.05);
  const int at_bonferroni = *SeedsNeeded(0.14, 0.01, 0.11, 0.01, 0.05 / 49);
  EXPECT_GT(at_bonferroni, at_alpha);
  EXPECT_EQ(v.seeds_needed, at_bonferroni);
  EXPECT_FALSE(c.cells[50].seeds_needed.has_value());
  // One comparison: the level is alpha itself.
  const Comparison two = CompareWithBest({worse, best});
  EXPECT_DOUBLE_EQ(two.seeds_needed_alpha, 0.05);
  EXPECT_EQ(two.cells[0].seeds_needed, at_alpha);
}

}  // namespace
}  // namespace resweep::analysis

namespace resweep::analysis {
namespace {

// The cache answers exactly what the plain functions compute, and computes each
// question once.
TEST(StatisticsCache, SameAnswersAsThePlainFunctionsComputedOnce) {
  const std::vector<std::vector<double>> cells = {
      {0.0690, 0.0712, 0.0688, 0.0725, 0.0701},
      {0.0650, 0.0668, 0.0655, 0.0672, 0.0660},
      {0.0645, 0.0661, 0.0652, 0.0670, 0.0677, 0.0701, 0.0633},
      {0.08}};
  const Comparison plain = CompareWithBest(cells);
  StatisticsCache cache;
  const Comparison first =
      CompareWithBest(cells, kDefaultAlpha, kBootstrapSeed, kBootstrapResamples, &cache);
  const int64_t misses = cache.misses();
  EXPECT_EQ(cache.hits(), 0);
  const Comparison second =
      CompareWithBest(cells, kDefaultAlpha, kBootstrapSeed, kBootstrapResamples, &cache);
  EXPECT_EQ(cache.misses(), misses);  // nothing computed again
  EXPECT_EQ(cache.hits(), misses);
  for (const Comparison* c : {&first, &second}) {
    ASSERT_EQ(c->best, plain.best);
    for (size_t i = 0; i < cells.size(); ++i) {
      const CellVerdict& got = c->cells[i];
      const CellVerdict& want = plain.cells[i];
      EXPECT_EQ(got.description.bootstrap_ci95.low, want.description.bootstrap_ci95.low);
      EXPECT_EQ(got.description.bootstrap_ci95.high, want.description.bootstrap_ci95.high);
      EXPECT_EQ(got.description.values, want.description.values);
      EXPECT_EQ(got.p_holm, want.p_holm);
      EXPECT_EQ(got.seeds_needed, want.seeds_needed);
      ASSERT_EQ(got.probability_better_than_best.has_value(),
                want.probability_better_than_best.has_value());
      if (want.probability_better_than_best) {
        EXPECT_EQ(got.probability_better_than_best->ci95.low,
                  want.probability_better_than_best->ci95.low);
        EXPECT_EQ(got.probability_better_than_best->ci95.high,
                  want.probability_better_than_best->ci95.high);
      }
    }
  }
  // One more seed in one cell: only what depends on that cell is computed anew.
  auto changed = cells;
  changed[0].push_back(0.0700);
  const int64_t before = cache.misses();
  (void)CompareWithBest(changed, kDefaultAlpha, kBootstrapSeed, kBootstrapResamples, &cache);
  EXPECT_EQ(cache.misses() - before, 3);  // its description, P(better), seeds needed
}

// A backing as a map: what a database would hold.
class MapBacking : public StatisticsBacking {
 public:
  const std::string* Find(const std::string& key) override {
    auto it = stored.find(key);
    return it == stored.end() ? nullptr : &it->second;
  }
  void Used(const std::string& key, const std::string& value) override { used[key] = value; }
  std::map<std::string, std::string> stored, used;
};

// What one computation used, stored, answers the same questions in a fresh process
// (a fresh cache) without computing anything, bit for bit; an entry that does not
// decode is computed again; an entry is only ever used for its exact inputs.
TEST(StatisticsCache, AnswersFromItsBackingBitForBitAndOnlyForTheSameInputs) {
  const std::vector<std::vector<double>> cells = {
      {0.0690, 0.0712, 0.0688, 0.0725, 0.0701}, {0.0650, 0.0668, 0.0655, 0.0672, 0.0660}, {0.08}};
  const Comparison plain = CompareWithBest(cells);
  MapBacking first_run;
  StatisticsCache first_cache;
  (void)CompareWithBest(cells, kDefaultAlpha, kBootstrapSeed, kBootstrapResamples, &first_cache,
                        &first_run);
  ASSERT_FALSE(first_run.used.empty());
  EXPECT_EQ(static_cast<size_t>(first_cache.computed()), first_run.used.size());

  MapBacking database;
  database.stored = first_run.used;
  StatisticsCache fresh;
  const Comparison again =
      CompareWithBest(cells, kDefaultAlpha, kBootstrapSeed, kBootstrapResamples, &fresh, &database);
  EXPECT_EQ(fresh.computed(), 0);
  EXPECT_EQ(database.used, first_run.used);
  ASSERT_EQ(again.best, plain.best);
  for (size_t i = 0; i < cells.size(); ++i) {
    const CellVerdict& got = again.cells[i];
    const CellVerdict& want = plain.cells[i];
    EXPECT_EQ(got.description.n, want.description.n);
    EXPECT_EQ(got.description.values, want.description.values);
    EXPECT_EQ(got.description.mean, want.description.mean);
    EXPECT_EQ(got.description.std, want.description.std);
    EXPECT_EQ(got.description.ci95.high, want.description.ci95.high);
    EXPECT_EQ(got.description.bootstrap_ci95.low, want.description.bootstrap_ci95.low);
    EXPECT_EQ(got.description.bootstrap_ci95.high, want.description.bootstrap_ci95.high);
    EXPECT_EQ(got.description.median, want.description.median);
    EXPECT_EQ(got.description.iqm, want.description.iqm);
    EXPECT_EQ(got.description.max, want.description.max);
    EXPECT_EQ(got.seeds_needed, want.seeds_needed);
    ASSERT_EQ(got.probability_better_than_best.has_value(),
              want.probability_better_than_best.has_value());
    if (want.probability_better_than_best) {
      EXPECT_EQ(got.probability_better_than_best->estimate,
                want.probability_better_than_best->estimate);
      EXPECT_EQ(got.probability_better_than_best->ci95.high,
                want.probability_better_than_best->ci95.high);
    }
  }

  // Damaged entries (cut short, another format) are computed again, with the same result.
  MapBacking damaged;
  for (const auto& [key, value] : first_run.used) damaged.stored[key] = value.substr(0, 5);
  StatisticsCache third;
  const Comparison recomputed =
      CompareWithBest(cells, kDefaultAlpha, kBootstrapSeed, kBootstrapResamples, &third, &damaged);
  EXPECT_EQ(static_cast<size_t>(third.computed()), first_run.used.size());
  EXPECT_EQ(recomputed.cells[0].description.bootstrap_ci95.low,
            plain.cells[0].description.bootstrap_ci95.low);
  EXPECT_EQ(damaged.used, first_run.used);

  // Edited entries: a description whose mean is NaN, or not the mean of its values,
  // is computed again (never shown, never crashing what uses it).
  for (const double bad_mean : {std::nan(""), 0.01}) {
    MapBacking edited;
    edited.stored = first_run.used;
    int descriptions = 0;
    for (auto& [key, value] : edited.stored) {
      if (key[0] != 'd') continue;
      ++descriptions;
      std::memcpy(value.data() + 1 + sizeof(int32_t), &bad_mean, sizeof(double));
    }
    ASSERT_GT(descriptions, 0);
    StatisticsCache fifth;
    const Comparison fixed =
        CompareWithBest(cells, kDefaultAlpha, kBootstrapSeed, kBootstrapResamples, &fifth, &edited);
    EXPECT_EQ(fifth.computed(), descriptions);
    EXPECT_EQ(fixed.best, plain.best);
    EXPECT_EQ(fixed.cells[1].description.mean, plain.cells[1].description.mean);
    EXPECT_EQ(edited.used, first_run.used);  // the right values go back to the store
  }

  // Other values (one seed more): nothing of that cell is taken from the backing.
  auto changed = cells;
  changed[1].push_back(0.0662);
  StatisticsCache fourth;
  (void)CompareWithBest(changed, kDefaultAlpha, kBootstrapSeed, kBootstrapResamples, &fourth,
                        &database);
  EXPECT_GT(fourth.computed(), 0);
  EXPECT_EQ(CompareWithBest(changed).cells[1].description.bootstrap_ci95.low,
            Describe(changed[1]).bootstrap_ci95.low);
}

// Bounded: the least recently used entries go once the bytes are spent.
TEST(StatisticsCache, ForgetsTheLeastRecentlyUsedBeyondItsBound) {
  StatisticsCache cache(/*max_bytes=*/2000);
  const std::vector<double> a = {1, 2, 3}, b = {4, 5, 6};
  (void)cache.Describe(a, 1, 10);
  (void)cache.Describe(b, 1, 10);
  (void)cache.Describe(a, 1, 10);  // a is now the most recent
  EXPECT_EQ(cache.hits(), 1);
  for (int i = 0; i < 20; ++i) (void)cache.Describe({static_cast<double>(i)}, 1, 10);
  const int64_t misses = cache.misses();
  (void)cache.Describe(b, 1, 10);
  EXPECT_EQ(cache.misses(), misses + 1);  // b was forgotten
}

}  // namespace
}  // namespace resweep::analysis
