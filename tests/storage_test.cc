// Storage trouble against a real coordinator: its database on a small tmpfs that
// the test fills up, then frees. Needs root (mount); skipped with the reason if not.
#include <sys/mount.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/cluster.h"

namespace resweep {
namespace {

using namespace resweep::testing;

std::string FirstLineOf(const std::string& s) { return s.substr(0, s.find('\n')); }

// A tmpfs of `size` mounted on a fresh directory for the life of the object.
class SmallTmpfs {
 public:
  explicit SmallTmpfs(const std::string& size) {
    const std::string options = "size=" + size + ",mode=0755";
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~SmallTmpfs() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  std::string File(const std::string& name) const { return dir_.File(name); }

  // Writes zeros to `name` until the filesystem is full; returns the bytes written.
  int64_t Fill(const std::string& name) {
    FILE* f = std::fopen(File(name).c_str(), "wb");
    if (!f) return 0;
    std::vector<char> block(4096, 0);
    int64_t written = 0;
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size()) {
      written += static_cast<int64_t>(block.size());
      if (std::fflush(f) != 0) break;
    }
    std::fclose(f);
    return written;
  }

 private:
  TempDir dir_;
  bool mounted_ = false;
  std::string error_;
};

// What grpc.health.v1.Health says for the coordinator's service at `address` (UNKNOWN
// when the call fails).
grpc::health::v1::HealthCheckResponse::ServingStatus Health(const std::string& address) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("resweep.v1.Coordinator");
  grpc::health::v1::HealthCheckResponse resp;
  if (!stub->Check(&ctx, req, &resp).ok()) return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  return resp.status();
}

constexpr const char* kSweepA = R"(name: before
trainer: {kind: synthetic, epoch_seconds: 0.05}
train: {epochs: 30, checkpoint_every: 5}
seeds: 2
)";
constexpr const char* kSweepB = R"(name: during
trainer: {kind: synthetic, epoch_seconds: 0.01}
train: {epochs: 2}
grid:
  model.depth_n: [1, 2, 3, 4, 5, 6, 7, 8]
seeds: 8
)";

TEST(Faults, DiskFullGetsAClearErrorKeepsReadsAndRecovers) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs (not root here)";
  SmallTmpfs disk("6m");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here: " << disk.error();
  Cluster cluster({.lease_seconds = 10, .heartbeat_seconds = 0.3, .db_path = disk.File("c.db")});
  cluster.StartCoordinator();
  const std::string first =
      FirstLineOf(cluster.Cli({"submit", cluster.WriteSweep("a.yaml", kSweepA)}));
  cluster.StartWorker("w");
  ASSERT_TRUE(WaitFor(
      [&] {
        auto rows = cluster.OpenDb()->ListSweepRuns(first, RunState::kRunning);
        return rows.ok() && !rows->empty() && rows->front().second.epoch >= 3;
      },
      20000))
      << cluster.Logs();

  // The disk fills up while a run is reporting epochs.
  const int64_t filled = disk.Fill("filler");
  std::printf("filled the 6 MiB tmpfs with %lld bytes of filler\n", static_cast<long long>(filled));
  std::string out, err;
  const int code = cluster.CliAs({}, {"submit", cluster.WriteSweep("b.yaml", kSweepB)}, &out, &err);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(err.find("disk full"), std::string::npos) << err;
  EXPECT_NE(err.find("RESOURCE_EXHAUSTED"), std::string::npos) << err;
  // Reads keep working, and the coordinator stays up.
  EXPECT_EQ(cluster.CliAs({}, {"status"}, &out, &err), 0) << err;
  EXPECT_NE(out.find("before"), std::string::npos) << out;
  EXPECT_EQ(out.find("during"), std::string::npos) << out;  // nothing half-written
  EXPECT_EQ(cluster.CliAs({}, {"results", first}, &out, &err), 0) << err;
  // The worker's reports fail meanwhile, and the health service says so (probes take
  // the coordinator out of rotation while its database cannot be written).
  EXPECT_TRUE(WaitFor(
      [&] {
        return Health(cluster.address()) == grpc::health::v1::HealthCheckResponse::NOT_SERVING;
      },
      15000))
      << cluster.Logs();
  EXPECT_TRUE(cluster.coordinator().running());
  const std::string coordinator_log = ReadFile(cluster.dir() + "/coordinator.log");
  EXPECT_NE(coordinator_log.find("disk full"), std::string::npos);

  // Space again: the same submission goes through, and the running sweep finishes
  // with every epoch recorded once (the worker retried its refused reports).
  ASSERT_EQ(std::remove(disk.File("filler").c_str()), 0);
  EXPECT_TRUE(WaitFor(
      [&] { return Health(cluster.address()) == grpc::health::v1::HealthCheckResponse::SERVING; },
      15000))
      << cluster.Logs();
  const std::string second =
      FirstLineOf(cluster.Cli({"submit", cluster.WriteSweep("b.yaml", kSweepB)}));
  EXPECT_FALSE(second.empty());
  int wait_code = 0;
  cluster.Cli({"wait", first, "--limit", "90", "--poll", "0.5"}, &wait_code);
  ASSERT_EQ(wait_code, 0) << cluster.Logs();
  auto db = cluster.OpenDb();
  auto rows = db->ListSweepRuns(first, std::nullopt);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  for (const auto& [link, run] : *rows) {
    EXPECT_EQ(run.state, RunState::kSucceeded) << run.error;
    auto epochs = db->ListEpochs(run.run_id);
    ASSERT_EQ(epochs->size(), 30u);
    for (int e = 0; e < 30; ++e) EXPECT_EQ((*epochs)[e].epoch, e + 1);
  }
  EXPECT_EQ(db->ListSweepRuns(second, std::nullopt)->size(), 64u);
}

}  // namespace
}  // namespace resweep
