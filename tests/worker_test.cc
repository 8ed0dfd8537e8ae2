#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <torch/torch.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "common/run_config_json.h"
#include "tests/test_util.h"
#include "worker/fault.h"
#include "worker/log_tail.h"
#include "worker/trainer_log.h"
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

// GPU slots without a GPU: the machine is described to ResolveDevices.
TEST(ResolveDevices, GivesEachGpuRunsPerGpuSlots) {
  auto all = ResolveDevices("all", 1, /*runs_per_gpu=*/3, /*available_gpus=*/2);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(*all,
            (std::vector<std::string>{"cuda:0", "cuda:0", "cuda:0", "cuda:1", "cuda:1", "cuda:1"}));
  auto automatic = ResolveDevices("auto", 5, 2, 1);
  ASSERT_TRUE(automatic.ok());
  EXPECT_EQ(*automatic, (std::vector<std::string>{"cuda:0", "cuda:0"}));
  auto listed = ResolveDevices("cuda:1", 1, 4, 2);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, std::vector<std::string>(4, "cuda:1"));
  // CPU slots follow --slots, not --runs-per-gpu.
  auto cpu = ResolveDevices("auto", 2, 4, 0);
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ(*cpu, (std::vector<std::string>{"cpu", "cpu"}));
  // A GPU named twice, and no runs per GPU at all, are refused with the flag's name.
  auto twice = ResolveDevices("cuda:0,cuda:0", 1, 1, 1);
  EXPECT_EQ(twice.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(twice.status().message().find("--runs-per-gpu"), std::string::npos);
  auto zero = ResolveDevices("all", 1, 0, 1);
  EXPECT_NE(zero.status().message().find("--runs-per-gpu"), std::string::npos);
}

TEST(DataRootProblem, NamesAMissingFolderOrAFile) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("file"), "x");
  EXPECT_FALSE(DataRootProblem(dir.path()).has_value());
  EXPECT_EQ(DataRootProblem(dir.File("missing")), dir.File("missing") + " does not exist");
  EXPECT_EQ(DataRootProblem(dir.File("file")), dir.File("file") + " is not a directory");
}

