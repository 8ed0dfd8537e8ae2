#pragma once

#include <chrono>
#include <cstdint>

namespace resweep {

// Time as the coordinator sees it. Managers take a Clock so tests can drive time by
// hand.
//
// NowMs() is wall-clock time (milliseconds since the Unix epoch): for display and
// for what is stored. It may step forwards or backwards (NTP, an operator). Every
// duration that decides something (lease expiry, rate limits) is measured on
// MonotonicMs(), which never goes backwards and does not jump with the wall clock;
// its origin is arbitrary (and differs between processes), so it is never stored.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() const = 0;
  virtual int64_t MonotonicMs() const = 0;
};

class SystemClock : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace resweep
