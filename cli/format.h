// Renders what the coordinator answers for people (table, markdown) and programs
// (csv, json). Every renderer works on the protobuf responses, so output from a
// coordinator and from a database file read offline (--db) is identical.
//
// JSON conventions (docs/cli.md): numbers are numbers, a number that does not exist
// (no run finished, no published figure, nothing observed yet) is null, error rates
// are fractions in 0..1 (the key "error_unit" says so), times are Unix milliseconds
// or seconds as their key names say.
#pragma once

#include <string>

#include "common/status.h"
#include "resweep/v1/resweep.pb.h"

namespace resweep {

// format: table | markdown | csv | json. Error rates print as percentages in
// table/markdown and as fractions in csv/json (the csv header names the unit).
StatusOr<std::string> FormatResults(const v1::GetResultsResponse& results,
                                    const std::string& format);

// format: table | json.
StatusOr<std::string> FormatRuns(const v1::ListRunsResponse& runs, const std::string& format);
// One sweep's line: counts per state, epoch progress and ETA.
std::string FormatSweepLine(const v1::SweepSummary& sweep);
// `running` (may be null) adds a line per leased or running run under the sweep.
// One line per quarantined worker (why, and for how long); "" when none is.
std::string FormatQuarantines(const v1::ListWorkersResponse& workers);

StatusOr<std::string> FormatSweeps(const v1::ListSweepsResponse& sweeps,
                                   const v1::ListRunsResponse* running, const std::string& format);
StatusOr<std::string> FormatWorkers(const v1::ListWorkersResponse& workers,
                                    const std::string& format);
StatusOr<std::string> FormatRun(const v1::GetRunResponse& run, const std::string& format);

// "45 s", "12 min", "3.5 h", "2.1 d".
std::string FormatDuration(double seconds);

}  // namespace resweep
