// The build's version, for --version on every binary.
#pragma once

namespace resweep {

// "0.1.0 (abc1234)": the project version and, when built from git, the commit.
const char* ResweepVersion();

}  // namespace resweep
