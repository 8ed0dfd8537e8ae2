#include "http/request_log.h"

namespace resweep::http {

std::string EscapeForLog(std::string_view text, size_t max_bytes) {
  static const char kHex[] = "0123456789abcdef";
  const std::string_view kept = text.substr(0, max_bytes);
  std::string out;
  out.reserve(kept.size());
  for (const unsigned char c : kept) {
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  if (kept.size() < text.size()) out += "...(" + std::to_string(text.size()) + " bytes)";
  return out;
}

LogRateLimit::Decision LogRateLimit::Admit(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!started_ || now - window_start_ >= window_) {
    started_ = true;
    window_start_ = now;
    loud_in_window_ = 0;
  }
  Decision decision;
  if (loud_in_window_ < per_window_) {
    ++loud_in_window_;
    decision.demoted = demoted_;
    demoted_ = 0;
  } else {
    decision.loud = false;
    ++demoted_;
  }
  return decision;
}

}  // namespace resweep::http
