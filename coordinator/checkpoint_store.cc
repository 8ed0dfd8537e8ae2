#include "coordinator/checkpoint_store.h"

#include <filesystem>
#include <fstream>

#include "common/checkpoint_path.h"
#include "common/file_util.h"
#include "common/hash.h"

namespace resweep {

namespace fs = std::filesystem;

CheckpointStore::CheckpointStore(std::string dir) : dir_(std::move(dir)) {}

std::string CheckpointStore::RunDir(const std::string& run_id) const { return dir_ + "/" + run_id; }

StatusOr<int64_t> CheckpointStore::Append(const std::string& run_id, int attempt, int epoch,
                                          int64_t offset, const std::string& data) {
  if (!IsValidRunId(run_id)) return InvalidArgumentError("bad run id");
  std::error_code ec;
  fs::create_directories(RunDir(run_id), ec);
  if (ec) return UnavailableError(RunDir(run_id) + ": " + ec.message());
  const std::string part = RunDir(run_id) + "/upload-a" + std::to_string(attempt) + "-e" +
                           std::to_string(epoch) + ".part";
  const int64_t size = fs::exists(part) ? static_cast<int64_t>(fs::file_size(part)) : 0;
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

Status CheckpointStore::Commit(const std::string& run_id, int attempt, int epoch,
                               const std::string& sha256) {
  if (!IsValidRunId(run_id)) return InvalidArgumentError("bad run id");
  const std::string part = RunDir(run_id) + "/upload-a" + std::to_string(attempt) + "-e" +
                           std::to_string(epoch) + ".part";
  auto bytes = ReadWholeFile(part);
  if (!bytes.ok()) return FailedPreconditionError("no upload of this checkpoint in progress");
  if (Sha256Hex(*bytes) != sha256) {
    std::error_code ec;
    fs::remove(part, ec);
    return DataLossError("checkpoint of run " + run_id + " epoch " + std::to_string(epoch) +
                         ": checksum mismatch; upload discarded");
  }
  const std::string final_path = RunDir(run_id) + "/epoch-" + std::to_string(epoch) + ".ckpt";
  RESWEEP_RETURN_IF_ERROR(WriteFileAtomic(final_path, *bytes));
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(RunDir(run_id), ec)) {
    if (entry.path() != final_path) fs::remove(entry.path(), ec);
  }
  return Status::Ok();
}

Status CheckpointStore::Read(const std::string& run_id, int epoch, int64_t offset, int max_bytes,
                             std::string* data, int64_t* total_size) {
  if (!IsValidRunId(run_id)) return InvalidArgumentError("bad run id");
  const std::string path = RunDir(run_id) + "/epoch-" + std::to_string(epoch) + ".ckpt";
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return NotFoundError("no checkpoint of run " + run_id + " at epoch " + std::to_string(epoch));
  in.seekg(0, std::ios::end);
  *total_size = static_cast<int64_t>(in.tellg());
  if (offset < 0 || offset > *total_size) return InvalidArgumentError("offset past the end");
  in.seekg(offset);
  data->resize(static_cast<size_t>(std::min<int64_t>(max_bytes, *total_size - offset)));
  in.read(data->data(), static_cast<std::streamsize>(data->size()));
  return Status::Ok();
}

void CheckpointStore::RemoveRun(const std::string& run_id) {
  if (!IsValidRunId(run_id)) return;
  std::error_code ec;
  fs::remove_all(RunDir(run_id), ec);
}

}  // namespace resweep
