// Logging what HTTP clients send, safely: request data (a path, a method, a query's
// message) is escaped before it reaches the log, and warnings that any client can
// trigger (a refused request) are rate-limited so that they cannot flood it.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace resweep::http {

// `text` as one printable ASCII line: control characters (< 0x20, 0x7f), bytes >= 0x80
// (so also invalid UTF-8, and Unicode controls such as bidi overrides) and backslash
// as \xHH, \n, \r, \t, \\. A forged log line ("%0a[...] [info] ...") stays on the line
// of the message that quotes it. Longer than `max_bytes` (of the input): cut there,
// and "...(N bytes)" appended.
std::string EscapeForLog(std::string_view text, size_t max_bytes = 512);

// Lets the first `per_window` events of each window through at the louder level
// (e.g. warn); the rest of that window are demoted (e.g. to debug) and counted. The
// first event of a later window reports the count demoted since the last report, once.
// Thread-safe.
class LogRateLimit {
 public:
  using Clock = std::chrono::steady_clock;

  LogRateLimit(int per_window, Clock::duration window) : per_window_(per_window), window_(window) {}

  struct Decision {
    bool loud = true;     // log this event at the louder level
    int64_t demoted = 0;  // events demoted in earlier windows, not yet reported
  };
  Decision Admit(Clock::time_point now = Clock::now());

 private:
  const int per_window_;
  const Clock::duration window_;
  std::mutex mu_;
  bool started_ = false;
  Clock::time_point window_start_;
  int loud_in_window_ = 0;
  int64_t demoted_ = 0;  // not yet reported
};

}  // namespace resweep::http
