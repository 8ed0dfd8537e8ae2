// Where the coordinator's database may live. SQLite's write-ahead log keeps its
// index in a memory-mapped file (<db>-shm) and relies on POSIX locks being
// coherent; on network and cluster filesystems (NFS, Lustre, GPFS, CIFS, ...)
// neither holds, and the database can be corrupted. The coordinator refuses such a
// database where the kernel tells which filesystem it is on (statfs(2)'s f_type).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/status.h"

namespace resweep {

// The f_type statfs(2) reports for the filesystem holding `path`; the error names
// the path and errno's text. Tests pass a fake lookup instead.
using FilesystemTypeLookup = std::function<StatusOr<int64_t>(const std::string& path)>;
StatusOr<int64_t> StatfsFilesystemType(const std::string& path);

// The name of the network or cluster filesystem `f_type` identifies ("NFS",
// "Lustre", ...), or nullopt for a local one (or one not known to be remote: FUSE
// and 9p mounts can be either and are let through).
std::optional<std::string> NetworkFilesystemName(int64_t f_type);

// FAILED_PRECONDITION, naming the filesystem and the way out, when the directory
// that holds (or will hold) `db_path` is on a network filesystem. A directory the
// lookup cannot stat is not judged here: opening the database reports it.
[[nodiscard]] Status CheckDatabaseOnLocalFilesystem(
    const std::string& db_path, const FilesystemTypeLookup& lookup = StatfsFilesystemType);

}  // namespace resweep
