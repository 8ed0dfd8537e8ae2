#include "coordinator/write_batcher.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

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

void WriteBatcher::RunOneBatch(std::deque<Call>* batch) {
  std::vector<Status> results(batch->size(), UnavailableError("not run"));
  Status commit = runner_([&] {
    for (size_t i = 0; i < batch->size(); ++i) {
      try {
        results[i] = (*batch)[i].run();
      } catch (const std::exception& e) {
        results[i] = InternalError(std::string("exception in a batched call: ") + e.what());
      }
    }
  });
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
  {
    MutexLock lock(&reply_mutex_);
    const bool was_empty = replies_.empty();
    for (size_t i = 0; i < batch->size(); ++i) {
      replies_.push_back({std::move((*batch)[i].done), std::move(results[i])});
    }
    if (was_empty) replies_cv_.NotifyOne();
  }
}

void WriteBatcher::ReplyLoop() {
  pthread_setname_np(pthread_self(), "batch-replies");
  std::vector<Outcome> outcomes;
  while (true) {
    {
      MutexLock lock(&reply_mutex_);
      while (replies_.empty() && !replies_done_) replies_cv_.Wait(&reply_mutex_);
      if (replies_.empty()) return;  // done, and every outcome has been told
      outcomes.swap(replies_);
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
  }
}

}  // namespace resweep
