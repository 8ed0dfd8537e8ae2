// The newest lines of a log, bounded in lines and bytes: what a failed run's report
// carries to the coordinator (FailRunRequest.log_tail).
#pragma once

#include <cstddef>
#include <deque>
#include <string>

namespace resweep {

class LogTail {
 public:
  static constexpr size_t kDefaultMaxLines = 40;
  static constexpr size_t kDefaultMaxBytes = 8 * 1024;

  explicit LogTail(size_t max_lines = kDefaultMaxLines, size_t max_bytes = kDefaultMaxBytes);

  // Appends `text` as one line, or several when it holds newlines; the oldest lines
  // go once there are more than max_lines or Text() would exceed max_bytes. Bytes
  // that are not UTF-8 become '?', so that Text() fits a protobuf string; a line too
  // long to fit alone is cut, ending in "[...]". Not thread-safe: one thread at a time.
  void Add(const std::string& text);
  // The lines, oldest first, each ending in '\n': at most max_lines lines and
  // max_bytes bytes, valid UTF-8.
  std::string Text() const;
  size_t lines() const { return lines_.size(); }

 private:
  void AddLine(std::string line);

  const size_t max_lines_;
  const size_t max_bytes_;
  std::deque<std::string> lines_;
  size_t bytes_ = 0;  // of Text()
};

}  // namespace resweep
