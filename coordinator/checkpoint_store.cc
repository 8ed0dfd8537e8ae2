#include "coordinator/checkpoint_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/checkpoint_path.h"
#include "common/file_util.h"
#include "common/hash.h"

namespace resweep {

namespace fs = std::filesystem;

namespace {

// Parses "<prefix><int>" at the start of `s`, advancing it; false when absent.
bool TakeNumber(std::string_view* s, std::string_view prefix, int64_t* value) {
  if (s->substr(0, prefix.size()) != prefix) return false;
  s->remove_prefix(prefix.size());
  size_t digits = 0;
  while (digits < s->size() && digits < 18 && (*s)[digits] >= '0' && (*s)[digits] <= '9') ++digits;
  if (digits == 0) return false;
  *value = std::stoll(std::string(s->substr(0, digits)));
  s->remove_prefix(digits);
  return true;
}

// Fills kind/attempt/epoch/iteration of `file` from its name.
void ClassifyName(ArtifactFile* file) {
  std::string_view s = file->name;
  int64_t a = 0, e = 0, i = 0;
  std::string_view rest = s;
  if (TakeNumber(&rest, "epoch-", &e)) {
    if (rest == ".ckpt") {
      *file = {file->run_id,
               file->name,
               ArtifactFile::Kind::kCheckpoint,
               0,
               static_cast<int>(e),
               -1,
               file->bytes,
               file->modified_ms};
      return;
    }
    if (TakeNumber(&rest, "-it-", &i) && rest == ".ckpt") {
      *file = {file->run_id,
               file->name,
               ArtifactFile::Kind::kCheckpoint,
               0,
               static_cast<int>(e),
               i,
               file->bytes,
               file->modified_ms};
      return;
    }
  }
  rest = s;
  if (TakeNumber(&rest, "upload-a", &a) && TakeNumber(&rest, "-e", &e) &&
      TakeNumber(&rest, "-i", &i) && rest == ".part") {
    *file = {file->run_id,        file->name,          ArtifactFile::Kind::kUpload,
             static_cast<int>(a), static_cast<int>(e), i,
             file->bytes,         file->modified_ms};
    return;
  }
  file->kind = ArtifactFile::Kind::kOther;
}

bool Older(int epoch, int64_t iteration, int than_epoch, int64_t than_iteration) {
  return epoch < than_epoch || (epoch == than_epoch && iteration < than_iteration);
}

Status SyncFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return UnavailableError(path + ": " + std::strerror(errno));
  const int rc = fsync(fd);
  const std::string why = rc == 0 ? "" : std::strerror(errno);
  close(fd);
  if (rc != 0) return UnavailableError(path + ": fsync: " + why);
  return Status::Ok();
}

}  // namespace

class CheckpointStore::Busy {
 public:
  Busy(CheckpointStore* store, std::string key) : store_(store), key_(std::move(key)) {
    MutexLock lock(&store_->mutex_);
    held_ = store_->busy_.insert(key_).second;
  }
  ~Busy() {
    if (!held_) return;
    MutexLock lock(&store_->mutex_);
    store_->busy_.erase(key_);
  }
  // UNAVAILABLE when another call holds the upload.
  Status status() const {
    return held_ ? Status::Ok()
                 : UnavailableError("another call is writing this checkpoint upload; try again");
  }

 private:
  CheckpointStore* store_;
  std::string key_;
  bool held_ = false;
};

CheckpointStore::CheckpointStore(std::string dir) : dir_(std::move(dir)) {}

std::string CheckpointStore::RunDir(const std::string& run_id) const { return dir_ + "/" + run_id; }

std::string CheckpointStore::UploadPath(const CheckpointId& id) const {
  return RunDir(id.run_id) + "/upload-a" + std::to_string(id.attempt) + "-e" +
         std::to_string(id.epoch) + "-i" + std::to_string(id.iteration) + ".part";
}

std::string CheckpointStore::CheckpointPath(const std::string& run_id, int epoch,
                                            int64_t iteration) const {
  return RunDir(run_id) + "/epoch-" + std::to_string(epoch) + "-it-" + std::to_string(iteration) +
         ".ckpt";
}

std::string CheckpointStore::FindCheckpoint(const std::string& run_id, int epoch,
                                            int64_t iteration) const {
  std::error_code ec;
  const std::string path = CheckpointPath(run_id, epoch, iteration);
  if (fs::is_regular_file(path, ec)) return path;
  const std::string legacy = RunDir(run_id) + "/epoch-" + std::to_string(epoch) + ".ckpt";
  if (fs::is_regular_file(legacy, ec)) return legacy;
  return "";
}

