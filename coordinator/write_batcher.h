// Group commit for the calls of workers that write (epoch reports, heartbeats,
// acquires, the ends of attempts): one thread takes every call queued so far, runs
// them as one batch (one store transaction, a savepoint per call, one durable
// commit: Scheduler::RunBatch) and only then tells each call how it ended. A call
// that fails rolls back its own writes only; a success is reported only once it is
// durable. The batcher also keeps this blocking work off the threads that queue it
// (gRPC's callback threads). gRPC-free: calls are closures.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>

#include "common/mutex.h"
#include "common/status.h"

namespace resweep {

struct WriteBatcherOptions {
  // The most calls in one batch (one commit); more wait for the next.
  size_t max_batch = 512;
};

class WriteBatcher {
 public:
  // Runs one batch: calls `calls` (which runs each call of the batch in turn, on the
  // same thread) so that their writes share one durable commit, and returns the
  // commit's status. Scheduler::RunBatch, bound to a scheduler.
  using BatchRunner = std::function<Status(const std::function<void()>& calls)>;

  explicit WriteBatcher(BatchRunner runner, WriteBatcherOptions options = {});
  ~WriteBatcher();  // Stop()
  WriteBatcher(const WriteBatcher&) = delete;
  WriteBatcher& operator=(const WriteBatcher&) = delete;

  // Queues a call. `run` runs on the batcher's thread, inside a batch, and returns
  // the call's own status (it writes through the batch's runner only, e.g. the
  // scheduler). `done` is then called on the batcher's thread, after the batch's
  // commit, with run's status, or with UNAVAILABLE (the outcome is unknown) for
  // every call of a batch whose commit failed. `done` must not block. After Stop,
  // `done` is called at once, on this thread, with UNAVAILABLE.
  void Submit(std::function<Status()> run, std::function<void(const Status&)> done);

  // Runs every call queued so far, then stops the thread. Safe to call more than once.
  void Stop();

  // Calls and batches run so far.
  struct Counts {
    int64_t calls = 0;
    int64_t batches = 0;
    int64_t failed_commits = 0;
  };
  Counts counts();

 private:
  struct Call {
    std::function<Status()> run;
    std::function<void(const Status&)> done;
  };
  void Loop();
  void RunOneBatch(std::deque<Call>* batch);

  const BatchRunner runner_;
  const WriteBatcherOptions options_;
  Mutex mutex_;
  CondVar queued_cv_;
  std::deque<Call> queue_ RESWEEP_GUARDED_BY(mutex_);
  bool stopping_ RESWEEP_GUARDED_BY(mutex_) = false;
  Counts counts_ RESWEEP_GUARDED_BY(mutex_);
  std::thread thread_;  // last: starts once the rest is set up
};

}  // namespace resweep
