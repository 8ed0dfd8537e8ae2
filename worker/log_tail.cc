#include "worker/log_tail.h"

#include <algorithm>

namespace resweep {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when there is none.
size_t Utf8SequenceLength(const std::string& s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b = byte(i);
  if (b < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    if (b == 0xE0) lo = 0xA0;  // no overlong forms
    if (b == 0xED) hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;  // nothing beyond U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return n;
}

std::string SanitizeUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      out.push_back('?');
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  return out;
}

// The longest prefix of valid UTF-8 `s` of at most `n` bytes that ends between
// characters.
std::string Utf8Prefix(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

constexpr char kCut[] = "[...]";

}  // namespace

LogTail::LogTail(size_t max_lines, size_t max_bytes)
    : max_lines_(std::max<size_t>(1, max_lines)),
      max_bytes_(std::max<size_t>(sizeof(kCut) + 1, max_bytes)) {}

void LogTail::Add(const std::string& text) {
  size_t start = 0;
  while (true) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      if (start < text.size() || start == 0) AddLine(text.substr(start));
      return;
    }
    AddLine(text.substr(start, end - start));
    start = end + 1;
  }
}

void LogTail::AddLine(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  line = SanitizeUtf8(line);
  if (line.size() + 1 > max_bytes_) {
    line = Utf8Prefix(line, max_bytes_ - 1 - (sizeof(kCut) - 1)) + kCut;
  }
  bytes_ += line.size() + 1;
  lines_.push_back(std::move(line));
  while (lines_.size() > max_lines_ || bytes_ > max_bytes_) {
    bytes_ -= lines_.front().size() + 1;
    lines_.pop_front();
  }
}

std::string LogTail::Text() const {
  std::string out;
  out.reserve(bytes_);
  for (const auto& line : lines_) {
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace resweep
