#include "coordinator/database_filesystem.h"

#include <sys/vfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <spdlog/fmt/fmt.h>

namespace resweep {

StatusOr<int64_t> StatfsFilesystemType(const std::string& path) {
  struct statfs fs;
  if (::statfs(path.c_str(), &fs) != 0) {
    return UnavailableError("statfs " + path + ": " + std::strerror(errno));
  }
  return static_cast<int64_t>(fs.f_type);
}

std::optional<std::string> NetworkFilesystemName(int64_t f_type) {
  // Magic numbers from <linux/magic.h> and the filesystems' own sources; f_type is
  // a signed word on some ABIs, so compare the low 32 bits.
  switch (static_cast<uint32_t>(f_type)) {
    case 0x6969:
      return "NFS";
    case 0x517B:
      return "SMB";
    case 0xFF534D42:
      return "CIFS";
    case 0xFE534D42:
      return "SMB2";
    case 0x0BD00BD0:
      return "Lustre";
    case 0x47504653:
      return "GPFS (IBM Spectrum Scale)";
    case 0x00C36400:
      return "CephFS";
    case 0x19830326:
      return "BeeGFS";
    case 0xAAD7AAEA:
      return "PanFS";
    case 0x20030528:
      return "OrangeFS (PVFS2)";
    case 0x5346414F:
    case 0x6B414653:
      return "AFS";
    case 0x73757245:
      return "Coda";
    case 0x564C:
      return "NCP";
    default:
      return std::nullopt;
  }
}

Status CheckDatabaseOnLocalFilesystem(const std::string& db_path,
                                      const FilesystemTypeLookup& lookup) {
  // The directory decides: the database may not exist yet, and its -wal and -shm
  // files are created next to it.
  std::string directory = std::filesystem::path(db_path).parent_path().string();
  if (directory.empty()) directory = ".";
  auto f_type = lookup(directory);
  if (!f_type.ok()) return Status::Ok();
  const std::optional<std::string> name = NetworkFilesystemName(*f_type);
  if (!name) return Status::Ok();
  return FailedPreconditionError(fmt::format(
      "database {} is on a network filesystem ({}, statfs type {:#x}): SQLite's write-ahead "
      "log needs a local disk (shared memory and POSIX locks do not work over the network) and "
      "the database can be corrupted. Put --db on node-local disk (e.g. /var/lib/resweep, "
      "$SLURM_TMPDIR or /tmp) and back it up from there (docs/deploy.md); "
      "--allow-network-filesystem overrides this check",
      db_path, *name, static_cast<uint32_t>(*f_type)));
}

}  // namespace resweep
