// Helpers shared by the tests: temporary directories, a fake clock, file writers.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/clock.h"
#include "common/remove_tree.h"

namespace resweep::testing {

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "resweep-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { RemoveTree(path_).IgnoreError(); }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Wall and monotonic time move together with Advance(); StepWall() moves the wall
// clock alone (either way), as NTP or an operator would.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t NowMs() const override { return now_; }
  int64_t MonotonicMs() const override { return monotonic_; }
  void Advance(int64_t ms) {
    now_ += ms;
    monotonic_ += ms;
  }
  void StepWall(int64_t ms) { now_ += ms; }

 private:
  int64_t now_;
  int64_t monotonic_ = 5'000'000;
};

inline void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace resweep::testing