StatusOr<int64_t> CheckpointStore::Append(const CheckpointId& id, int64_t offset,
                                          const std::string& data) {
  if (!IsValidRunId(id.run_id)) return InvalidArgumentError("bad run id");
  const std::string part = UploadPath(id);
  Busy busy(this, part);
  RESWEEP_RETURN_IF_ERROR(busy.status());
  std::error_code ec;
  if (!fs::is_directory(RunDir(id.run_id), ec)) {
    fs::create_directories(RunDir(id.run_id), ec);
    if (ec) return UnavailableError(RunDir(id.run_id) + ": " + ec.message());
    RESWEEP_RETURN_IF_ERROR(SyncDirectory(dir_));
  }
  if (offset == 0) {
    // A new upload: the run's earlier ones (this attempt's or a lost one's) are dead.
    for (const auto& entry : fs::directory_iterator(RunDir(id.run_id), ec)) {
      ArtifactFile f;
      f.run_id = id.run_id;
      f.name = entry.path().filename().string();
      ClassifyName(&f);
      if (f.kind == ArtifactFile::Kind::kUpload && f.attempt <= id.attempt &&
          entry.path() != part) {
        fs::remove(entry.path(), ec);
      }
    }
  }
  const int64_t size = fs::exists(part, ec) ? static_cast<int64_t>(fs::file_size(part, ec)) : 0;
  if (offset < 0 || offset > size) {
    return FailedPreconditionError("checkpoint chunk at offset " + std::to_string(offset) +
                                   " but " + std::to_string(size) + " bytes received");
  }
  if (offset < size) fs::resize_file(part, static_cast<uintmax_t>(offset), ec);
  std::ofstream out(part, std::ios::binary | std::ios::app);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.flush();
  if (!out) return UnavailableError(part + ": write failed (disk full?)");
  return offset + static_cast<int64_t>(data.size());
}

bool CheckpointStore::Promoted(const CheckpointId& id, int64_t size) {
  if (!IsValidRunId(id.run_id)) return false;
  std::error_code ec;
  const std::string path = CheckpointPath(id.run_id, id.epoch, id.iteration);
  return !fs::exists(UploadPath(id), ec) && fs::is_regular_file(path, ec) &&
         static_cast<int64_t>(fs::file_size(path, ec)) == size;
}

Status CheckpointStore::Promote(const CheckpointId& id, const std::string& sha256) {
  if (!IsValidRunId(id.run_id)) return InvalidArgumentError("bad run id");
  const std::string part = UploadPath(id);
  Busy busy(this, part);
  RESWEEP_RETURN_IF_ERROR(busy.status());
  const std::string final_path = CheckpointPath(id.run_id, id.epoch, id.iteration);
  const std::string what = "checkpoint of run " + id.run_id + " epoch " + std::to_string(id.epoch) +
                           " (iteration " + std::to_string(id.iteration) + ")";
  auto bytes = ReadWholeFile(part);
  if (!bytes.ok()) {
    // Promoted by an earlier call whose commit did not finish: check that file.
    auto promoted = ReadWholeFile(final_path);
    if (promoted.ok() && Sha256Hex(*promoted) == sha256) return Status::Ok();
    return FailedPreconditionError("no upload of this checkpoint in progress");
  }
  if (Sha256Hex(*bytes) != sha256) {
    std::error_code ec;
    fs::remove(part, ec);
    return DataLossError(what + ": checksum mismatch; upload discarded");
  }
  RESWEEP_RETURN_IF_ERROR(SyncFile(part));
  if (std::rename(part.c_str(), final_path.c_str()) != 0) {
    return UnavailableError(final_path + ": " + std::strerror(errno));
  }
  return SyncDirectory(RunDir(id.run_id));
}

