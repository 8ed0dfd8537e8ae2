#include "coordinator/server.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "coordinator/service.h"
#include "resweep/v1/resweep.grpc.pb.h"
#include "tests/test_util.h"

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

// Long-poll AcquireRun through a real coordinator (in this process) over loopback.
class LongPollTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CoordinatorOptions options;
    options.listen = "127.0.0.1:0";
    options.db_path = dir_.File("c.db");
    options.artifact_sweep_ms = 0;
    options.scheduler.lease_ms = 10000;
    ASSERT_TRUE(server_.Start(options).ok());
    stub_ = v1::Coordinator::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server_.port()), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::RegisterWorkerRequest req;
    req.set_name("w");
    req.add_devices("cpu");
    v1::RegisterWorkerResponse resp;
    ASSERT_TRUE(stub_->RegisterWorker(&ctx, req, &resp).ok());
    worker_id_ = resp.worker_id();
  }

  struct Reply {
    grpc::Status status;
    v1::AcquireRunResponse response;
    bool seen_parked = false;  // the call was seen parked before its reply came
  };
  // AcquireRun with `wait_ms`, on another thread.
  std::future<Reply> Acquire(int wait_ms) {
    return std::async(std::launch::async, [this, wait_ms] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
      v1::AcquireRunRequest req;
      req.set_worker_id(worker_id_);
      req.set_slot(0);
      req.set_wait_ms(wait_ms);
      Reply reply;
      reply.status = stub_->AcquireRun(&ctx, req, &reply.response);
      return reply;
    });
  }
  // Waits until the call is parked, or has its reply; says which.
  bool SeenParked(std::future<Reply>& reply) {
    while (reply.wait_for(std::chrono::milliseconds(5)) != std::future_status::ready) {
      if (server_.parked_acquires() == 1) return true;
    }
    return false;
  }
  void SubmitSweep() {
    grpc::ClientContext ctx;
    v1::SubmitSweepRequest req;
    req.set_spec_yaml("name: lp\ntrainer: {kind: synthetic}\ntrain: {epochs: 1}\n");
    req.set_source_name("lp.yaml");
    v1::SubmitSweepResponse resp;
    ASSERT_TRUE(stub_->SubmitSweep(&ctx, req, &resp).ok());
  }

  testing::TempDir dir_;
  CoordinatorServer server_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
  std::string worker_id_;
};

TEST_F(LongPollTest, AParkedAcquireIsAnsweredWithARunSubmittedWhileItWaits) {
  auto pending = Acquire(CoordinatorService::kMaxAcquireWaitMs);
  ASSERT_TRUE(SeenParked(pending));
  SubmitSweep();
  Reply reply = pending.get();
  ASSERT_TRUE(reply.status.ok()) << reply.status.error_message();
  EXPECT_TRUE(reply.response.long_poll());
  EXPECT_TRUE(reply.response.has_run());
  EXPECT_FALSE(reply.response.lease().run_id().empty());
  EXPECT_EQ(server_.parked_acquires(), 0u);
}

TEST_F(LongPollTest, WithNothingQueuedItIsAnsweredAtItsBoundWithNoRun) {
  auto pending = Acquire(2000);
  EXPECT_TRUE(SeenParked(pending));
  Reply reply = pending.get();
  ASSERT_TRUE(reply.status.ok()) << reply.status.error_message();
  EXPECT_TRUE(reply.response.long_poll());
  EXPECT_FALSE(reply.response.has_run());
  EXPECT_EQ(server_.parked_acquires(), 0u);
}

TEST_F(LongPollTest, WithoutAWaitItIsAnsweredAtOnceAsBefore) {
  auto pending = Acquire(0);
  EXPECT_FALSE(SeenParked(pending));
  Reply reply = pending.get();
  ASSERT_TRUE(reply.status.ok()) << reply.status.error_message();
  EXPECT_FALSE(reply.response.has_run());
  // A run queued now is there for the next ask.
  SubmitSweep();
  reply = Acquire(0).get();
  ASSERT_TRUE(reply.status.ok());
  EXPECT_TRUE(reply.response.has_run());
}

TEST_F(LongPollTest, AParkedAcquireIsAnsweredAtShutdown) {
  auto pending = Acquire(CoordinatorService::kMaxAcquireWaitMs);
  ASSERT_TRUE(SeenParked(pending));
  // A long grace: without answering it, shutdown would wait for it, then cancel it.
  server_.Shutdown(30000);
  Reply reply = pending.get();
  ASSERT_TRUE(reply.status.ok()) << reply.status.error_message();
  EXPECT_FALSE(reply.response.has_run());
}

}  // namespace
}  // namespace resweep
