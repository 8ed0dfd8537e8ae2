#include "analysis/statistics.h"

#include "analysis/statistics_cache.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include <boost/math/distributions/non_central_t.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>

namespace resweep::analysis {

namespace {

constexpr int kMaxSeedsNeeded = 1000000;

// A uniform index in [0, n) from one 64-bit draw (multiply-shift). mt19937_64 is
// fully specified by the standard, so resamples are the same on every platform,
// unlike std::uniform_int_distribution.
size_t Index(std::mt19937_64& rng, size_t n) {
  return static_cast<size_t>((static_cast<unsigned __int128>(rng()) * n) >> 64);
}

double Mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}

// Sample variance (n - 1) by Welford's algorithm; 0 when n < 2.
double Variance(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  double mean = 0, m2 = 0;
  int k = 0;
  for (double x : v) {
    ++k;
    const double delta = x - mean;
    mean += delta / k;
    m2 += delta * (x - mean);
  }
  return m2 / (v.size() - 1);
}

// (1 / nm) sum_ij [a_i < b_j] + 0.5 [a_i == b_j], counting over sorted b.
double MannWhitneyLower(const std::vector<double>& a, std::vector<double> b) {
  std::sort(b.begin(), b.end());
  double wins = 0;
  for (double x : a) {
    const auto above = std::upper_bound(b.begin(), b.end(), x);
    const auto from = std::lower_bound(b.begin(), b.end(), x);
    wins += static_cast<double>(b.end() - above) + 0.5 * static_cast<double>(above - from);
  }
  return wins / (static_cast<double>(a.size()) * static_cast<double>(b.size()));
}

}  // namespace

double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double h = (sorted.size() - 1) * std::clamp(q, 0.0, 1.0);
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

double StudentTQuantile(double q, double dof) {
  return boost::math::quantile(boost::math::students_t_distribution<double>(dof), q);
}

double NormalQuantile(double q) {
  return boost::math::quantile(boost::math::normal_distribution<double>(), q);
}

Description Describe(const std::vector<double>& values, uint64_t seed, int resamples) {
  Description d;
  d.values = values;
  d.n = static_cast<int>(values.size());
  if (d.n == 0) return d;
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  d.mean = Mean(values);
  d.std = std::sqrt(Variance(values));
  d.sem = d.std / std::sqrt(static_cast<double>(d.n));
  d.min = sorted.front();
  d.max = sorted.back();
  d.median = Quantile(sorted, 0.5);
  d.q1 = Quantile(sorted, 0.25);
  d.q3 = Quantile(sorted, 0.75);
  d.iqr = d.q3 - d.q1;
  const size_t cut = sorted.size() / 4;
  d.iqm = Mean(std::vector<double>(sorted.begin() + cut, sorted.end() - cut));
  d.ci95 = d.bootstrap_ci95 = {d.mean, d.mean};
  if (d.n < 2) return d;
  const double half = StudentTQuantile(0.975, d.n - 1) * d.sem;
  d.ci95 = {d.mean - half, d.mean + half};
  std::mt19937_64 rng(seed);
  std::vector<double> means(std::max(resamples, 1));
  for (double& m : means) {
    double sum = 0;
    for (int i = 0; i < d.n; ++i) sum += values[Index(rng, values.size())];
    m = sum / d.n;
  }
  std::sort(means.begin(), means.end());
  d.bootstrap_ci95 = {Quantile(means, 0.025), Quantile(means, 0.975)};
  return d;
}

std::optional<WelchTest> Welch(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() < 2 || b.size() < 2) return std::nullopt;
  const double na = a.size(), nb = b.size();
  const double va = Variance(a) / na, vb = Variance(b) / nb;
  const double diff = Mean(a) - Mean(b);
  WelchTest w;
  if (va + vb == 0) {
    w.dof = na + nb - 2;
    w.t = diff == 0 ? 0 : std::copysign(std::numeric_limits<double>::infinity(), diff);
    w.p = diff == 0 ? 1 : 0;
    return w;
  }
  w.t = diff / std::sqrt(va + vb);
  w.dof = (va + vb) * (va + vb) / (va * va / (na - 1) + vb * vb / (nb - 1));
  w.p = 2 * boost::math::cdf(boost::math::complement(
                boost::math::students_t_distribution<double>(w.dof), std::fabs(w.t)));
  w.p = std::min(1.0, w.p);
  return w;
}

