// The version of this build of resweep, shared by every binary.
#pragma once

namespace resweep {

// The CMake project version, followed by the git commit the build was configured
// from when it was configured in a git checkout of resweep: "0.1.0 (abc1234)", or
// "0.1.0" (a source tarball, or no git). The commit is the one at configure time.
const char* ResweepVersion();

}  // namespace resweep
