// The statistics of one sweep's results as the database remembers them: the backing
// (analysis::StatisticsBacking) that lets results reuse what the coordinator's
// refresher stored, and tells the refresher what to store.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "analysis/statistics_cache.h"
#include "common/status.h"
#include "coordinator/store.h"

namespace resweep {

// Thrown from Used() once `stop` says so, to end a long computation early; whoever
// runs the computation catches it (never let it cross a store transaction).
struct StatisticsComputationStopped {};

class PersistedStatistics : public analysis::StatisticsBacking {
 public:
  using Loader = std::function<StatusOr<std::vector<StatisticsEntryRecord>>()>;
  // `load` reads the stored entries; it is called at most once, at the first Find (a
  // query whose statistics are all in memory reads nothing). `stop`, when set, is
  // polled at every Used().
  explicit PersistedStatistics(Loader load, std::function<bool()> stop = {});

  const std::string* Find(const std::string& key) override;
  void Used(const std::string& key, const std::string& value) override;

  // Loads now if not yet loaded (a refresher compares the whole stored set).
  Status Load();
  // What the store must gain and lose to hold exactly the entries used so far: new
  // entries, and the ids of stored ones not used (or stored twice). Call Load() first.
  std::vector<StatisticsEntryRecord> Added() const;
  std::vector<int64_t> Unused() const;
  // The load's error, if the entries could not be read (then nothing was found).
  const Status& load_status() const { return load_status_; }

 private:
  Loader load_;
  std::function<bool()> stop_;
  bool loaded_ = false;
  Status load_status_;
  std::vector<StatisticsEntryRecord> stored_;
  std::unordered_map<std::string, size_t> stored_by_key_;  // -> index in stored_
  std::unordered_map<std::string, std::string> used_;      // key -> value
};

}  // namespace resweep
