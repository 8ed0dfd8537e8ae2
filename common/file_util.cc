#include "common/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/hash.h"

namespace resweep {

namespace {
constexpr char kMagic[8] = {'R', 'S', 'W', 'C', 'K', 'P', 'T', '1'};
constexpr size_t kHeader = 8 + 8 + 64;
}  // namespace

Status WriteFileAtomic(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return UnavailableError(tmp + ": " + std::strerror(errno));
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      close(fd);
      unlink(tmp.c_str());
      return UnavailableError(tmp + ": " + why);
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    const std::string why = std::strerror(errno);
    unlink(tmp.c_str());
    return UnavailableError(tmp + ": " + why);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    unlink(tmp.c_str());
    return UnavailableError(path + ": " + why);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return SyncDirectory(dir.empty() ? "." : dir);
}

Status SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return UnavailableError(dir + ": " + std::strerror(errno));
  const int rc = fsync(fd);
  const std::string why = rc == 0 ? "" : std::strerror(errno);
  close(fd);
  if (rc != 0) return UnavailableError(dir + ": fsync: " + why);
  return Status::Ok();
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(path + ": cannot open");
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

StatusOr<std::string> ReadNamedFile(const std::string& path, const std::string& source) {
  auto content = ReadWholeFile(path);
  if (!content.ok()) {
    return InvalidArgumentError(source + ": cannot read " + path + ": " +
                                content.status().message());
  }
  if (content->empty()) return InvalidArgumentError(source + ": " + path + " is empty");
  return content;
}

std::string SealEnvelope(const std::string& payload) {
  std::string out(kMagic, sizeof(kMagic));
  uint64_t n = payload.size();
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += Sha256Hex(payload);
  out += payload;
  return out;
}

StatusOr<std::string> OpenEnvelope(const std::string& sealed) {
  if (sealed.size() < kHeader || std::memcmp(sealed.data(), kMagic, sizeof(kMagic)) != 0) {
    return DataLossError("not a resweep checkpoint (bad magic or too short)");
  }
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n = (n << 8) | static_cast<unsigned char>(sealed[8 + i]);
  if (sealed.size() - kHeader != n) {
    return DataLossError("checkpoint truncated: header says " + std::to_string(n) + " bytes, has " +
                         std::to_string(sealed.size() - kHeader));
  }
  std::string payload = sealed.substr(kHeader);
  if (Sha256Hex(payload) != sealed.substr(16, 64)) {
    return DataLossError("checkpoint checksum mismatch");
  }
  return payload;
}

}  // namespace resweep
