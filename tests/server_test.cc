#include "coordinator/server.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "coordinator/database_filesystem.h"
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

// A database on a network filesystem is refused before anything is created there.
constexpr int64_t kNfsMagic = 0x6969;
constexpr int64_t kExt4Magic = 0xEF53;

TEST(DatabaseFilesystem, NetworkAndClusterFilesystemsAreNamedAndLocalOnesAreNot) {
  EXPECT_EQ(NetworkFilesystemName(kNfsMagic), "NFS");
  EXPECT_EQ(NetworkFilesystemName(0x0BD00BD0), "Lustre");
  EXPECT_EQ(NetworkFilesystemName(0x47504653), "GPFS (IBM Spectrum Scale)");
  EXPECT_EQ(NetworkFilesystemName(0xFF534D42), "CIFS");
  // f_type is a signed word on some ABIs: CIFS's magic then reads negative.
  EXPECT_EQ(NetworkFilesystemName(static_cast<int32_t>(0xFF534D42)), "CIFS");
  EXPECT_EQ(NetworkFilesystemName(kExt4Magic), std::nullopt);
  EXPECT_EQ(NetworkFilesystemName(0x01021994), std::nullopt);  // tmpfs
  EXPECT_EQ(NetworkFilesystemName(0x58465342), std::nullopt);  // XFS
}

TEST(DatabaseFilesystem, TheDatabasesDirectoryIsWhatIsLookedUp) {
  std::vector<std::string> asked;
  auto lookup = [&](const std::string& path) -> StatusOr<int64_t> {
    asked.push_back(path);
    return kNfsMagic;
  };
  const Status st = CheckDatabaseOnLocalFilesystem("/home/alice/sweeps.db", lookup);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("/home/alice/sweeps.db"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("NFS"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("--allow-network-filesystem"), std::string::npos) << st.message();
  EXPECT_TRUE(CheckDatabaseOnLocalFilesystem("sweeps.db", lookup).code() ==
              StatusCode::kFailedPrecondition);
  EXPECT_EQ(asked, (std::vector<std::string>{"/home/alice", "."}));
  // A directory that cannot be looked up is left to opening the database to report.
  EXPECT_TRUE(
      CheckDatabaseOnLocalFilesystem("/nowhere/x.db", [](const std::string&) -> StatusOr<int64_t> {
        return UnavailableError("statfs /nowhere: No such file or directory");
      }).ok());
}

TEST(DatabaseFilesystem, TheRealStatfsFindsThisTestsTemporaryDirectoryLocal) {
  testing::TempDir dir;
  auto f_type = StatfsFilesystemType(dir.path());
  ASSERT_TRUE(f_type.ok()) << f_type.status().ToString();
  EXPECT_TRUE(CheckDatabaseOnLocalFilesystem(dir.File("c.db")).ok());
  EXPECT_FALSE(StatfsFilesystemType(dir.File("missing/dir")).ok());
}

CoordinatorOptions OptionsOnFakeNfs(const testing::TempDir& dir) {
  CoordinatorOptions options;
  options.listen = "127.0.0.1:0";
  options.db_path = dir.File("c.db");
  options.artifact_sweep_ms = 0;
  options.statistics_refresh_ms = 0;
  options.filesystem_type_lookup = [](const std::string&) -> StatusOr<int64_t> {
    return kNfsMagic;
  };
  return options;
}

TEST(DatabaseFilesystem, TheCoordinatorRefusesADatabaseOnNfsAndCreatesNothing) {
  testing::TempDir dir;
  CoordinatorServer server;
  const Status st = server.Start(OptionsOnFakeNfs(dir));
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("network filesystem (NFS"), std::string::npos) << st.message();
  EXPECT_FALSE(std::filesystem::exists(dir.File("c.db")));
  EXPECT_FALSE(std::filesystem::exists(dir.File("c.db.lock")));
}

TEST(DatabaseFilesystem, AllowNetworkFilesystemOpensItAnyway) {
  testing::TempDir dir;
  CoordinatorOptions options = OptionsOnFakeNfs(dir);
  options.allow_network_filesystem = true;
  CoordinatorServer server;
  const Status st = server.Start(options);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_GT(server.port(), 0);
  EXPECT_TRUE(std::filesystem::exists(dir.File("c.db")));
  server.Shutdown(0);
}

}  // namespace
}  // namespace resweep
