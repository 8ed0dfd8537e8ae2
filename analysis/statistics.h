// Statistics of repeated-seed outcomes: how large, how spread, and how sure.
//
// Every output of resweep (the coordinator's GetResults, the CLI's table, JSON and
// CSV, the report and the figures) takes its numbers from here, so one cell has one
// mean, one interval and one verdict everywhere. Pure functions of their inputs:
// resampling uses a fixed seed, so the same values always give the same output.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace resweep::analysis {

// The resampling seed every bootstrap uses unless told otherwise.
inline constexpr uint64_t kBootstrapSeed = 20160627;
inline constexpr int kBootstrapResamples = 10000;
// Significance level of every comparison resweep prints.
inline constexpr double kDefaultAlpha = 0.05;
// The fewest seeds on each side for which CompareWithBest gives a probability of
// improvement: with one or two seeds the bootstrap can draw only a handful of distinct
// resamples, so its interval is degenerate ("0.00 [0.00, 0.00]" for two cells a Welch
// test cannot tell apart) and says nothing.
inline constexpr int kMinSeedsForProbability = 3;

struct Interval {
  double low = 0;
  double high = 0;
};

// One cell's values (one per seed).
struct Description {
  int n = 0;
  double mean = 0;
  double std = 0;  // sample standard deviation (n - 1); 0 when n < 2
  double sem = 0;  // standard error of the mean, std / sqrt(n)
  // Student-t 95% confidence interval of the mean; {mean, mean} when n < 2.
  Interval ci95;
  // Percentile bootstrap 95% interval of the mean; {mean, mean} when n < 2.
  Interval bootstrap_ci95;
  double median = 0;
  double q1 = 0;   // quartiles by linear interpolation between order statistics
  double q3 = 0;   // (Hyndman & Fan type 7, the default of R and NumPy)
  double iqr = 0;  // q3 - q1
  // Interquartile mean: the mean of what is left after floor(n / 4) values are cut
  // from each end (SciPy's trim_mean(x, 0.25), as rliable uses).
  double iqm = 0;
  double min = 0;
  double max = 0;
  std::vector<double> values;  // as given
};

Description Describe(const std::vector<double>& values, uint64_t seed = kBootstrapSeed,
                     int resamples = kBootstrapResamples);

// Quantile q in [0, 1] of `sorted` (ascending) by linear interpolation (type 7).
double Quantile(const std::vector<double>& sorted, double q);

// The q-quantile of Student's t distribution with `dof` (> 0, not necessarily
// whole) degrees of freedom.
double StudentTQuantile(double q, double dof);
// The q-quantile of the standard normal distribution.
double NormalQuantile(double q);

struct WelchTest {
  double t = 0;    // (mean_a - mean_b) / sqrt(var_a / n_a + var_b / n_b)
  double dof = 0;  // Welch-Satterthwaite
  double p = 1;    // two-sided
};

// Welch's unequal-variance t-test of mean(a) != mean(b); nullopt when either has
// fewer than two values. Two samples without any spread: p = 1 when their means are
// equal, else 0.
std::optional<WelchTest> Welch(const std::vector<double>& a, const std::vector<double>& b);

// Holm's step-down adjustment of p-values for multiple comparisons, in the input's
// order; a negative entry means "no test" and is kept as it is and not counted.
std::vector<double> HolmAdjust(const std::vector<double>& p);

// Probability of improvement P(A < B) (lower is better, e.g. test error): the
// Mann-Whitney estimate (1 / nm) sum_ij [a_i < b_j] + 0.5 [a_i == b_j], with a
// stratified percentile bootstrap 95% interval (each sample resampled on its own),
// as in Agarwal et al. 2021 (rliable). nullopt when either sample is empty.
struct ProbabilityOfImprovement {
  double estimate = 0.5;
  Interval ci95;
};
std::optional<ProbabilityOfImprovement> ProbabilityAIsLower(const std::vector<double>& a,
                                                            const std::vector<double>& b,
                                                            uint64_t seed = kBootstrapSeed,
                                                            int resamples = kBootstrapResamples);

// Seeds per cell that a two-sided Welch test at `alpha` would need to tell two cells
// with these means and standard deviations apart with probability `power`: the least
// n >= 2 whose power, taken as true means and spreads, reaches `power`. The power of n
// seeds each is computed from the noncentral t distribution, P(|T| > t_{1-alpha/2, v})
// with T ~ t'(v, delta / sqrt((s_a^2 + s_b^2) / n)) and v the Welch-Satterthwaite
// degrees of freedom (2n - 2 when the spreads are equal: then it is the exact power of
// the two-sample t-test, as R's power.t.test computes it). At most 1,000,000.
// nullopt when the means are equal (no number of seeds separates them) or a standard
// deviation is negative.
std::optional<int> SeedsNeeded(double mean_a, double std_a, double mean_b, double std_b,
                               double alpha = kDefaultAlpha, double power = 0.8);

// The level at which CompareWithBest plans seeds needed when it makes `comparisons`
// tests against the best: alpha / comparisons (Bonferroni; alpha when there is at
// most one). Stricter than the Holm adjustment the verdicts use, so the seeds it plans
// would also make the Holm-adjusted test reject: a plan at the unadjusted alpha could
// promise "2 seeds" for a cell whose Holm-adjusted p is 1.
double SeedsNeededAlpha(double alpha, int comparisons);

// A set of cells compared with the best of them: the lowest mean (lower is better) among
// the cells with at least two values, or among all when none has two.
struct CellVerdict {
  Description description;
  bool is_best = false;
  // Against the best cell (unset for the best itself and when either has n < 2).
  std::optional<WelchTest> welch;
  double p_holm = -1;  // Holm-adjusted across all comparisons with the best; -1: none
  // P(this cell < best): the chance that a seed of this cell beats a seed of the best;
  // unset unless both have at least kMinSeedsForProbability values.
  std::optional<ProbabilityOfImprovement> probability_better_than_best;
  // Cannot be told apart from the best at `alpha` (Holm-adjusted p >= alpha). The
  // best cell itself is; a cell that could not be tested (n < 2) is not claimed
  // either way and stays false, see `testable`.
  bool indistinguishable_from_best = false;
  bool testable = false;
  // To separate this cell from the best, at Comparison::seeds_needed_alpha; set when
  // testable (and not the best).
  std::optional<int> seeds_needed;
};

struct Comparison {
  int best = -1;  // index of the best cell; -1 when no cell has a value
  double alpha = kDefaultAlpha;
  int comparisons = 0;  // cells tested against the best (Welch made)
  // SeedsNeededAlpha(alpha, comparisons): the level of every seeds_needed.
  double seeds_needed_alpha = kDefaultAlpha;
  std::vector<CellVerdict> cells;  // in the input's order
};

class StatisticsCache;
class StatisticsBacking;

// Cells without values take part in nothing (no best, no test). With a cache, the
// per-cell statistics come from it when the same values were asked about before, and
// with a backing too, from there (the output is the same either way).
Comparison CompareWithBest(const std::vector<std::vector<double>>& cells,
                           double alpha = kDefaultAlpha, uint64_t seed = kBootstrapSeed,
                           int resamples = kBootstrapResamples, StatisticsCache* cache = nullptr,
                           StatisticsBacking* backing = nullptr);

}  // namespace resweep::analysis
