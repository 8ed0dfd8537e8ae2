#include "analysis/statistics_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <numeric>
#include <optional>

namespace resweep::analysis {

namespace {

// Bytes built field by field, each in the machine's byte order: keys (a tag naming the
// function, kStatisticsKeyVersion, then the exact bytes of every input) and encoded
// results (kFormat, then fixed-size fields; a database moved to a machine of the other
// byte order reads as undecodable entries, which are computed afresh).
class ByteWriter {
 public:
  explicit ByteWriter(std::initializer_list<char> header) : bytes_(header) {}
  ByteWriter& Put(const std::vector<double>& v) {
    Put(static_cast<uint64_t>(v.size()));
    bytes_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double));
    return *this;
  }
  template <typename T>
  ByteWriter& Put(T x) {
    char b[sizeof(T)];
    std::memcpy(b, &x, sizeof(T));
    bytes_.append(b, sizeof(T));
    return *this;
  }
  std::string Take() { return std::move(bytes_); }

 private:
  std::string bytes_;
};

ByteWriter KeyOf(char tag) { return ByteWriter({tag, kStatisticsKeyVersion}); }

constexpr char kFormat = 1;

ByteWriter EncodedResult() { return ByteWriter({kFormat}); }

class Decoder {
 public:
  explicit Decoder(const std::string& bytes) : bytes_(bytes) {
    ok_ = !bytes_.empty() && bytes_[0] == kFormat;
    at_ = 1;
  }
  template <typename T>
  T Get() {
    T x{};
    if (!ok_ || at_ + sizeof(T) > bytes_.size()) {
      ok_ = false;
      return x;
    }
    std::memcpy(&x, bytes_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return x;
  }
  // Every field read and nothing left over.
  bool Done() const { return ok_ && at_ == bytes_.size(); }

 private:
  const std::string& bytes_;
  size_t at_ = 0;
  bool ok_ = false;
};

std::string EncodeDescription(const Description& d) {
  ByteWriter e = EncodedResult();
  e.Put<int32_t>(d.n).Put(d.mean).Put(d.std).Put(d.sem).Put(d.ci95.low).Put(d.ci95.high);
  e.Put(d.bootstrap_ci95.low).Put(d.bootstrap_ci95.high).Put(d.median).Put(d.q1).Put(d.q3);
  e.Put(d.iqr).Put(d.iqm).Put(d.min).Put(d.max);
  return e.Take();
}

// `values` are the inputs the description was computed from (not stored).
std::optional<Description> DecodeDescription(const std::string& bytes,
                                             const std::vector<double>& values) {
  Decoder in(bytes);
  Description d;
  d.n = in.Get<int32_t>();
  d.mean = in.Get<double>();
  d.std = in.Get<double>();
  d.sem = in.Get<double>();
  d.ci95.low = in.Get<double>();
  d.ci95.high = in.Get<double>();
  d.bootstrap_ci95.low = in.Get<double>();
  d.bootstrap_ci95.high = in.Get<double>();
  d.median = in.Get<double>();
  d.q1 = in.Get<double>();
  d.q3 = in.Get<double>();
  d.iqr = in.Get<double>();
  d.iqm = in.Get<double>();
  d.min = in.Get<double>();
  d.max = in.Get<double>();
  if (!in.Done() || d.n != static_cast<int>(values.size())) return std::nullopt;
  // What can be checked against the inputs cheaply must agree with them, and nothing
  // may be NaN or infinite: a damaged or edited entry is computed afresh instead of
  // being shown (or crashing a later step).
  for (double x : {d.mean, d.std, d.sem, d.ci95.low, d.ci95.high, d.bootstrap_ci95.low,
                   d.bootstrap_ci95.high, d.median, d.q1, d.q3, d.iqr, d.iqm, d.min, d.max}) {
    if (!std::isfinite(x)) return std::nullopt;
  }
  if (!values.empty()) {
    const auto [low, high] = std::minmax_element(values.begin(), values.end());
    const double mean = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
    if (d.min != *low || d.max != *high || d.mean != mean || d.std < 0) return std::nullopt;
  } else if (d.mean != 0 || d.std != 0) {
    return std::nullopt;
  }
  d.values = values;
  return d;
}

std::string EncodeProbability(const std::optional<ProbabilityOfImprovement>& p) {
  ByteWriter e = EncodedResult();
  e.Put<uint8_t>(p.has_value());
  if (p) e.Put(p->estimate).Put(p->ci95.low).Put(p->ci95.high);
  return e.Take();
}

std::optional<std::optional<ProbabilityOfImprovement>> DecodeProbability(const std::string& bytes) {
  Decoder in(bytes);
  std::optional<ProbabilityOfImprovement> p;
  if (in.Get<uint8_t>()) {
    p.emplace();
    p->estimate = in.Get<double>();
    p->ci95.low = in.Get<double>();
    p->ci95.high = in.Get<double>();
    for (double x : {p->estimate, p->ci95.low, p->ci95.high}) {
      if (!(x >= 0 && x <= 1)) return std::nullopt;  // also NaN
    }
  }
  if (!in.Done()) return std::nullopt;
  return p;
}

std::string EncodeSeeds(const std::optional<int>& n) {
  ByteWriter e = EncodedResult();
  e.Put<uint8_t>(n.has_value());
  if (n) e.Put<int32_t>(*n);
  return e.Take();
}

std::optional<std::optional<int>> DecodeSeeds(const std::string& bytes) {
  Decoder in(bytes);
  std::optional<int> n;
  if (in.Get<uint8_t>()) n = in.Get<int32_t>();
  if (!in.Done() || (n && (*n < 2 || *n > 1000000))) return std::nullopt;
  return n;
}

}  // namespace

