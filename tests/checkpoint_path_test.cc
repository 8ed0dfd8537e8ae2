// The shared-checkpoint path rule both the coordinator and the workers apply.
#include "common/checkpoint_path.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace resweep {
namespace {

TEST(CheckpointPath, RunIdsAreLowercaseHex) {
  EXPECT_TRUE(IsValidRunId("0123456789abcdef0123"));
  for (const std::string& bad :
       std::vector<std::string>{"", "..", ".", "ABC", "ab/cd", "ab cd", std::string(65, 'a'),
                                std::string("ab\0cd", 5)}) {
    EXPECT_FALSE(IsValidRunId(bad)) << bad;
  }
}

TEST(CheckpointPath, OnlyAFileInTheRunsOwnDirectory) {
  const std::string run = "0123456789abcdef0123";
  EXPECT_TRUE(CheckSharedCheckpointPath(run, run + "/epoch-3-it-0.ckpt").ok());
  for (const std::string& bad : std::vector<std::string>{
           "", run, run + "/", run + "/.", run + "/..", run + "/a/b", "/" + run + "/x",
           "../" + run + "/x", "fedcba9876543210fedc/x", run + "x/y",
           run + "/" + std::string(256, 'x'), run + std::string("/a\0b", 4)}) {
    Status st = CheckSharedCheckpointPath(run, bad);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
  }
  // A run id that is not one is refused whatever the path.
  EXPECT_EQ(CheckSharedCheckpointPath("..", "../x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSharedCheckpointPath("", "/x").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace resweep
