// Image classification data sets in their official file formats.
//
// CIFAR-10 binary: data_batch_1.bin .. data_batch_5.bin and test_batch.bin, records
// of 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major). The
// official files hold 10,000 records each; smaller files of whole records are
// accepted (for tests and subsets), anything else is an error naming the file.
//
// Fashion-MNIST: gzipped IDX files (train-images-idx3-ubyte.gz, ...), as installed
// by Debian's dataset-fashion-mnist under /usr/share/datasets/fashion-mnist.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <torch/torch.h>

#include "common/mutex.h"
#include "common/run_config.h"
#include "common/status.h"

namespace resweep {

struct Dataset {
  std::string name;
  torch::Tensor train_images;  // uint8 [N, C, H, W]
  torch::Tensor train_labels;  // int64 [N], values 0..classes-1
  torch::Tensor test_images;   // uint8 [M, C, H, W]
  torch::Tensor test_labels;   // int64 [M]
  int64_t classes = 10;

  int64_t channels() const { return train_images.size(1); }
  int64_t height() const { return train_images.size(2); }
  int64_t width() const { return train_images.size(3); }
};

StatusOr<Dataset> LoadCifar10(const std::string& dir);
StatusOr<Dataset> LoadFashionMnist(const std::string& dir);

// Reads one CIFAR-10 binary batch file into images [N,3,32,32] and labels [N].
Status ReadCifar10Batch(const std::string& path, torch::Tensor* images, torch::Tensor* labels);
// Reads a gzipped IDX file: idx3 (images, uint8 [N, rows, cols]) or idx1 (labels, uint8 [N]).
StatusOr<torch::Tensor> ReadIdxGz(const std::string& path);

// Where a config's data set lives, resolved (symbolic links followed) so that one
// folder has one name. Relative dataset.path values are found under `data_root` and
// must stay there: `..` or a link that leads out is INVALID_ARGUMENT, with the same
// message whether or not the target exists (a submitter cannot probe the worker's
// file system). An absolute dataset.path is INVALID_ARGUMENT unless
// `allow_absolute_paths`. An empty one means the kind's default (CIFAR-10:
// <data_root>/cifar-10-batches-bin; Fashion-MNIST: <data_root>/fashion-mnist when it
// exists, else Debian's /usr/share/datasets/fashion-mnist). A path inside the root
// that does not exist is NOT_FOUND.
StatusOr<std::string> ResolveDatasetPath(const DatasetConfig& config, const std::string& data_root,
                                         bool allow_absolute_paths);

struct DatasetCacheOptions {
  std::string data_root = "/data";
  bool allow_absolute_paths = false;  // --allow-absolute-data-paths
  // Data sets kept loaded, least recently used dropped first; one bigger than this
  // is loaded for its run and not kept. Runs keep what they hold either way.
  int64_t max_bytes = int64_t{2048} << 20;
};

// Loads each data set (by resolved path) once and hands out shared read-only
// copies; train/test limits are applied by the caller as views (no copy).
// Thread-safe.
class DatasetCache {
 public:
  explicit DatasetCache(DatasetCacheOptions options) : options_(std::move(options)) {}
  StatusOr<std::shared_ptr<const Dataset>> Get(const DatasetConfig& config);

  int64_t loads() const;         // data sets read from disk so far
  int64_t cached_bytes() const;  // bytes of the data sets kept now

 private:
  struct Entry {
    std::shared_ptr<const Dataset> dataset;
    int64_t bytes = 0;
    uint64_t last_used = 0;
  };

  const DatasetCacheOptions options_;
  // Loading holds the lock: two slots asking for one data set load it once.
  mutable Mutex mutex_;
  std::map<std::string, Entry> loaded_ RESWEEP_GUARDED_BY(mutex_);  // by kind:resolved path
  int64_t cached_bytes_ RESWEEP_GUARDED_BY(mutex_) = 0;
  uint64_t use_counter_ RESWEEP_GUARDED_BY(mutex_) = 0;
  int64_t loads_ RESWEEP_GUARDED_BY(mutex_) = 0;
};

}  // namespace resweep
