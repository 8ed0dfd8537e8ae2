#include "coordinator/write_batcher.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <string>
#include <vector>

namespace resweep {

WriteBatcher::WriteBatcher(BatchRunner runner, WriteBatcherOptions options, Syncer syncer)
    : runner_(std::move(runner)),
      syncer_(std::move(syncer)),
      options_(options),
      reply_thread_([this] { ReplyLoop(); }),
      thread_([this] { Loop(); }) {}

WriteBatcher::~WriteBatcher() { Stop(); }

void WriteBatcher::Submit(std::function<Status()> run, std::function<void(const Status&)> done) {
  {
    MutexLock lock(&mutex_);
    if (!stopping_) {
      queue_.push_back({std::move(run), std::move(done)});
      queued_cv_.NotifyOne();
      return;
    }
  }
  done(UnavailableError("the coordinator is shutting down"));
}

void WriteBatcher::Stop() {
  {
    MutexLock lock(&mutex_);
    stopping_ = true;
  }
  queued_cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
  {
    MutexLock lock(&reply_mutex_);
    replies_done_ = true;
  }
  replies_cv_.NotifyAll();
  if (reply_thread_.joinable()) reply_thread_.join();
}

WriteBatcher::Counts WriteBatcher::counts() {
  MutexLock lock(&mutex_);
  return counts_;
}

void WriteBatcher::Loop() {
  // Named for top -H, perf and benchmarks (at most 15 characters).
  pthread_setname_np(pthread_self(), "batch-writer");
  std::deque<Call> batch;
  while (true) {
    {
      MutexLock lock(&mutex_);
      while (queue_.empty() && !stopping_) queued_cv_.Wait(&mutex_);
      if (queue_.empty()) return;  // stopping, and everything queued has run
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    RunOneBatch(&batch);
    batch.clear();
  }
}

namespace {

Status RunCall(const std::function<Status()>& run) {
  try {
    return run();
  } catch (const std::exception& e) {
    return InternalError(std::string("exception in a batched call: ") + e.what());
  }
}

}  // namespace

void WriteBatcher::RunCallsOfBatch(std::deque<Call>* batch, std::vector<Status>* results) {
  bool last_calls = false;
  while (true) {
    for (size_t i = results->size(); i < batch->size(); ++i) {
      results->push_back(RunCall((*batch)[i].run));
    }
    if (last_calls || !syncer_ || batch->size() >= options_.max_batch) return;
    MutexLock lock(&mutex_);
    // While earlier batches are still being synced, committing this one now would
    // not make it durable any sooner: it takes the calls that come meanwhile.
    while (queue_.empty() && synced_ < handed_ && !stopping_) queued_cv_.Wait(&mutex_);
    if (queue_.empty()) return;  // the reply thread is free (or stopping): commit
    // Once the reply thread is free, the calls queued by now are the batch's last,
    // so a steady stream of calls cannot keep it open.
    last_calls = synced_ >= handed_ || stopping_;
    while (!queue_.empty() && batch->size() < options_.max_batch) {
      batch->push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
}

void WriteBatcher::RunOneBatch(std::deque<Call>* batch) {
  std::vector<Status> results;
  results.reserve(batch->size());
  Status commit = runner_([&] { RunCallsOfBatch(batch, &results); });
  // A runner that failed before running the calls (its transaction could not begin).
  results.resize(batch->size(), UnavailableError("not run"));
  if (!commit.ok()) {
    // The runner has logged it; each call says the same.
    const Status failed = UnavailableError(
        "the write of this call (batched with " + std::to_string(batch->size() - 1) +
        " other calls) could not be made durable: " + commit.ToString());
    for (auto& status : results) status = failed;
  }
  {
    MutexLock lock(&mutex_);
    counts_.calls += static_cast<int64_t>(batch->size());
    counts_.batches += 1;
    counts_.failed_commits += commit.ok() ? 0 : 1;
  }
  // Replies go out on the reply thread while the next batch runs here.
  int64_t handed = 0;
  {
    MutexLock lock(&mutex_);
    handed = ++handed_;
  }
  {
    MutexLock lock(&reply_mutex_);
    const bool was_empty = replies_.empty();
    for (size_t i = 0; i < batch->size(); ++i) {
      replies_.push_back({std::move((*batch)[i].done), std::move(results[i])});
    }
    replies_handed_ = handed;
    if (was_empty) replies_cv_.NotifyOne();
  }
}

void WriteBatcher::ReplyLoop() {
  pthread_setname_np(pthread_self(), "batch-replies");
  std::vector<Outcome> outcomes;
  int64_t covered = 0;  // the batches `outcomes` holds: handed_ up to this
  while (true) {
    {
      MutexLock lock(&reply_mutex_);
      while (replies_.empty() && !replies_done_) replies_cv_.Wait(&reply_mutex_);
      if (replies_.empty()) return;  // done, and every outcome has been told
      outcomes.swap(replies_);
      covered = replies_handed_;
    }
    // One sync for every batch committed since the last one (group commit again:
    // the batches that committed while the previous sync ran share this one).
    if (syncer_) {
      if (Status synced = syncer_(); !synced.ok()) {
        const Status failed = UnavailableError(
            "the write of this call could not be made durable (its batch committed, but the "
            "sync failed): " +
            synced.ToString());
        for (Outcome& outcome : outcomes) {
          if (outcome.status.ok()) outcome.status = failed;
        }
      }
    }
    for (Outcome& outcome : outcomes) outcome.done(outcome.status);
    outcomes.clear();
    {
      MutexLock lock(&mutex_);
      synced_ = std::max(synced_, covered);
    }
    queued_cv_.NotifyAll();  // a batch held open for this thread may commit now
  }
}

}  // namespace resweep
