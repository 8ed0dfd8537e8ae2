#pragma once

#include <vector>

namespace resweep {

// n, mean, sample standard deviation (n-1 denominator; 0 when n < 2), min, max.
struct Summary {
  int n = 0;
  double mean = 0;
  double std = 0;
  double min = 0;
  double max = 0;
};

Summary Summarize(const std::vector<double>& values);

// Welch's t-test for a difference of means between two samples. Returns the
// two-sided p-value, or a negative number when either sample has n < 2.
double WelchTTestPValue(const Summary& a, const Summary& b);

}  // namespace resweep
