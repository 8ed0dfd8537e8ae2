// Group commit for the calls of workers that write (epoch reports, heartbeats,
// acquires, the ends of attempts): one thread takes every call queued so far, runs
// them as one batch (one store transaction, a savepoint per call, one durable
// commit: Scheduler::RunBatch) and only then tells each call how it ended. A call
// that fails rolls back its own writes only; a success is reported only once it is
// durable. The batcher also keeps this blocking work off the threads that queue it
// (gRPC's callback threads). Each batch's outcomes are handed to a second thread,
// which syncs and tells the calls (sends the replies) while the next batch runs.
// With a syncer, the next batch stays open while that thread is busy with earlier
// ones: calls that arrive meanwhile run in it and share its one commit (up to
// max_batch), so a page that many calls write reaches the log once per sync rather
// than once per call's own small batch. gRPC-free: calls are closures.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

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
  // Makes every batch the runner has committed so far durable, when the runner's
  // commit does not itself (Scheduler::SyncCommitted); runs on the reply thread
  // while the next batch runs. Not OK: their outcome is unknown.
  using Syncer = std::function<Status()>;

  // Without a syncer, a batch is durable when the runner returns.
  explicit WriteBatcher(BatchRunner runner, WriteBatcherOptions options = {},
                        Syncer syncer = nullptr);
  ~WriteBatcher();  // Stop()
  WriteBatcher(const WriteBatcher&) = delete;
  WriteBatcher& operator=(const WriteBatcher&) = delete;

  // Queues a call. `run` runs on the batcher's thread, inside a batch, and returns
  // the call's own status (it writes through the batch's runner only, e.g. the
  // scheduler). `done` is then called on the batcher's reply thread, once the
  // batch's commit is durable (the runner's commit, then the syncer), with run's
  // status, or with UNAVAILABLE (the outcome is unknown) for every call of a batch
  // whose commit or sync failed; everything `run` did happens before `done`. `done`s are called in
  // the order their calls ran, one at a time, and must not block. After Stop, `done` is called at
  // once, on this thread, with UNAVAILABLE.
  void Submit(std::function<Status()> run, std::function<void(const Status&)> done);

  // Runs every call queued so far and tells each how it ended, then stops the
  // threads. Safe to call more than once.
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
  // A batch whose calls have run: each `done` with its status.
  struct Outcome {
    std::function<void(const Status&)> done;
    Status status;
  };
  void Loop();
  void RunOneBatch(std::deque<Call>* batch);
  // Runs the batch's calls from *next on, and those that join it while the reply
  // thread is still busy with earlier batches; results[i] is call i's status.
  void RunCallsOfBatch(std::deque<Call>* batch, std::vector<Status>* results);
  void ReplyLoop();

  const BatchRunner runner_;
  const Syncer syncer_;
  const WriteBatcherOptions options_;
  Mutex mutex_;
  CondVar queued_cv_;
  std::deque<Call> queue_ RESWEEP_GUARDED_BY(mutex_);
  bool stopping_ RESWEEP_GUARDED_BY(mutex_) = false;
  Counts counts_ RESWEEP_GUARDED_BY(mutex_);
  // Batches handed to the reply thread, and of those the ones it has synced and told
  // (synced_ == handed_: it is idle, a batch may commit at once).
  int64_t handed_ RESWEEP_GUARDED_BY(mutex_) = 0;
  int64_t synced_ RESWEEP_GUARDED_BY(mutex_) = 0;
  // Outcomes of committed batches, for the reply thread, in batch order.
  Mutex reply_mutex_;
  CondVar replies_cv_;
  std::vector<Outcome> replies_ RESWEEP_GUARDED_BY(reply_mutex_);
  int64_t replies_handed_ RESWEEP_GUARDED_BY(reply_mutex_) = 0;  // handed_ as of replies_
  bool replies_done_ RESWEEP_GUARDED_BY(reply_mutex_) = false;   // no batch follows
  std::thread reply_thread_;
  std::thread thread_;  // last: starts once the rest is set up
};

}  // namespace resweep
