// Renders results and run listings for people (table, markdown) and programs (csv, json).
#pragma once

#include <string>

#include "common/status.h"
#include "resweep/v1/resweep.pb.h"

namespace resweep {

// format: table | markdown | csv | json. Error rates print as percentages in
// table/markdown and as fractions in csv/json.
StatusOr<std::string> FormatResults(const v1::GetResultsResponse& results,
                                    const std::string& format);

std::string FormatRuns(const v1::ListRunsResponse& runs);
std::string FormatSweepLine(const v1::SweepSummary& sweep);

}  // namespace resweep
