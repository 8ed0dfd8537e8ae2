#pragma once

#include <chrono>
#include <cstdint>

namespace resweep {

// Wall-clock milliseconds since the Unix epoch. Managers take a Clock so tests can
// drive time by hand.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() const = 0;
};

class SystemClock : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace resweep