std::vector<double> HolmAdjust(const std::vector<double>& p) {
  std::vector<size_t> order;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] >= 0) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return p[x] < p[y]; });
  std::vector<double> adjusted = p;
  const double m = order.size();
  double running = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    running = std::max(running, std::min(1.0, (m - k) * p[order[k]]));
    adjusted[order[k]] = running;
  }
  return adjusted;
}

std::optional<ProbabilityOfImprovement> ProbabilityAIsLower(const std::vector<double>& a,
                                                            const std::vector<double>& b,
                                                            uint64_t seed, int resamples) {
  if (a.empty() || b.empty()) return std::nullopt;
  ProbabilityOfImprovement result;
  result.estimate = MannWhitneyLower(a, b);
  // Each resample draws a's indices, then b's, as the plain algorithm would, but
  // counts rather than sorts: with b's values sorted once and, for each a_i, where it
  // falls among them (below[i]: b values < a_i; not_above[i]: b values <= a_i), a
  // resample's statistic is sum over drawn a_i of (drawn b > a_i) + 0.5 (drawn b ==
  // a_i), read off prefix sums of how often each sorted b was drawn. O(na + nb) per
  // resample instead of O((na + nb) log nb); the same draws give the same number.
  const size_t na = a.size(), nb = b.size();
  std::vector<size_t> order(nb);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return b[x] < b[y]; });
  std::vector<size_t> rank_of(nb);  // original index of b -> its position in sorted order
  std::vector<double> sorted_b(nb);
  for (size_t k = 0; k < nb; ++k) {
    rank_of[order[k]] = k;
    sorted_b[k] = b[order[k]];
  }
  std::vector<size_t> below(na), not_above(na);
  for (size_t i = 0; i < na; ++i) {
    below[i] = std::lower_bound(sorted_b.begin(), sorted_b.end(), a[i]) - sorted_b.begin();
    not_above[i] = std::upper_bound(sorted_b.begin(), sorted_b.end(), a[i]) - sorted_b.begin();
  }
  std::mt19937_64 rng(seed);
  std::vector<double> estimates(std::max(resamples, 1));
  std::vector<size_t> drawn_a(na);
  std::vector<int64_t> drawn_b(nb + 1);  // then prefix sums: drawn b at sorted positions < k
  const double pairs = static_cast<double>(na) * static_cast<double>(nb);
  for (double& e : estimates) {
    for (size_t& i : drawn_a) i = Index(rng, na);
    std::fill(drawn_b.begin(), drawn_b.end(), 0);
    for (size_t j = 0; j < nb; ++j) ++drawn_b[rank_of[Index(rng, nb)] + 1];
    for (size_t k = 1; k <= nb; ++k) drawn_b[k] += drawn_b[k - 1];
    double wins = 0;
    for (size_t i : drawn_a) {
      const double above = static_cast<double>(nb - drawn_b[not_above[i]]);
      const double tied = static_cast<double>(drawn_b[not_above[i]] - drawn_b[below[i]]);
      wins += above + 0.5 * tied;
    }
    e = wins / pairs;
  }
  std::sort(estimates.begin(), estimates.end());
  result.ci95 = {Quantile(estimates, 0.025), Quantile(estimates, 0.975)};
  return result;
}

