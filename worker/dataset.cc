#include "worker/dataset.h"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "worker/data_format.h"
#include "worker/trainer_log.h"

namespace resweep {

namespace {

constexpr int64_t kCifarOfficialRecords = 10000;

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The whole file, or NOT_FOUND naming it and what was expected there.
StatusOr<std::string> ReadFileBytes(const std::string& path, const char* expected) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return NotFoundError(path + ": cannot open (" + expected + " expected)");
  std::string bytes;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.append(buf, n);
  const bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) return DataLossError(path + ": read error");
  return bytes;
}

torch::Tensor ToTensor(ByteArray array) {
  auto owner = std::make_shared<std::vector<uint8_t>>(std::move(array.data));
  return torch::from_blob(
      owner->data(), array.shape, [owner](void*) {}, torch::kUInt8);
}

}  // namespace

Status ReadCifar10Batch(const std::string& path, torch::Tensor* images, torch::Tensor* labels) {
  auto bytes = ReadFileBytes(path, "CIFAR-10 binary batch");
  if (!bytes.ok()) return bytes.status();
  auto batch = ParseCifar10Batch(*bytes, path);
  if (!batch.ok()) return batch.status();
  const int64_t n = static_cast<int64_t>(batch->labels.size());
  if (n != kCifarOfficialRecords) {
    TrainerLogf(TrainerLogLevel::kDebug, path, ": ", n, " records (official batches hold ",
                kCifarOfficialRecords, ")");
  }
  *labels = torch::tensor(std::vector<int64_t>(batch->labels.begin(), batch->labels.end()),
                          torch::kInt64);
  *images = ToTensor(std::move(batch->images));
  return Status::Ok();
}

StatusOr<Dataset> LoadCifar10(const std::string& dir) {
  if (!IsDirectory(dir)) {
    return NotFoundError(dir +
                         ": no such directory (expected the CIFAR-10 binary version: "
                         "data_batch_1.bin .. data_batch_5.bin, test_batch.bin)");
  }
  std::vector<torch::Tensor> train_images, train_labels;
  for (int i = 1; i <= 5; ++i) {
    torch::Tensor images, labels;
    RESWEEP_RETURN_IF_ERROR(
        ReadCifar10Batch(dir + "/data_batch_" + std::to_string(i) + ".bin", &images, &labels));
    train_images.push_back(images);
    train_labels.push_back(labels);
  }
  Dataset d;
  d.name = "cifar10";
  d.train_images = torch::cat(train_images);
  d.train_labels = torch::cat(train_labels);
  RESWEEP_RETURN_IF_ERROR(
      ReadCifar10Batch(dir + "/test_batch.bin", &d.test_images, &d.test_labels));
  return d;
}

StatusOr<torch::Tensor> ReadIdxGz(const std::string& path) {
  auto gz = ReadFileBytes(path, "gzipped IDX file");
  if (!gz.ok()) return gz.status();
  auto raw = Gunzip(*gz, path);
  if (!raw.ok()) return raw.status();
  auto array = ParseIdx(*raw, path);
  if (!array.ok()) return array.status();
  return ToTensor(std::move(*array));
}

StatusOr<Dataset> LoadFashionMnist(const std::string& dir) {
  if (!IsDirectory(dir)) {
    return NotFoundError(dir +
                         ": no such directory (expected Fashion-MNIST gzipped IDX files; "
                         "apt-get install dataset-fashion-mnist)");
  }
  auto load = [&](const char* name) { return ReadIdxGz(dir + "/" + name); };
  auto train_images = load("train-images-idx3-ubyte.gz");
  if (!train_images.ok()) return train_images.status();
  auto train_labels = load("train-labels-idx1-ubyte.gz");
  if (!train_labels.ok()) return train_labels.status();
  auto test_images = load("t10k-images-idx3-ubyte.gz");
  if (!test_images.ok()) return test_images.status();
  auto test_labels = load("t10k-labels-idx1-ubyte.gz");
  if (!test_labels.ok()) return test_labels.status();
  auto check = [&](const torch::Tensor& images, const torch::Tensor& labels,
                   const char* what) -> Status {
    if (images.dim() != 3) {
      return InvalidArgumentError(dir + ": " + what + " images are not a 3-d IDX array");
    }
    if (labels.dim() != 1) {
      return InvalidArgumentError(dir + ": " + what + " labels are not a 1-d IDX array");
    }
    if (images.size(0) != labels.size(0)) {
      return InvalidArgumentError(dir + ": " + what + " has " + std::to_string(images.size(0)) +
                                  " images but " + std::to_string(labels.size(0)) + " labels");
    }
    return Status::Ok();
  };
  RESWEEP_RETURN_IF_ERROR(check(*train_images, *train_labels, "train"));
  RESWEEP_RETURN_IF_ERROR(check(*test_images, *test_labels, "test"));
  Dataset d;
  d.name = "fashion-mnist";
  d.train_images = train_images->unsqueeze(1);
  d.test_images = test_images->unsqueeze(1);
  d.train_labels = train_labels->to(torch::kInt64);
  d.test_labels = test_labels->to(torch::kInt64);
  auto check_labels = [](const torch::Tensor& labels, const std::string& path) {
    auto bytes = labels.to(torch::kUInt8).contiguous();
    return CheckLabelRange(
        std::vector<uint8_t>(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel()),
        10, path);
  };
  RESWEEP_RETURN_IF_ERROR(check_labels(*train_labels, dir + "/train-labels-idx1-ubyte.gz"));
  RESWEEP_RETURN_IF_ERROR(check_labels(*test_labels, dir + "/t10k-labels-idx1-ubyte.gz"));
  return d;
}

