#include "common/version.h"

#ifndef RESWEEP_VERSION_STRING
#define RESWEEP_VERSION_STRING "unknown"
#endif

namespace resweep {

const char* ResweepVersion() { return RESWEEP_VERSION_STRING; }

}  // namespace resweep
