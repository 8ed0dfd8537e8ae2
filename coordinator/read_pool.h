// Read-only connections to the coordinator's database, so that queries (results,
// lists, curves) neither wait on the scheduler's lock nor make its writers wait.
//
// The database runs in WAL mode: a reader sees the newest transaction committed when
// its statement began, and readers and the one writer never block each other. Each
// connection serves one query at a time; idle ones are kept for the next query.
//
// Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "coordinator/store.h"

namespace resweep {

class ReadPool {
 public:
  // Opens one read-only connection.
  using Opener = std::function<StatusOr<std::unique_ptr<Store>>()>;

  // Keeps at most `max_idle` connections open between queries; more are opened while
  // more queries run at once.
  ReadPool(Opener open, int max_idle);

  // A connection for one query; back in the pool when the handle goes.
  class Handle {
   public:
    Handle(ReadPool* pool, std::unique_ptr<Store> store) : pool_(pool), store_(std::move(store)) {}
    Handle(Handle&&) = default;
    Handle& operator=(Handle&&) = delete;
    ~Handle() {
      if (store_) pool_->Return(std::move(store_));
    }
    Store* store() const { return store_.get(); }

   private:
    ReadPool* pool_;
    std::unique_ptr<Store> store_;
  };

  StatusOr<Handle> Acquire();

  // Connections opened so far (for tests and logs).
  int opened() const;

 private:
  void Return(std::unique_ptr<Store> store);

  const Opener open_;
  const int max_idle_;
  mutable Mutex mutex_;
  std::vector<std::unique_ptr<Store>> idle_ RESWEEP_GUARDED_BY(mutex_);
  int opened_ RESWEEP_GUARDED_BY(mutex_) = 0;
};

}  // namespace resweep