namespace {

// `path` without "." and ".." parts and without a trailing separator.
std::filesystem::path Tidy(const std::filesystem::path& path) {
  std::filesystem::path tidy = path.lexically_normal();
  if (!tidy.has_filename() && tidy.has_parent_path() && tidy != tidy.root_path()) {
    tidy = tidy.parent_path();
  }
  return tidy;
}

bool IsUnder(const std::filesystem::path& path, const std::filesystem::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator of the root
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

int64_t DatasetBytes(const Dataset& d) {
  return static_cast<int64_t>(d.train_images.nbytes() + d.train_labels.nbytes() +
                              d.test_images.nbytes() + d.test_labels.nbytes());
}

}  // namespace

StatusOr<std::string> ResolveDatasetPath(const DatasetConfig& config, const std::string& data_root,
                                         bool allow_absolute_paths) {
  namespace fs = std::filesystem;
  const std::string root_text = data_root.empty() ? "." : data_root;
  std::error_code ec;
  if (config.path.empty() && config.kind != "cifar10" &&
      !IsDirectory(root_text + "/fashion-mnist")) {
    // Debian's dataset-fashion-mnist, a built-in default rather than a submitted path.
    fs::path debian = fs::weakly_canonical("/usr/share/datasets/fashion-mnist", ec);
    return ec ? std::string("/usr/share/datasets/fashion-mnist") : debian.string();
  }
  const std::string relative =
      !config.path.empty() ? config.path
                           : (config.kind == "cifar10" ? "cifar-10-batches-bin" : "fashion-mnist");
  if (relative[0] == '/') {
    if (!allow_absolute_paths) {
      return InvalidArgumentError("dataset.path " + relative +
                                  " is absolute; this worker reads data only under --data-root " +
                                  root_text +
                                  " (give a path relative to it, or start the worker with "
                                  "--allow-absolute-data-paths)");
    }
    fs::path resolved = fs::weakly_canonical(relative, ec);
    if (ec) return NotFoundError("dataset.path " + relative + ": " + ec.message());
    return Tidy(resolved).string();
  }
  const fs::path absolute_root = Tidy(fs::absolute(root_text, ec));
  if (ec) return NotFoundError("--data-root " + root_text + ": " + ec.message());
  const fs::path lexical = Tidy(absolute_root / relative);
  const fs::path root = fs::weakly_canonical(absolute_root, ec);
  if (ec) return NotFoundError("--data-root " + root_text + ": " + ec.message());
  const fs::path tidy_root = Tidy(root);
  // Refused the same way whether the target exists or not: `..` that climbs out is
  // caught before anything is looked up, a link that leads out once resolved.
  const std::string leaves = "dataset.path " + relative + " leaves --data-root " + root_text +
                             " (relative paths must stay under it)";
  if (!IsUnder(lexical, absolute_root)) return InvalidArgumentError(leaves);
  const fs::path resolved = Tidy(fs::weakly_canonical(lexical, ec));
  if (ec) return NotFoundError("dataset.path " + relative + ": " + ec.message());
  if (!IsUnder(resolved, tidy_root)) return InvalidArgumentError(leaves);
  return resolved.string();
}

StatusOr<std::shared_ptr<const Dataset>> DatasetCache::Get(const DatasetConfig& config) {
  auto path = ResolveDatasetPath(config, options_.data_root, options_.allow_absolute_paths);
  if (!path.ok()) return path.status();
  const std::string key = config.kind + ":" + *path;
  MutexLock lock(&mutex_);
  auto it = loaded_.find(key);
  if (it != loaded_.end()) {
    it->second.last_used = ++use_counter_;
    return it->second.dataset;
  }
  TrainerLogf(TrainerLogLevel::kInfo, "loading ", config.kind, " from ", *path);
  StatusOr<Dataset> d = config.kind == "cifar10" ? LoadCifar10(*path) : LoadFashionMnist(*path);
  ++loads_;
  if (!d.ok()) return d.status();
  auto shared = std::make_shared<const Dataset>(std::move(*d));
  const int64_t bytes = DatasetBytes(*shared);
  TrainerLogf(TrainerLogLevel::kInfo, "loaded ", config.kind, ": ", shared->train_images.size(0),
              " train / ", shared->test_images.size(0), " test images of ", shared->channels(), "x",
              shared->height(), "x", shared->width(), " (", bytes >> 20, " MiB)");
  if (bytes > options_.max_bytes) {
    TrainerLogf(TrainerLogLevel::kWarn, config.kind, " at ", *path, " takes ", bytes >> 20,
                " MiB, more than the data set cache holds (", options_.max_bytes >> 20,
                " MiB): it is not kept for later runs");
    return shared;
  }
  while (cached_bytes_ + bytes > options_.max_bytes && !loaded_.empty()) {
    auto oldest = loaded_.begin();
    for (auto e = loaded_.begin(); e != loaded_.end(); ++e) {
      if (e->second.last_used < oldest->second.last_used) oldest = e;
    }
    TrainerLogf(TrainerLogLevel::kInfo, "data set cache full: dropping ", oldest->first);
    cached_bytes_ -= oldest->second.bytes;
    loaded_.erase(oldest);
  }
  loaded_[key] = Entry{shared, bytes, ++use_counter_};
  cached_bytes_ += bytes;
  return shared;
}

int64_t DatasetCache::loads() const {
  MutexLock lock(&mutex_);
  return loads_;
}

int64_t DatasetCache::cached_bytes() const {
  MutexLock lock(&mutex_);
  return cached_bytes_;
}

}  // namespace resweep
