#include <gtest/gtest.h>

#include <torch/torch.h>

#include "worker/worker.h"

namespace resweep {
namespace {

// Runs on machines with and without GPUs: the expectations follow what LibTorch sees.
TEST(ResolveDevices, ExpandsTheDeviceFlag) {
  const int gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  auto cpu = ResolveDevices("cpu", 3);
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ(*cpu, (std::vector<std::string>{"cpu", "cpu", "cpu"}));
  auto automatic = ResolveDevices("auto", 2);
  ASSERT_TRUE(automatic.ok());
  if (gpus == 0) {
    EXPECT_EQ(*automatic, (std::vector<std::string>{"cpu", "cpu"}));
    auto all = ResolveDevices("all", 1);
    EXPECT_EQ(all.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(all.status().message().find("no CUDA device"), std::string::npos);
  } else {
    EXPECT_EQ(automatic->size(), static_cast<size_t>(gpus));
    EXPECT_EQ(automatic->front(), "cuda:0");
  }
  // A device that does not exist, and things that are not devices.
  auto missing = ResolveDevices("cuda:" + std::to_string(gpus), 1);
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("does not exist"), std::string::npos)
      << missing.status().message();
  for (const char* bad : {"gpu0", "cuda:", "cuda:x", "cuda:-1", "cpu,cuda:0", ""}) {
    EXPECT_FALSE(ResolveDevices(bad, 1).ok()) << bad;
  }
}

}  // namespace
}  // namespace resweep