// Issue 8 item 1: failures of this host (data, devices, mounts, memory, no progress)
// are host faults; the run's own (divergence, invalid config) are run faults.
TEST(ClassifyFailure, SeparatesHostFaultsFromRunFaults) {
  const auto training = [](const Status& st) {
    return ClassifyFailure(st, FailureOrigin::kTraining);
  };
  for (const Status& st :
       {NotFoundError("/data/cifar10: no such directory"), InternalError("LibTorch: CUDA error"),
        UnavailableError("checkpoint directory /ckpt/run: Not a directory"),
        ResourceExhaustedError("LibTorch: CUDA out of memory"),
        PermissionDeniedError("/data: permission denied")}) {
    EXPECT_EQ(training(st).fault, FaultKind::kHost) << st.ToString();
    EXPECT_FALSE(training(st).checkpoint_unusable) << st.ToString();
  }
  EXPECT_EQ(training(InvalidArgumentError("diverged: training loss is nan")).fault,
            FaultKind::kRun);
  EXPECT_FALSE(training(InvalidArgumentError("diverged")).retryable);
  // The checkpoint could not be read: the run's, forgotten, another attempt.
  const FailureClass bad_checkpoint =
      ClassifyFailure(DataLossError("checkpoint checksum mismatch"), FailureOrigin::kResume, true);
  EXPECT_EQ(bad_checkpoint.fault, FaultKind::kRun);
  EXPECT_TRUE(bad_checkpoint.retryable);
  EXPECT_TRUE(bad_checkpoint.checkpoint_unusable);
  // A data set file that fails to read is this host's I/O: the checkpoint is kept.
  const FailureClass unreadable =
      training(DataLossError("/data/cifar/data_batch_2.bin: read error"));
  EXPECT_EQ(unreadable.fault, FaultKind::kHost);
  EXPECT_FALSE(unreadable.checkpoint_unusable);
  // A config the worker proves invalid is the run's fault whatever the code.
  EXPECT_EQ(ClassifyFailure(NotFoundError("x"), FailureOrigin::kConfig).fault, FaultKind::kRun);
  EXPECT_EQ(ClassifyFailure(CancelledError("stopped"), FailureOrigin::kNoProgress).fault,
            FaultKind::kHost);
  // A device error while a checkpoint is loaded onto the GPU is the host's, and keeps
  // the checkpoint; a malformed archive is the checkpoint's own fault.
  EXPECT_EQ(CheckpointLoadError("CUDA out of memory. Tried to allocate 20.00 MiB").code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(CheckpointLoadError("CUDA error: an illegal memory access was encountered").code(),
            StatusCode::kInternal);
  EXPECT_EQ(CheckpointLoadError("PytorchStreamReader failed reading zip archive").code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(ClassifyFailure(CheckpointLoadError("CUDA error: unspecified launch failure"),
                            FailureOrigin::kTraining)
                .fault,
            FaultKind::kHost);
  // The sweep's own time limit is the run's: it must not quarantine the worker.
  const FailureClass limit = ClassifyFailure(CancelledError("stopped"), FailureOrigin::kRunLimit);
  EXPECT_EQ(limit.fault, FaultKind::kRun);
  EXPECT_TRUE(limit.retryable);
  EXPECT_FALSE(limit.checkpoint_unusable);
}

TEST(LogTail, KeepsTheNewestFortyLines) {
  LogTail tail;
  for (int i = 0; i < 100; ++i) tail.Add("line " + std::to_string(i));
  EXPECT_EQ(tail.lines(), 40u);
  std::string expected;
  for (int i = 60; i < 100; ++i) expected += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(tail.Text(), expected);
}

TEST(LogTail, KeepsTheNewestLinesThatFitIn8KiB) {
  LogTail tail;
  for (int i = 0; i < 20; ++i) tail.Add(std::string(999, 'a' + i));  // 1,000 bytes a line
  // 8 lines are 8,000 bytes; a 9th would pass 8,192.
  std::string expected;
  for (int i = 12; i < 20; ++i) expected += std::string(999, 'a' + i) + "\n";
  EXPECT_TRUE(tail.Text() == expected);
  // A line too long to fit alone is cut, and is all that is left.
  tail.Add(std::string(20000, 'z'));
  const std::string text = tail.Text();
  EXPECT_EQ(text.size(), 8192u);
  EXPECT_TRUE(text == std::string(8192 - 6, 'z') + "[...]\n") << text.substr(text.size() - 20);
  // Smaller limits hold too.
  LogTail small(3, 64);
  for (int i = 0; i < 10; ++i) small.Add("0123456789abcdef0123456789");  // 27 bytes a line
  EXPECT_EQ(small.Text(),
            std::string("0123456789abcdef0123456789\n") + "0123456789abcdef0123456789\n");
}

TEST(LogTail, SplitsLinesAndKeepsTheTextValidUtf8) {
  LogTail tail;
  tail.Add("first\nsecond\r\nthird\n");
  EXPECT_EQ(tail.Text(), "first\nsecond\nthird\n");
  LogTail bytes;
  // A stray continuation byte, an overlong '/', a lone surrogate, a truncated sequence.
  bytes.Add("caf\xC3\xA9 \x80 \xC0\xAF \xED\xA0\x80 \xE2\x82");
  EXPECT_EQ(bytes.Text(), "caf\xC3\xA9 ? ?? ??? ??\n");
  // Cut inside a long line of two-byte characters: never half a character.
  LogTail cut(40, 100);
  std::string accents;
  for (int i = 0; i < 200; ++i) accents += "\xC3\xA9";
  cut.Add(accents);
  const std::string text = cut.Text();
  ASSERT_LE(text.size(), 100u);
  const std::string kept = text.substr(0, text.size() - std::string("[...]\n").size());
  EXPECT_EQ(kept.size() % 2, 0u);
  EXPECT_EQ(kept, accents.substr(0, kept.size()));
}

TEST(TrainerLogCapture, EachThreadsLinesGoToItsOwnTailOnly) {
  LogTail a, b;
  std::atomic<int> ready{0};
  auto slot = [&](LogTail* tail, const std::string& name) {
    ScopedTrainerLogCapture capture(tail);
    ++ready;
    while (ready < 2) std::this_thread::yield();  // both capture at once
    for (int i = 0; i < 50; ++i) TrainerLogf(TrainerLogLevel::kDebug, name, " ", i);
  };
  std::thread ta(slot, &a, "run-a"), tb(slot, &b, "run-b");
  TrainerLog(TrainerLogLevel::kInfo, "not a run's line");  // this thread captures nothing
  ta.join();
  tb.join();
  EXPECT_EQ(a.lines(), 40u);
  EXPECT_EQ(b.lines(), 40u);
  EXPECT_EQ(a.Text().find("run-b"), std::string::npos);
  EXPECT_EQ(b.Text().find("run-a"), std::string::npos);
  EXPECT_EQ(a.Text().find("not a run's line"), std::string::npos);
  EXPECT_NE(a.Text().find("[debug] run-a 49\n"), std::string::npos) << a.Text();
  // Captures nest; a thread without one captures nothing.
  LogTail outer, inner;
  {
    ScopedTrainerLogCapture o(&outer);
    {
      ScopedTrainerLogCapture i(&inner);
      TrainerLog(TrainerLogLevel::kWarn, "inner");
    }
    TrainerLog(TrainerLogLevel::kError, "outer");
  }
  TrainerLog(TrainerLogLevel::kInfo, "nobody's");
  EXPECT_EQ(inner.lines(), 1u);
  EXPECT_NE(inner.Text().find("[warning] inner"), std::string::npos);
  EXPECT_EQ(outer.lines(), 1u);
  EXPECT_NE(outer.Text().find("[error] outer"), std::string::npos);
}

// A coordinator that leases two runs whose data sets do not exist, and records the
// FailRun reports.
class FailingRunsCoordinator final : public v1::Coordinator::Service {
 public:
  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest*,
                              v1::RegisterWorkerResponse* response) override {
    response->set_worker_id("w-1");
    response->set_lease_ms(30000);
    response->set_heartbeat_ms(1000);
    return grpc::Status::OK;
  }
  grpc::Status AcquireRun(grpc::ServerContext*, const v1::AcquireRunRequest*,
                          v1::AcquireRunResponse* response) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (leased_ >= 2) return grpc::Status::OK;  // nothing queued
    const std::string run_id = leased_++ == 0 ? "run-a" : "run-b";
    RunConfig config;
    config.dataset.kind = "cifar10";
    config.dataset.path = "/nonexistent/" + run_id;
    response->set_has_run(true);
    auto* lease = response->mutable_lease();
    lease->set_run_id(run_id);
    lease->set_attempt(1);
    lease->set_config_json(RunConfigToCanonicalJson(config));
    lease->set_seed(1);
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*,
                         v1::HeartbeatResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status FailRun(grpc::ServerContext*, const v1::FailRunRequest* request,
                       v1::FailRunResponse*) override {
    std::lock_guard<std::mutex> lock(mutex_);
    failed_[request->run_id()] = *request;
    done_.notify_all();
    return grpc::Status::OK;
  }

  // The FailRun reports by run, once both came (or after 60 s).
  std::map<std::string, v1::FailRunRequest> WaitForBothFailures() {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait_for(lock, std::chrono::seconds(60), [&] { return failed_.size() == 2; });
    return failed_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  int leased_ = 0;
  std::map<std::string, v1::FailRunRequest> failed_;
};

TEST(Worker, AFailedRunIsReportedWithItsOwnTrainerLogTail) {
  FailingRunsCoordinator service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_GT(port, 0);

  testing::TempDir data_root;
  WorkerOptions options;
  options.coordinator = "127.0.0.1:" + std::to_string(port);
  options.data_root = data_root.path();
  options.allow_absolute_data_paths = true;  // the runs name missing absolute folders
  options.devices = {"cpu", "cpu"};          // two slots: the runs may fail at the same time
  options.poll_ms = 50;
  Worker worker(options);
  Status result;
  std::thread running([&] { result = worker.Run(); });
  const auto failed = service.WaitForBothFailures();
  worker.Stop();
  running.join();
  server->Shutdown();
  EXPECT_TRUE(result.ok()) << result.ToString();

  ASSERT_EQ(failed.size(), 2u);
  for (const auto& [run_id, request] : failed) {
    const std::string other = run_id == "run-a" ? "run-b" : "run-a";
    EXPECT_NE(request.reason().find("/nonexistent/" + run_id), std::string::npos)
        << request.reason();
    // The trainer's lines of this run, and none of the other's.
    EXPECT_NE(request.log_tail().find("[info] loading cifar10 from /nonexistent/" + run_id),
              std::string::npos)
        << request.log_tail();
    EXPECT_EQ(request.log_tail().find(other), std::string::npos) << request.log_tail();
    EXPECT_LE(request.log_tail().size(), 8192u);
  }
}

}  // namespace
}  // namespace resweep
