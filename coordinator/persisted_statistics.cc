#include "coordinator/persisted_statistics.h"

#include <spdlog/spdlog.h>

namespace resweep {

PersistedStatistics::PersistedStatistics(Loader load, std::function<bool()> stop)
    : load_(std::move(load)), stop_(std::move(stop)) {}

Status PersistedStatistics::Load() {
  if (loaded_) return load_status_;
  loaded_ = true;
  auto entries = load_();
  if (!entries.ok()) {
    load_status_ = entries.status();
    spdlog::warn("stored statistics not read (computing them instead): {}",
                 load_status_.ToString());
    return load_status_;
  }
  stored_ = std::move(*entries);
  stored_by_key_.reserve(stored_.size());
  for (size_t i = 0; i < stored_.size(); ++i) stored_by_key_.emplace(stored_[i].key, i);
  return load_status_;
}

const std::string* PersistedStatistics::Find(const std::string& key) {
  if (!loaded_) Load().IgnoreError();  // logged; a failed load finds nothing
  auto it = stored_by_key_.find(key);
  return it == stored_by_key_.end() ? nullptr : &stored_[it->second].value;
}

void PersistedStatistics::Used(const std::string& key, const std::string& value) {
  used_.emplace(key, value);
  if (stop_ && stop_()) throw StatisticsComputationStopped{};
}

std::vector<StatisticsEntryRecord> PersistedStatistics::Added() const {
  std::vector<StatisticsEntryRecord> out;
  for (const auto& [key, value] : used_) {
    auto it = stored_by_key_.find(key);
    if (it == stored_by_key_.end() || stored_[it->second].value != value) {
      out.push_back({0, key, value});
    }
  }
  return out;
}

std::vector<int64_t> PersistedStatistics::Unused() const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < stored_.size(); ++i) {
    const StatisticsEntryRecord& e = stored_[i];
    auto used = used_.find(e.key);
    // Kept: the one entry the index points at, when used with this very value.
    const bool kept =
        used != used_.end() && used->second == e.value && stored_by_key_.at(e.key) == i;
    if (!kept) out.push_back(e.id);
  }
  return out;
}

}  // namespace resweep
