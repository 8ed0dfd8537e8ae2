// Removes a directory tree with POSIX calls (nftw), not std::filesystem::remove_all:
// built against the pip LibTorch on Ubuntu 24.04 (g++ 13), remove_all jumped to a null
// address in trainer_check (H200 GPU check, 2026-11-27), so the worker and the test
// helpers that run there do without it.
#pragma once

#include <string>

#include "common/status.h"

namespace resweep {

// Removes `path` and everything under it, not following symbolic links. A path that
// does not exist is OK; the first entry that cannot be removed is the error.
Status RemoveTree(const std::string& path);

}  // namespace resweep
