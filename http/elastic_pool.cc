#include "http/elastic_pool.h"

#include <spdlog/spdlog.h>

#include <system_error>
#include <utility>

namespace resweep::http {

ElasticThreadPool::ElasticThreadPool(size_t min_threads, size_t max_threads,
                                     std::chrono::milliseconds idle_exit,
                                     ThreadStarter start_thread)
    : min_threads_(min_threads),
      max_threads_(max_threads < 1 ? 1 : max_threads),
      idle_exit_(idle_exit),
      start_thread_(start_thread ? std::move(start_thread) : [](std::function<void()> run) {
        return std::thread(std::move(run));
      }) {}

ElasticThreadPool::~ElasticThreadPool() { shutdown(); }

size_t ElasticThreadPool::threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_.size();
}

void ElasticThreadPool::enqueue(std::function<void()> fn) {
  JoinExited();
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return;
  jobs_.push_back(std::move(fn));
  // Jobs queued beyond the idle threads each get a thread of their own, up to the bound.
  if (jobs_.size() > idle_ && threads_.size() < max_threads_) {
    try {
      // Work() starts by taking mu_, so it finds itself in threads_.
      std::thread thread = start_thread_([this] { Work(); });
      const std::thread::id id = thread.get_id();
      threads_.emplace(id, std::move(thread));
      if (start_failed_) spdlog::info("http: threads can be started again");
      start_failed_ = false;
      return;
    } catch (const std::system_error& e) {
      // No thread to be had: the job waits for a running one (a connection waits, as
      // beyond max_threads); the server goes on.
      if (!start_failed_) {
        spdlog::warn(
            "http: cannot start a thread for a connection ({}; {} running): it waits "
            "for a free one",
            e.what(), threads_.size());
      }
      start_failed_ = true;
    }
  }
  cv_.notify_one();
}

void ElasticThreadPool::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (jobs_.empty()) {
      if (shutdown_) break;
      ++idle_;
      const bool woken =
          cv_.wait_for(lock, idle_exit_, [this] { return shutdown_ || !jobs_.empty(); });
      --idle_;
      if (!woken && threads_.size() > min_threads_) break;
      continue;
    }
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    job = nullptr;  // its captures released outside the lock
    lock.lock();
  }
  // Handed over to be joined (by the next enqueue, or shutdown()).
  auto self = threads_.find(std::this_thread::get_id());
  exited_.push_back(std::move(self->second));
  threads_.erase(self);
}

void ElasticThreadPool::JoinExited() {
  std::vector<std::thread> exited;
  {
    std::lock_guard<std::mutex> lock(mu_);
    exited.swap(exited_);
  }
  // (A thread that shutdown() took over left an empty std::thread here.)
  for (auto& thread : exited) {
    if (thread.joinable()) thread.join();
  }
}

void ElasticThreadPool::shutdown() {
  std::vector<std::thread> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
    for (auto& [id, thread] : threads_) running.push_back(std::move(thread));
    cv_.notify_all();
  }
  for (auto& thread : running) thread.join();
  JoinExited();
}

}  // namespace resweep::http