Status CheckpointStore::Read(const std::string& run_id, int epoch, int64_t iteration,
                             int64_t offset, int max_bytes, std::string* data,
                             int64_t* total_size) {
  if (!IsValidRunId(run_id)) return InvalidArgumentError("bad run id");
  const std::string path = FindCheckpoint(run_id, epoch, iteration);
  std::ifstream in(path, std::ios::binary);
  if (path.empty() || !in) {
    return NotFoundError("no checkpoint of run " + run_id + " at epoch " + std::to_string(epoch) +
                         " (iteration " + std::to_string(iteration) + ")");
  }
  in.seekg(0, std::ios::end);
  *total_size = static_cast<int64_t>(in.tellg());
  if (offset < 0 || offset > *total_size) return InvalidArgumentError("offset past the end");
  in.seekg(offset);
  data->resize(static_cast<size_t>(std::min<int64_t>(max_bytes, *total_size - offset)));
  in.read(data->data(), static_cast<std::streamsize>(data->size()));
  // DATA_LOSS, not UNAVAILABLE: workers retry UNAVAILABLE forever, and a file that
  // cannot be read is a checkpoint that cannot be used (the run falls back).
  if (!in) return DataLossError(path + ": read failed");
  return Status::Ok();
}

bool CheckpointStore::Exists(const std::string& run_id, int epoch, int64_t iteration) {
  return IsValidRunId(run_id) && !FindCheckpoint(run_id, epoch, iteration).empty();
}

std::optional<std::pair<int, int64_t>> CheckpointStore::NewestBefore(const std::string& run_id,
                                                                     int epoch, int64_t iteration) {
  if (!IsValidRunId(run_id)) return std::nullopt;
  std::optional<std::pair<int, int64_t>> newest;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(RunDir(run_id), ec)) {
    ArtifactFile f;
    f.run_id = run_id;
    f.name = entry.path().filename().string();
    ClassifyName(&f);
    // Epoch-only names of an older coordinator are taken as "start of that epoch".
    const int64_t it = std::max<int64_t>(f.iteration, 0);
    if (f.kind != ArtifactFile::Kind::kCheckpoint || f.epoch < 1 ||
        !Older(f.epoch, it, epoch, iteration)) {
      continue;
    }
    if (!newest || Older(newest->first, newest->second, f.epoch, it)) newest = {f.epoch, it};
  }
  return newest;
}

void CheckpointStore::RemoveOlder(const std::string& run_id, int epoch, int64_t iteration) {
  if (!IsValidRunId(run_id)) return;
  std::error_code ec;
  bool removed = false;
  for (const auto& entry : fs::directory_iterator(RunDir(run_id), ec)) {
    ArtifactFile f;
    f.run_id = run_id;
    f.name = entry.path().filename().string();
    ClassifyName(&f);
    if (f.kind != ArtifactFile::Kind::kCheckpoint) continue;
    // An epoch-only name of epoch E is superseded by any recorded (E, I).
    const bool older =
        f.iteration < 0 ? f.epoch <= epoch : Older(f.epoch, f.iteration, epoch, iteration);
    if (older) removed |= fs::remove(entry.path(), ec);
  }
  if (removed) (void)SyncDirectory(RunDir(run_id));
}

void CheckpointStore::RemoveRun(const std::string& run_id) {
  if (!IsValidRunId(run_id)) return;
  std::error_code ec;
  fs::remove_all(RunDir(run_id), ec);
}

std::vector<ArtifactFile> CheckpointStore::List() {
  std::vector<ArtifactFile> files;
  std::error_code ec;
  for (const auto& run_dir : fs::directory_iterator(dir_, ec)) {
    const std::string run_id = run_dir.path().filename().string();
    if (!IsValidRunId(run_id) || !run_dir.is_directory(ec)) continue;
    std::error_code inner;
    for (const auto& entry : fs::directory_iterator(run_dir.path(), inner)) {
      struct stat st;
      if (::lstat(entry.path().c_str(), &st) != 0) continue;
      ArtifactFile f;
      f.run_id = run_id;
      f.name = entry.path().filename().string();
      f.bytes = static_cast<int64_t>(st.st_size);
      f.modified_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
      ClassifyName(&f);
      if (!S_ISREG(st.st_mode)) f.kind = ArtifactFile::Kind::kOther;
      files.push_back(std::move(f));
    }
  }
  return files;
}

void CheckpointStore::Remove(const ArtifactFile& file) {
  if (!IsValidRunId(file.run_id) || file.name.empty() || file.name == "." || file.name == ".." ||
      file.name.find('/') != std::string::npos) {
    return;
  }
  std::error_code ec;
  fs::remove_all(RunDir(file.run_id) + "/" + file.name, ec);
  if (ec) spdlog::warn("artifact sweep-up: {}/{}: {}", file.run_id, file.name, ec.message());
  fs::remove(RunDir(file.run_id), ec);  // only if now empty
}

}  // namespace resweep
