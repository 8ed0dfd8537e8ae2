// Names of checkpoints on a filesystem shared by workers: the one rule the
// coordinator (recording a path) and the workers (writing, reading and removing
// files under --checkpoint-dir) both apply, so that no run id or recorded path can
// reach outside the run's own directory.
#pragma once

#include <string>

#include "common/status.h"

namespace resweep {

// Run ids are lowercase hex, 1..64 characters: safe as a directory name.
bool IsValidRunId(const std::string& run_id);

// OK when `relative` is "<run_id>/<file>" with `file` one plain name (no '/', not
// "." or "..", no NUL, at most 255 bytes); INVALID_ARGUMENT saying why otherwise.
Status CheckSharedCheckpointPath(const std::string& run_id, const std::string& relative);

}  // namespace resweep
