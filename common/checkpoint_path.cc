#include "common/checkpoint_path.h"

namespace resweep {

bool IsValidRunId(const std::string& run_id) {
  if (run_id.empty() || run_id.size() > 64) return false;
  for (char c : run_id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Status CheckSharedCheckpointPath(const std::string& run_id, const std::string& relative) {
  if (!IsValidRunId(run_id)) {
    return InvalidArgumentError("run id '" + run_id.substr(0, 80) +
                                "' is not a run id (lowercase hex)");
  }
  const std::string prefix = run_id + "/";
  const std::string file =
      relative.rfind(prefix, 0) == 0 ? relative.substr(prefix.size()) : std::string();
  if (file.empty() || file.size() > 255 || file == "." || file == ".." ||
      file.find('/') != std::string::npos || file.find('\0') != std::string::npos) {
    return InvalidArgumentError("shared checkpoint path '" + relative.substr(0, 300) +
                                "' must be '" + run_id +
                                "/<file>': inside the run's own directory of the checkpoint "
                                "directory");
  }
  return Status::Ok();
}

}  // namespace resweep
