#include "common/stats.h"

#include <algorithm>
#include <cmath>

namespace resweep {

Summary Summarize(const std::vector<double>& values) {
  Summary s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  // Welford's algorithm: stable for values of similar magnitude (error fractions).
  double mean = 0, m2 = 0;
  int k = 0;
  for (double x : values) {
    ++k;
    const double delta = x - mean;
    mean += delta / k;
    m2 += delta * (x - mean);
  }
  s.mean = mean;
  s.std = s.n > 1 ? std::sqrt(m2 / (s.n - 1)) : 0.0;
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  return s;
}

namespace {

// Regularised incomplete beta function I_x(a, b) by Lentz's continued fraction.
double BetaContinuedFraction(double a, double b, double x) {
  const double kTiny = 1e-300;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 300; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a - 1.0 + m2) * (a + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1.0) < 1e-12) break;
  }
  return h;
}

double RegularizedIncompleteBeta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) +
                                a * std::log(x) + b * std::log(1.0 - x));
  if (x < (a + 1.0) / (a + b + 2.0)) return front * BetaContinuedFraction(a, b, x) / a;
  return 1.0 - front * BetaContinuedFraction(b, a, 1.0 - x) / b;
}

}  // namespace

double WelchTTestPValue(const Summary& a, const Summary& b) {
  if (a.n < 2 || b.n < 2) return -1.0;
  const double va = a.std * a.std / a.n, vb = b.std * b.std / b.n;
  if (va + vb == 0) return a.mean == b.mean ? 1.0 : 0.0;
  const double t = (a.mean - b.mean) / std::sqrt(va + vb);
  const double df = (va + vb) * (va + vb) / (va * va / (a.n - 1) + vb * vb / (b.n - 1));
  // Two-sided p = I_{df/(df+t^2)}(df/2, 1/2).
  return RegularizedIncompleteBeta(df / 2.0, 0.5, df / (df + t * t));
}

}  // namespace resweep