std::optional<int> SeedsNeeded(double mean_a, double std_a, double mean_b, double std_b,
                               double alpha, double power) {
  const double delta = std::fabs(mean_a - mean_b);
  if (delta == 0 || std_a < 0 || std_b < 0) return std::nullopt;
  const double va = std_a * std_a, vb = std_b * std_b;
  if (va + vb == 0) return 2;
  auto power_of = [&](int n) {
    const double dof = (va + vb) * (va + vb) * (n - 1) / (va * va + vb * vb);
    const double shift = delta / std::sqrt((va + vb) / n);
    const double critical = StudentTQuantile(1 - alpha / 2, dof);
    const boost::math::non_central_t_distribution<double> t(dof, shift);
    return boost::math::cdf(boost::math::complement(t, critical)) + boost::math::cdf(t, -critical);
  };
  // Power grows with n: the normal approximation brackets the answer, then bisect.
  const double z = NormalQuantile(1 - alpha / 2) + NormalQuantile(power);
  int high = static_cast<int>(std::min<double>(
      kMaxSeedsNeeded, std::max(2.0, std::ceil(z * z * (va + vb) / (delta * delta)))));
  while (high < kMaxSeedsNeeded && power_of(high) < power)
    high = std::min(kMaxSeedsNeeded, 2 * high);
  if (power_of(high) < power) return kMaxSeedsNeeded;
  int low = 1;  // power_of(low) < power or low < 2
  while (high - low > 1) {
    const int mid = low + (high - low) / 2;
    if (mid >= 2 && power_of(mid) >= power) {
      high = mid;
    } else {
      low = mid;
    }
  }
  return high;
}

double SeedsNeededAlpha(double alpha, int comparisons) {
  return comparisons > 1 ? alpha / comparisons : alpha;
}

Comparison CompareWithBest(const std::vector<std::vector<double>>& cells, double alpha,
                           uint64_t seed, int resamples, StatisticsCache* cache,
                           StatisticsBacking* backing) {
  std::optional<StatisticsCache> own_cache;  // a backing is consulted through a cache
  if (backing && !cache) cache = &own_cache.emplace();
  auto describe = [&](const std::vector<double>& v) {
    return cache ? cache->Describe(v, seed, resamples, backing) : Describe(v, seed, resamples);
  };
  auto probability = [&](const std::vector<double>& a, const std::vector<double>& b) {
    return cache ? cache->ProbabilityAIsLower(a, b, seed, resamples, backing)
                 : ProbabilityAIsLower(a, b, seed, resamples);
  };
  auto seeds_needed = [&](const Description& a, const Description& b, double level) {
    return cache ? cache->SeedsNeeded(a.mean, a.std, b.mean, b.std, level, 0.8, backing)
                 : SeedsNeeded(a.mean, a.std, b.mean, b.std, level, 0.8);
  };
  Comparison c;
  c.alpha = alpha;
  c.cells.resize(cells.size());
  // The best is the lowest mean among the cells with at least two values when there
  // is one: a lone seed is no ground to rank on, and as the best it would leave every
  // other cell untested.
  bool any_repeated = false;
  for (size_t i = 0; i < cells.size(); ++i) any_repeated |= cells[i].size() >= 2;
  const size_t min_values = any_repeated ? 2 : 1;
  for (size_t i = 0; i < cells.size(); ++i) {
    c.cells[i].description = describe(cells[i]);
    if (cells[i].size() < min_values) continue;
    if (c.best < 0 || c.cells[i].description.mean < c.cells[c.best].description.mean) {
      c.best = static_cast<int>(i);
    }
  }
  if (c.best < 0) return c;
  const auto& best_values = cells[c.best];
  const Description& best = c.cells[c.best].description;
  std::vector<double> p(cells.size(), -1);
  for (size_t i = 0; i < cells.size(); ++i) {
    CellVerdict& v = c.cells[i];
    if (static_cast<int>(i) == c.best) {
      v.is_best = true;
      v.testable = best.n >= 2;
      v.indistinguishable_from_best = true;
      continue;
    }
    if (cells[i].empty()) continue;
    if (v.description.n >= kMinSeedsForProbability && best.n >= kMinSeedsForProbability) {
      v.probability_better_than_best = probability(cells[i], best_values);
    }
    v.welch = Welch(cells[i], best_values);
    if (!v.welch) continue;
    v.testable = true;
    p[i] = v.welch->p;
    ++c.comparisons;
  }
  c.seeds_needed_alpha = SeedsNeededAlpha(alpha, c.comparisons);
  const std::vector<double> holm = HolmAdjust(p);
  for (size_t i = 0; i < cells.size(); ++i) {
    if (p[i] < 0) continue;
    CellVerdict& v = c.cells[i];
    v.p_holm = holm[i];
    v.indistinguishable_from_best = holm[i] >= alpha;
    v.seeds_needed = seeds_needed(v.description, best, c.seeds_needed_alpha);
  }
  return c;
}

}  // namespace resweep::analysis
