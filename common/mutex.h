// A mutex the thread-safety analysis understands, its scoped lock, and a condition
// variable that waits on it. std::mutex carries no capability attributes in
// libstdc++, so members annotated GUARDED_BY(a std::mutex) are not checked; these are.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "common/thread_annotations.h"

namespace resweep {

class RESWEEP_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() RESWEEP_ACQUIRE() { mu_.lock(); }
  void Unlock() RESWEEP_RELEASE() { mu_.unlock(); }
  // Tells the analysis the caller holds this mutex (where it cannot see it).
  void AssertHeld() const RESWEEP_ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` for its lifetime.
class RESWEEP_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) RESWEEP_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RESWEEP_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Waits release `mu` while blocked and hold it again when they return.
class CondVar {
 public:
  void Wait(Mutex* mu) RESWEEP_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // Returns false when `timeout` passed without a notification (or a spurious wake-up
  // happened: callers re-check their condition either way).
  template <typename Rep, typename Period>
  bool WaitFor(Mutex* mu, std::chrono::duration<Rep, Period> timeout) RESWEEP_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool notified = cv_.wait_for(lock, timeout) == std::cv_status::no_timeout;
    lock.release();
    return notified;
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace resweep
