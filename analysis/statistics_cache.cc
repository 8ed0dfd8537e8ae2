#include "analysis/statistics_cache.h"

#include <cstring>
#include <functional>

namespace resweep::analysis {

namespace {

// The exact bytes of every input, after a tag naming the function.
class KeyBuilder {
 public:
  explicit KeyBuilder(char tag) { key_.push_back(tag); }
  KeyBuilder& Add(const std::vector<double>& v) {
    Add(static_cast<uint64_t>(v.size()));
    key_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double));
    return *this;
  }
  template <typename T>
  KeyBuilder& Add(T x) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &x, sizeof(T));
    key_.append(bytes, sizeof(T));
    return *this;
  }
  std::string Take() { return std::move(key_); }

 private:
  std::string key_;
};

}  // namespace

StatisticsCache::StatisticsCache(int64_t max_bytes) : max_bytes_(max_bytes) {}

template <typename T>
T StatisticsCache::Remember(std::string key, T Entry::*field, const std::function<T()>& compute) {
  {
    MutexLock lock(&mutex_);
    if (const Entry* e = FindLocked(key)) return e->*field;
  }
  Entry entry;
  entry.key = std::move(key);
  entry.*field = compute();  // outside the lock: concurrent queries compute in parallel
  T out = entry.*field;
  MutexLock lock(&mutex_);
  InsertLocked(std::move(entry));
  return out;
}

Description StatisticsCache::Describe(const std::vector<double>& values, uint64_t seed,
                                      int resamples) {
  return Remember<Description>(KeyBuilder('d').Add(values).Add(seed).Add(resamples).Take(),
                               &Entry::description,
                               [&] { return analysis::Describe(values, seed, resamples); });
}

std::optional<ProbabilityOfImprovement> StatisticsCache::ProbabilityAIsLower(
    const std::vector<double>& a, const std::vector<double>& b, uint64_t seed, int resamples) {
  return Remember<std::optional<ProbabilityOfImprovement>>(
      KeyBuilder('p').Add(a).Add(b).Add(seed).Add(resamples).Take(), &Entry::probability,
      [&] { return analysis::ProbabilityAIsLower(a, b, seed, resamples); });
}

std::optional<int> StatisticsCache::SeedsNeeded(double mean_a, double std_a, double mean_b,
                                                double std_b, double alpha, double power) {
  return Remember<std::optional<int>>(
      KeyBuilder('s').Add(mean_a).Add(std_a).Add(mean_b).Add(std_b).Add(alpha).Add(power).Take(),
      &Entry::seeds,
      [&] { return analysis::SeedsNeeded(mean_a, std_a, mean_b, std_b, alpha, power); });
}

int64_t StatisticsCache::hits() const {
  MutexLock lock(&mutex_);
  return hits_;
}

int64_t StatisticsCache::misses() const {
  MutexLock lock(&mutex_);
  return misses_;
}

const StatisticsCache::Entry* StatisticsCache::FindLocked(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  entries_.splice(entries_.begin(), entries_, it->second);
  return &*it->second;
}

void StatisticsCache::InsertLocked(Entry entry) {
  if (index_.count(entry.key)) return;  // computed meanwhile by another caller
  bytes_ += BytesOf(entry);
  entries_.push_front(std::move(entry));
  index_.emplace(entries_.front().key, entries_.begin());
  while (bytes_ > max_bytes_ && entries_.size() > 1) {
    bytes_ -= BytesOf(entries_.back());
    index_.erase(entries_.back().key);
    entries_.pop_back();
  }
}

int64_t StatisticsCache::BytesOf(const Entry& entry) {
  // The key twice (list and index), the values copy, and bookkeeping.
  return static_cast<int64_t>(2 * entry.key.size() +
                              entry.description.values.size() * sizeof(double) + 256);
}

}  // namespace resweep::analysis
