// Not built: scripts/thread-safety-check.sh compiles this file with the flags it
// checks the project with and requires clang to refuse exactly the lines whose
// comment starts with VIOLATION, proving the check bites. Each such line breaks one
// rule of common/thread_annotations.h.
#include "common/mutex.h"

namespace resweep {

class Counter {
 public:
  int Unlocked() { return value_; }  // VIOLATION: reads a guarded member without mutex_

  void Locked() RESWEEP_EXCLUDES(mutex_) {
    MutexLock lock(&mutex_);
    ++value_;
    BumpLocked();
  }

  void CallsWithoutLock() { BumpLocked(); }  // VIOLATION: REQUIRES(mutex_) not held

  void TakesItTwice() {
    MutexLock lock(&mutex_);
    Locked();  // VIOLATION: Locked() takes mutex_ again
  }

  void Asserted() {
    auto body = [&] {
      mutex_.AssertHeld();
      ++value_;
    };
    MutexLock lock(&mutex_);
    body();
  }

  void LambdaWithoutAssert() {
    MutexLock lock(&mutex_);
    auto body = [&] { ++value_; };  // VIOLATION: a lambda is checked on its own
    body();
  }

 private:
  void BumpLocked() RESWEEP_REQUIRES(mutex_) { ++value_; }

  Mutex mutex_;
  int value_ RESWEEP_GUARDED_BY(mutex_) = 0;
};

}  // namespace resweep
