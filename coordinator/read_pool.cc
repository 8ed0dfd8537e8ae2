#include "coordinator/read_pool.h"

namespace resweep {

ReadPool::ReadPool(Opener open, int max_idle) : open_(std::move(open)), max_idle_(max_idle) {}

StatusOr<ReadPool::Handle> ReadPool::Acquire() {
  {
    MutexLock lock(&mutex_);
    if (!idle_.empty()) {
      std::unique_ptr<Store> store = std::move(idle_.back());
      idle_.pop_back();
      return Handle(this, std::move(store));
    }
  }
  // Opening reads the schema version: outside the lock.
  auto opened = open_();
  if (!opened.ok()) return opened.status().WithContext("read connection");
  {
    MutexLock lock(&mutex_);
    ++opened_;
  }
  return Handle(this, std::move(*opened));
}

int ReadPool::opened() const {
  MutexLock lock(&mutex_);
  return opened_;
}

void ReadPool::Return(std::unique_ptr<Store> store) {
  MutexLock lock(&mutex_);
  if (static_cast<int>(idle_.size()) < max_idle_) idle_.push_back(std::move(store));
}

}  // namespace resweep
