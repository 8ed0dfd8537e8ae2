// Long-poll: calls parked until something they wait for may have happened (Notify)
// or their deadline passes. No thread per call: one thread wakes and expires them.
// gRPC-free: a parked call is two closures.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <thread>

#include "common/mutex.h"

namespace resweep {

class ParkedCalls {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  ParkedCalls();
  ~ParkedCalls();  // Shutdown()
  ParkedCalls(const ParkedCalls&) = delete;
  ParkedCalls& operator=(const ParkedCalls&) = delete;

  // How many Notify calls there have been. A caller reads it before it looks for
  // what it waits for and passes it to Park: a Notify in between then wakes the call
  // at once, so no notification is lost.
  uint64_t Generation();

  // Parks a call. Exactly one of `wake` (after a Notify) and `expire` (at `deadline`,
  // or at Shutdown) is called, once, on this class's thread, or at once on this
  // thread: `wake` when a Notify came after `seen_generation`, `expire` after
  // Shutdown. Neither may block; `wake` typically looks again and parks again.
  void Park(uint64_t seen_generation, TimePoint deadline, std::function<void()> wake,
            std::function<void()> expire);

  // Wakes at most `calls` parked calls, those of the earliest deadlines first (a call
  // parked later may be woken instead when one of those is answered meanwhile). Cheap
  // and non-blocking: callers may hold their own locks.
  void Notify(int64_t calls);

  // Expires every parked call now; later Parks expire at once. Safe to call more than
  // once.
  void Shutdown();

  // Calls parked now.
  size_t size();

 private:
  struct Call {
    std::function<void()> wake;
    std::function<void()> expire;
  };
  void Loop();

  Mutex mutex_;
  CondVar cv_;
  uint64_t generation_ RESWEEP_GUARDED_BY(mutex_) = 0;
  int64_t to_wake_ RESWEEP_GUARDED_BY(mutex_) = 0;  // calls Notify asked to wake, not woken yet
  bool stopping_ RESWEEP_GUARDED_BY(mutex_) = false;
  std::multimap<TimePoint, Call> parked_ RESWEEP_GUARDED_BY(mutex_);  // by deadline
  size_t answering_ RESWEEP_GUARDED_BY(mutex_) = 0;  // taken out, being woken or expired
  std::thread thread_;                               // last: starts once the rest is set up
};

}  // namespace resweep
