// Remembers the costly statistics (bootstrap intervals, seeds needed) by their exact
// inputs, so that the same values asked about again (a finished sweep's results, a
// dashboard polling a running one, where only the cells that gained a seed changed)
// cost a lookup instead of ten thousand resamples.
//
// Results are those of the plain functions in statistics.h, bit for bit: the key is
// every input, not a hash of it. Thread-safe; lookups hold the lock, computing does
// not. The least recently used entries go first once max_bytes is reached.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "analysis/statistics.h"
#include "common/mutex.h"

namespace resweep::analysis {

class StatisticsCache {
 public:
  explicit StatisticsCache(int64_t max_bytes = int64_t{256} << 20);

  Description Describe(const std::vector<double>& values, uint64_t seed, int resamples);
  std::optional<ProbabilityOfImprovement> ProbabilityAIsLower(const std::vector<double>& a,
                                                              const std::vector<double>& b,
                                                              uint64_t seed, int resamples);
  std::optional<int> SeedsNeeded(double mean_a, double std_a, double mean_b, double std_b,
                                 double alpha, double power);

  int64_t hits() const;
  int64_t misses() const;

 private:
  struct Entry {
    std::string key;
    Description description;
    std::optional<ProbabilityOfImprovement> probability;
    std::optional<int> seeds;
  };
  // The remembered `field` of `key`'s entry, else compute() (outside the lock),
  // remembered.
  template <typename T>
  T Remember(std::string key, T Entry::*field, const std::function<T()>& compute);
  // The entry for `key`, moved to the front, or nullptr.
  const Entry* FindLocked(const std::string& key) RESWEEP_REQUIRES(mutex_);
  void InsertLocked(Entry entry) RESWEEP_REQUIRES(mutex_);
  static int64_t BytesOf(const Entry& entry);

  const int64_t max_bytes_;
  mutable Mutex mutex_;
  std::list<Entry> entries_ RESWEEP_GUARDED_BY(mutex_);  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_ RESWEEP_GUARDED_BY(mutex_);
  int64_t bytes_ RESWEEP_GUARDED_BY(mutex_) = 0;
  int64_t hits_ RESWEEP_GUARDED_BY(mutex_) = 0;
  int64_t misses_ RESWEEP_GUARDED_BY(mutex_) = 0;
};

}  // namespace resweep::analysis
