// Durable files: atomic replacement and checksummed envelopes.
#pragma once

#include <string>

#include "common/status.h"

namespace resweep {

// Writes `data` to `path` atomically: a temporary file in the same directory is
// written, fsync'ed and renamed over `path`, and the directory is fsync'ed, so
// readers see the old or the new content, never a torn one, and after a crash the
// rename has either happened or not.
Status WriteFileAtomic(const std::string& path, const std::string& data);
// fsync(2) of a directory: makes the renames, creations and removals of entries in
// it durable.
Status SyncDirectory(const std::string& dir);
StatusOr<std::string> ReadWholeFile(const std::string& path);
// Reads a file that a flag or variable (`source`, e.g. "--tls-ca") names, such as a
// key or token file: INVALID_ARGUMENT naming both when it cannot be read or is empty.
StatusOr<std::string> ReadNamedFile(const std::string& path, const std::string& source);

// A checkpoint envelope: magic, payload length, SHA-256 of the payload, payload.
// OpenEnvelope verifies all three and names what is wrong.
std::string SealEnvelope(const std::string& payload);
StatusOr<std::string> OpenEnvelope(const std::string& sealed);

}  // namespace resweep
