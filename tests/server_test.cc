#include "coordinator/server.h"

#include <gtest/gtest.h>

namespace resweep {
namespace {

TEST(ListenAddress, OnlyLoopbackIsLoopback) {
  EXPECT_TRUE(IsLoopbackListenAddress("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackListenAddress("127.8.9.10:0"));
  EXPECT_TRUE(IsLoopbackListenAddress("localhost:50051"));
  EXPECT_TRUE(IsLoopbackListenAddress("[::1]:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("[::]:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("10.0.0.5:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("127.0.0.1.example.com:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("coord.example:50051"));
}

}  // namespace
}  // namespace resweep
