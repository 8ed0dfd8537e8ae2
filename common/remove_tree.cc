#include "common/remove_tree.h"

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace resweep {

namespace {

// nftw has no user pointer: the first failure is kept per thread.
thread_local int first_errno = 0;
thread_local char first_path[512];

int RemoveEntry(const char* path, const struct stat*, int type, struct FTW*) {
  const int rc = (type == FTW_DP || type == FTW_D) ? rmdir(path) : unlink(path);
  if (rc != 0 && errno != ENOENT && first_errno == 0) {
    first_errno = errno;
    std::snprintf(first_path, sizeof first_path, "%s", path);
  }
  return 0;  // go on: remove what can be removed
}

}  // namespace

Status RemoveTree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return InternalError("remove " + path + ": " + std::strerror(errno));
  }
  first_errno = 0;
  if (nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS) != 0 && first_errno == 0) {
    first_errno = errno;
    std::snprintf(first_path, sizeof first_path, "%s", path.c_str());
  }
  if (first_errno != 0) {
    return InternalError(std::string("remove ") + first_path + ": " + std::strerror(first_errno));
  }
  return Status::Ok();
}

}  // namespace resweep
