// The corpus of broken sweep files under tests/corpus/sweeps: each first line says
// "# expect: <text>", the text its error must contain. Each is refused with an error
// naming the file, and nothing is queued.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/sweep_spec.h"
#include "coordinator/scheduler.h"
#include "coordinator/sqlite_store.h"
#include "tests/test_util.h"

namespace resweep {
namespace {

using testing::FakeClock;
using testing::ReadFile;
using testing::TempDir;

std::vector<std::string> CorpusFiles() {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(std::string(RESWEEP_SOURCE_DIR) +
                                                           "/tests/corpus/sweeps")) {
    files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string Expectation(const std::string& text) {
  const std::string tag = "# expect: ";
  if (text.rfind(tag, 0) != 0) return "";
  return text.substr(tag.size(), text.find('\n') - tag.size());
}

TEST(BadInput, EveryCorpusFileIsRefusedWithItsReason) {
  const auto files = CorpusFiles();
  ASSERT_GE(files.size(), 15u);
  for (const auto& path : files) {
    const std::string expect = Expectation(ReadFile(path));
    ASSERT_FALSE(expect.empty()) << path << " has no '# expect:' first line";
    auto spec = LoadSweepSpecFile(path);
    ASSERT_FALSE(spec.ok()) << path << " was accepted";
    EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument) << path;
    EXPECT_NE(spec.status().message().find(expect), std::string::npos)
        << path << ": expected '" << expect << "' in:\n"
        << spec.status().message();
    EXPECT_NE(spec.status().message().find(path), std::string::npos) << spec.status().message();
  }
}

TEST(BadInput, NothingIsQueuedAndStoredDataIsUntouched) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  FakeClock clock;
  Scheduler scheduler(store->get(), &clock, SchedulerOptions());
  ASSERT_TRUE(
      scheduler.Submit("name: good\ntrainer: {kind: synthetic}\nseeds: 3\n", "good.yaml").ok());
  for (const auto& path : CorpusFiles()) {
    EXPECT_FALSE(scheduler.Submit(ReadFile(path), path).ok()) << path;
  }
  // A 50 MB file is refused on its size before any parsing.
  std::string huge = "name: huge\ndescription: \"";
  huge.append(50u << 20, 'x');
  huge += "\"\n";
  auto big = scheduler.Submit(huge, "huge.yaml");
  EXPECT_NE(big.status().message().find("limited to"), std::string::npos);
  auto sweeps = scheduler.ListSweeps();
  ASSERT_TRUE(sweeps.ok());
  ASSERT_EQ(sweeps->sweeps.size(), 1u);
  EXPECT_EQ(sweeps->sweeps[0].counts.total(), 3);
  EXPECT_EQ(sweeps->sweeps[0].counts.queued, 3);
}

}  // namespace
}  // namespace resweep