StatisticsCache::StatisticsCache(int64_t max_bytes) : max_bytes_(max_bytes) {}

template <typename T>
T StatisticsCache::Remember(std::string key, T Entry::*field, const std::function<T()>& compute,
                            StatisticsBacking* backing,
                            const std::function<std::optional<T>(const std::string&)>& decode,
                            const std::function<std::string(const T&)>& encode) {
  {
    std::optional<T> found;
    {
      MutexLock lock(&mutex_);
      if (const Entry* e = FindLocked(key)) found = e->*field;
    }
    if (found) {
      if (backing) backing->Used(key, encode(*found));  // outside the lock: it may throw
      return std::move(*found);
    }
  }
  Entry entry;
  entry.key = std::move(key);
  std::optional<T> stored;
  if (backing) {
    if (const std::string* bytes = backing->Find(entry.key)) stored = decode(*bytes);
  }
  if (stored) {
    entry.*field = std::move(*stored);
  } else {
    entry.*field = compute();  // outside the lock: concurrent queries compute in parallel
  }
  T out = entry.*field;
  if (backing) backing->Used(entry.key, encode(out));
  MutexLock lock(&mutex_);
  if (!stored) ++computed_;
  InsertLocked(std::move(entry));
  return out;
}

Description StatisticsCache::Describe(const std::vector<double>& values, uint64_t seed,
                                      int resamples, StatisticsBacking* backing) {
  return Remember<Description>(
      KeyOf('d').Put(values).Put(seed).Put(resamples).Take(), &Entry::description,
      [&] { return analysis::Describe(values, seed, resamples); }, backing,
      [&](const std::string& bytes) { return DecodeDescription(bytes, values); },
      EncodeDescription);
}

std::optional<ProbabilityOfImprovement> StatisticsCache::ProbabilityAIsLower(
    const std::vector<double>& a, const std::vector<double>& b, uint64_t seed, int resamples,
    StatisticsBacking* backing) {
  return Remember<std::optional<ProbabilityOfImprovement>>(
      KeyOf('p').Put(a).Put(b).Put(seed).Put(resamples).Take(), &Entry::probability,
      [&] { return analysis::ProbabilityAIsLower(a, b, seed, resamples); }, backing,
      DecodeProbability, EncodeProbability);
}

std::optional<int> StatisticsCache::SeedsNeeded(double mean_a, double std_a, double mean_b,
                                                double std_b, double alpha, double power,
                                                StatisticsBacking* backing) {
  return Remember<std::optional<int>>(
      KeyOf('s').Put(mean_a).Put(std_a).Put(mean_b).Put(std_b).Put(alpha).Put(power).Take(),
      &Entry::seeds,
      [&] { return analysis::SeedsNeeded(mean_a, std_a, mean_b, std_b, alpha, power); }, backing,
      DecodeSeeds, EncodeSeeds);
}

int64_t StatisticsCache::hits() const {
  MutexLock lock(&mutex_);
  return hits_;
}

int64_t StatisticsCache::misses() const {
  MutexLock lock(&mutex_);
  return misses_;
}

int64_t StatisticsCache::computed() const {
  MutexLock lock(&mutex_);
  return computed_;
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
