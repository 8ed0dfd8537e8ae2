#include "worker/dataset.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cstdio>
#include <vector>

#include "worker/trainer_log.h"

namespace resweep {

namespace {

constexpr int64_t kCifarRecord = 1 + 3 * 32 * 32;
constexpr int64_t kCifarOfficialRecords = 10000;

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Status CheckLabels(const torch::Tensor& labels, int64_t classes, const std::string& path) {
  if (labels.numel() == 0) return Status::Ok();
  const int64_t max = labels.max().item<int64_t>();
  const int64_t min = labels.min().item<int64_t>();
  if (min < 0 || max >= classes) {
    // Find the first offending record to name it.
    auto bad = torch::nonzero((labels < 0).logical_or(labels >= classes)).flatten();
    const int64_t record = bad[0].item<int64_t>();
    return InvalidArgumentError(path + ": record " + std::to_string(record) + " has label " +
                                std::to_string(labels[record].item<int64_t>()) + ", outside 0.." +
                                std::to_string(classes - 1));
  }
  return Status::Ok();
}

}  // namespace

Status ReadCifar10Batch(const std::string& path, torch::Tensor* images, torch::Tensor* labels) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return NotFoundError(path + ": cannot open (CIFAR-10 binary batch expected)");
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  if (size <= 0 || size % kCifarRecord != 0) {
    std::fclose(f);
    return InvalidArgumentError(path + ": size " + std::to_string(size) +
                                " bytes is not a whole number of 3073-byte CIFAR-10 records "
                                "(truncated or not a CIFAR-10 binary batch?)");
  }
  const int64_t n = size / kCifarRecord;
  if (n != kCifarOfficialRecords) {
    TrainerLogf(TrainerLogLevel::kDebug, path, ": ", n, " records (official batches hold ",
                kCifarOfficialRecords, ")");
  }
  std::vector<uint8_t> raw(static_cast<size_t>(size));
  const size_t got = std::fread(raw.data(), 1, raw.size(), f);
  std::fclose(f);
  if (got != raw.size()) return DataLossError(path + ": short read");
  auto all = torch::from_blob(raw.data(), {n, kCifarRecord}, torch::kUInt8);
  *labels = all.select(1, 0).to(torch::kInt64).clone();
  *images = all.narrow(1, 1, kCifarRecord - 1).reshape({n, 3, 32, 32}).clone();
  return CheckLabels(*labels, 10, path);
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
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return NotFoundError(path + ": cannot open");
  std::vector<uint8_t> data;
  uint8_t buf[1 << 16];
  const size_t kMaxBytes = size_t{1} << 31;  // far above any IDX data set we read
  while (true) {
    const int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int code = 0;
      std::string message = gzerror(f, &code);
      gzclose(f);
      return InvalidArgumentError(path + ": corrupt gzip data (" + message + ")");
    }
    if (n == 0) break;
    data.insert(data.end(), buf, buf + n);
    if (data.size() > kMaxBytes) {
      gzclose(f);
      return InvalidArgumentError(path + ": decompresses to more than 2 GiB");
    }
  }
  const int close_rc = gzclose(f);
  if (close_rc != Z_OK) {
    return InvalidArgumentError(path + ": corrupt or truncated gzip stream");
  }
  auto be32 = [&](size_t at) {
    return (uint32_t{data[at]} << 24) | (uint32_t{data[at + 1]} << 16) |
           (uint32_t{data[at + 2]} << 8) | uint32_t{data[at + 3]};
  };
  if (data.size() < 8) return InvalidArgumentError(path + ": too short for an IDX header");
  const uint32_t magic = be32(0);
  if ((magic >> 8) != 0x08 || ((magic & 0xff) != 1 && (magic & 0xff) != 3)) {
    char hex[16];
    std::snprintf(hex, sizeof(hex), "0x%08x", magic);
    return InvalidArgumentError(path + ": bad IDX magic " + hex +
                                " (expected 0x00000801 labels or 0x00000803 images)");
  }
  const int dims = static_cast<int>(magic & 0xff);
  if (data.size() < 4 + 4 * static_cast<size_t>(dims)) {
    return InvalidArgumentError(path + ": truncated IDX header");
  }
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (int i = 0; i < dims; ++i) {
    shape.push_back(be32(4 + 4 * i));
    count *= shape.back();
  }
  const size_t header = 4 + 4 * static_cast<size_t>(dims);
  if (data.size() - header != static_cast<size_t>(count)) {
    return InvalidArgumentError(path + ": header promises " + std::to_string(count) +
                                " bytes of data, file has " + std::to_string(data.size() - header));
  }
  return torch::from_blob(data.data() + header, shape, torch::kUInt8).clone();
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
  RESWEEP_RETURN_IF_ERROR(CheckLabels(d.train_labels, 10, dir + "/train-labels-idx1-ubyte.gz"));
  RESWEEP_RETURN_IF_ERROR(CheckLabels(d.test_labels, 10, dir + "/t10k-labels-idx1-ubyte.gz"));
  return d;
}

std::string ResolveDatasetPath(const DatasetConfig& config, const std::string& data_root) {
  const std::string root = data_root.empty() ? "." : data_root;
  if (!config.path.empty()) {
    return config.path[0] == '/' ? config.path : root + "/" + config.path;
  }
  if (config.kind == "cifar10") return root + "/cifar-10-batches-bin";
  const std::string local = root + "/fashion-mnist";
  return IsDirectory(local) ? local : "/usr/share/datasets/fashion-mnist";
}

StatusOr<std::shared_ptr<const Dataset>> DatasetCache::Get(const DatasetConfig& config) {
  const std::string path = ResolveDatasetPath(config, data_root_);
  const std::string key = config.kind + ":" + path;
  // Loading holds the lock: two slots asking for one data set load it once.
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = loaded_.find(key);
  if (it != loaded_.end()) return it->second;
  TrainerLogf(TrainerLogLevel::kInfo, "loading ", config.kind, " from ", path);
  StatusOr<Dataset> d = config.kind == "cifar10" ? LoadCifar10(path) : LoadFashionMnist(path);
  if (!d.ok()) return d.status();
  auto shared = std::make_shared<const Dataset>(std::move(*d));
  TrainerLogf(TrainerLogLevel::kInfo, "loaded ", config.kind, ": ", shared->train_images.size(0),
              " train / ", shared->test_images.size(0), " test images of ", shared->channels(), "x",
              shared->height(), "x", shared->width());
  loaded_[key] = shared;
  return shared;
}

}  // namespace resweep
