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

// The version of the statistics' algorithms (statistics.cc). Every key begins with a
// byte naming the function, then this byte, so results remembered elsewhere (a
// database) by another version are never used; a store can also find them by it (see
// Store::MarkStatisticsOfOtherVersionsStale). Change it with any change to what
// Describe, ProbabilityAIsLower or SeedsNeeded compute.
inline constexpr char kStatisticsKeyVersion = 1;

// A memory of results that outlives the process (the coordinator keeps one per sweep
// in its database), under StatisticsCache's exact keys: a stored result is used only
// for exactly the inputs it was computed from. Values are opaque bytes
// (StatisticsCache encodes and decodes them; an entry it cannot decode is computed
// afresh). Not thread-safe: one per computation.
class StatisticsBacking {
 public:
  virtual ~StatisticsBacking() = default;
  // The stored result for `key`, or nullptr.
  virtual const std::string* Find(const std::string& key) = 0;
  // Told of every result a computation used (found anywhere or computed), once per
  // use, so that a writer can store exactly the set a sweep needs.
  virtual void Used(const std::string& key, const std::string& value) = 0;
};

class StatisticsCache {
 public:
  explicit StatisticsCache(int64_t max_bytes = int64_t{256} << 20);

  // With a backing, a result this cache does not hold is looked up there before it is
  // computed (and kept here either way).
  Description Describe(const std::vector<double>& values, uint64_t seed, int resamples,
                       StatisticsBacking* backing = nullptr);
  std::optional<ProbabilityOfImprovement> ProbabilityAIsLower(const std::vector<double>& a,
                                                              const std::vector<double>& b,
                                                              uint64_t seed, int resamples,
                                                              StatisticsBacking* backing = nullptr);
  std::optional<int> SeedsNeeded(double mean_a, double std_a, double mean_b, double std_b,
                                 double alpha, double power, StatisticsBacking* backing = nullptr);

  int64_t hits() const;    // found in this cache
  int64_t misses() const;  // not found in this cache (then found in a backing, or computed)
  int64_t computed() const;

 private:
  struct Entry {
    std::string key;
    Description description;
    std::optional<ProbabilityOfImprovement> probability;
    std::optional<int> seeds;
  };
  // The remembered `field` of `key`'s entry, else compute() (outside the lock),
  // remembered.
  // ... also looked up in `backing` (decode: nullopt when the bytes are not a T) and
  // reported to it as used (encode).
  template <typename T>
  T Remember(std::string key, T Entry::*field, const std::function<T()>& compute,
             StatisticsBacking* backing,
             const std::function<std::optional<T>(const std::string&)>& decode,
             const std::function<std::string(const T&)>& encode);
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
  int64_t computed_ RESWEEP_GUARDED_BY(mutex_) = 0;
};

}  // namespace resweep::analysis
