// Published CIFAR-10 test errors to print next to a sweep's own.
//
// The published figures (He et al. 2015, Table 6: reference
// block, option-A shortcuts) and those of the 2016 Lua Torch
// re-implementation (one run each). Errors are fractions (0.0875 = 8.75%).
#pragma once

#include <string>

namespace resweep {

// He et al. 2015 Table 6 error for `layers`, or < 0 when the paper has none.
double PaperTestError(int layers);

// The 2016 re-implementation's error for (block, layers), or < 0.
double SourceTestError(const std::string& block, int layers);

}  // namespace resweep
