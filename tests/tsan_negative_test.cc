// Deliberate data races, built only into the ThreadSanitizer build
// (-DRESWEEP_TSAN_NEGATIVE_TESTS=ON, set by scripts/tsan.sh) and never run by ctest.
// scripts/tsan.sh runs each test alone before the real suites and requires TSan to
// report it (exit code 66, a data-race report naming the racing project functions):
// this shows that scripts/tsan.supp and scripts/tsan-ignorelist.txt, which silence
// gRPC's own uninstrumented callback machinery, do not hide a race in project code
// that runs on gRPC's callback threads. A test here that passes means TSan missed
// the race, and the script fails.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/scheduler.h"
#include "coordinator/service.h"
#include "coordinator/sqlite_store.h"
#include "resweep/v1/resweep.grpc.pb.h"
#include "tests/forwarding_store.h"
#include "tests/test_util.h"

namespace resweep {
namespace {

// A gRPC server on a free loopback port for `service`, and a stub to it.
class LoopbackServer {
 public:
  explicit LoopbackServer(grpc::Service* service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
  }
  ~LoopbackServer() { server_->Shutdown(); }
  bool started() const { return server_ != nullptr && port_ > 0; }
  std::unique_ptr<v1::Coordinator::Stub> NewStub() const {
    return v1::Coordinator::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                        grpc::InsecureChannelCredentials()));
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// `calls` ListWorkers calls from each of `threads` client threads at once.
void CallListWorkersConcurrently(const LoopbackServer& server, int threads, int calls) {
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&server, calls] {
      auto stub = server.NewStub();
      for (int i = 0; i < calls; ++i) {
        grpc::ClientContext ctx;
        v1::ListWorkersRequest req;
        v1::ListWorkersResponse resp;
        EXPECT_TRUE(stub->ListWorkers(&ctx, req, &resp).ok());
      }
    });
  }
  for (auto& c : clients) c.join();
}

// RACE: every call increments `calls_` with no lock, on whichever gRPC callback
// thread runs it; concurrent calls race with each other. Both racing stacks are
// this handler under gRPC's inline handler code (grpcpp) and libgrpc++.
class RacyHandlerService final : public v1::Coordinator::CallbackService {
 public:
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest*,
                                        v1::ListWorkersResponse*) override {
    ++calls_;
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  int64_t calls_ = 0;
};

TEST(TsanNegative, RaceBetweenTwoGrpcHandlers) {
  RacyHandlerService service;
  LoopbackServer server(&service);
  ASSERT_TRUE(server.started());
  CallListWorkersConcurrently(server, 4, 50);
}

// RACE: the real service, scheduler and SQLite store, with a store that counts
// listings in a member no lock guards. A ListWorkers call reaches it through
// CoordinatorService::ListWorkers and the scheduler (under the scheduler's lock);
// the test's own thread resets it at the same time without that lock.
class RacyStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  StatusOr<std::vector<WorkerRecord>> ListWorkers() override {
    ++listings_;
    return ForwardingStore::ListWorkers();
  }
  void ForgetListings() { listings_ = 0; }

 private:
  int64_t listings_ = 0;
};

TEST(TsanNegative, RaceBetweenAHandlerInProjectCodeAndAProjectThread) {
  testing::TempDir dir;
  auto sqlite = OpenSqliteStore(dir.File("c.db"));
  ASSERT_TRUE(sqlite.ok()) << sqlite.status().ToString();
  RacyStore store(sqlite->get());
  SystemClock clock;
  Scheduler scheduler(&store, &clock, SchedulerOptions{});
  CoordinatorService service(&scheduler, /*tokens=*/nullptr);
  {
    LoopbackServer server(&service);
    ASSERT_TRUE(server.started());
    std::atomic<bool> done{false};
    std::thread resetter([&] {
      while (!done.load()) {
        store.ForgetListings();
        std::this_thread::yield();
      }
    });
    CallListWorkersConcurrently(server, 1, 50);
    done = true;
    resetter.join();
  }  // the server has stopped: no call in flight
  service.StopBatcher();
}

}  // namespace
}  // namespace resweep
