// Security against real processes: role tokens, TLS and mutual TLS. Every refusal
// is checked for its gRPC status code, and the database must be unchanged by it.
#include <gtest/gtest.h>

#include <random>

#include "common/channel.h"
#include "resweep/v1/resweep.grpc.pb.h"
#include "tests/cluster.h"

namespace resweep {
namespace {

using namespace resweep::testing;

std::string RandomToken() {
  std::random_device rd;
  std::string t;
  for (int i = 0; i < 32; ++i) t += "0123456789abcdef"[rd() % 16];
  return t;
}

constexpr const char* kSweep = R"(name: guarded
trainer: {kind: synthetic, epoch_seconds: 0.02}
train: {epochs: 3}
seeds: 2
)";

// One SubmitSweep straight over gRPC with `security`: the status code the
// coordinator (or the TLS handshake) answers with.
grpc::StatusCode TrySubmit(const std::string& address, const ClientSecurity& security) {
  auto stub = v1::Coordinator::NewStub(MakeCoordinatorChannel({address, 8 << 20, security}));
  grpc::ClientContext ctx;
  PrepareCall(&ctx, security, 5000);
  v1::SubmitSweepRequest req;
  req.set_spec_yaml(kSweep);
  req.set_source_name("security_test");
  v1::SubmitSweepResponse resp;
  return stub->SubmitSweep(&ctx, req, &resp).error_code();
}

grpc::StatusCode TryList(const std::string& address, const ClientSecurity& security) {
  auto stub = v1::Coordinator::NewStub(MakeCoordinatorChannel({address, 8 << 20, security}));
  grpc::ClientContext ctx;
  PrepareCall(&ctx, security, 5000);
  v1::ListSweepsResponse resp;
  return stub->ListSweeps(&ctx, v1::ListSweepsRequest(), &resp).error_code();
}

grpc::StatusCode TryRegister(const std::string& address, const ClientSecurity& security) {
  auto stub = v1::Coordinator::NewStub(MakeCoordinatorChannel({address, 8 << 20, security}));
  grpc::ClientContext ctx;
  PrepareCall(&ctx, security, 5000);
  v1::RegisterWorkerRequest req;
  req.set_name("probe");
  v1::RegisterWorkerResponse resp;
  return stub->RegisterWorker(&ctx, req, &resp).error_code();
}

size_t SweepCount(Cluster& cluster) {
  auto sweeps = cluster.OpenDb()->ListSweeps();
  EXPECT_TRUE(sweeps.ok());
  return sweeps.ok() ? sweeps->size() : 0;
}

std::string ReadPem(const std::string& path) {
  std::string s = ReadFile(path);
  EXPECT_FALSE(s.empty()) << path;
  return s;
}

TEST(Security, RoleTokensDecideWhoMayCallWhat) {
  Cluster cluster({.lease_seconds = 10, .heartbeat_seconds = 0.3});
  const std::string admin = RandomToken(), worker = RandomToken(), reader = RandomToken();
  WriteFile(cluster.dir() + "/tokens",
            "# role token\nadmin " + admin + "\nworker " + worker + "\nread " + reader + "\n");
  for (const auto& [name, token] : {std::pair{"admin", admin},
                                    {"worker", worker},
                                    {"read", reader},
                                    {"wrong", RandomToken()}}) {
    WriteFile(cluster.dir() + "/" + name + ".token", token + "\n");
  }
  cluster.options().coordinator_args = {"--token-file", cluster.dir() + "/tokens"};
  cluster.StartCoordinator();
  const std::string address = cluster.address();

  // Straight over gRPC: the status code of each refusal.
  ClientSecurity none, wrong, as_worker, as_reader, as_admin;
  wrong.token = RandomToken();
  as_worker.token = worker;
  as_reader.token = reader;
  as_admin.token = admin;
  EXPECT_EQ(TrySubmit(address, none), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(TrySubmit(address, wrong), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(TrySubmit(address, as_worker), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(TrySubmit(address, as_reader), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(TryList(address, none), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(TryList(address, as_worker), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(TryList(address, as_reader), grpc::StatusCode::OK);
  EXPECT_EQ(TryRegister(address, as_admin), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(TryRegister(address, none), grpc::StatusCode::UNAUTHENTICATED);
  {
    // A message over the coordinator's 8 MiB limit is refused before any handler runs.
    auto stub = v1::Coordinator::NewStub(MakeCoordinatorChannel({address, 64 << 20, as_admin}));
    grpc::ClientContext ctx;
    PrepareCall(&ctx, as_admin, 20000);
    v1::SubmitSweepRequest req;
    req.set_spec_yaml(std::string(9 << 20, '#'));
    v1::SubmitSweepResponse resp;
    EXPECT_EQ(stub->SubmitSweep(&ctx, req, &resp).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  EXPECT_EQ(SweepCount(cluster), 0u);  // nothing refused reached the database
  EXPECT_TRUE(cluster.coordinator().running());

  // Through the CLI, as users meet it.
  std::string out, err;
  const std::string sweep = cluster.WriteSweep("s.yaml", kSweep);
  EXPECT_NE(cluster.CliAs({}, {"submit", sweep}, &out, &err), 0);
  EXPECT_NE(err.find("UNAUTHENTICATED"), std::string::npos) << err;
  EXPECT_NE(cluster.CliAs({"--token-file", cluster.dir() + "/wrong.token"}, {"status"}, &out, &err),
            0);
  EXPECT_NE(err.find("invalid token"), std::string::npos) << err;
  EXPECT_NE(cluster.CliAs({"--token-file", cluster.dir() + "/worker.token"}, {"submit", sweep},
                          &out, &err),
            0);
  EXPECT_NE(err.find("PERMISSION_DENIED"), std::string::npos) << err;
  EXPECT_EQ(SweepCount(cluster), 0u);

  cluster.set_cli_args({"--token-file", cluster.dir() + "/admin.token"});
  const std::string out_submit = cluster.Cli({"submit", sweep});
  const std::string sweep_id = out_submit.substr(0, out_submit.find('\n'));
  ASSERT_EQ(SweepCount(cluster), 1u);
  // A worker token may not cancel; the runs stay queued.
  EXPECT_NE(cluster.CliAs({"--token-file", cluster.dir() + "/worker.token"}, {"cancel", sweep_id},
                          &out, &err),
            0);
  EXPECT_NE(err.find("PERMISSION_DENIED"), std::string::npos) << err;
  EXPECT_NE(cluster.CliAs({"--token-file", cluster.dir() + "/read.token"}, {"cancel", sweep_id},
                          &out, &err),
            0);
  auto rows = cluster.OpenDb()->ListSweepRuns(sweep_id, std::nullopt);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  for (const auto& [link, run] : *rows) EXPECT_EQ(run.state, RunState::kQueued);
  // A read token may look.
  EXPECT_EQ(cluster.CliAs({"--token-file", cluster.dir() + "/read.token"}, {"status"}, &out, &err),
            0)
      << err;
  EXPECT_NE(out.find("guarded"), std::string::npos) << out;

  // A worker with a read token is refused; with the worker token it runs the sweep.
  cluster.StartWorker("reader", 1, {"--token-file", cluster.dir() + "/read.token"});
  cluster.StartWorker("real", 1, {"--token-file", cluster.dir() + "/worker.token"});
  int code = 0;
  cluster.Cli({"wait", sweep_id, "--limit", "60", "--poll", "0.3"}, &code);
  ASSERT_EQ(code, 0) << cluster.Logs();
  // GetCurves (`plot`) is a read: a read token may draw, a worker token may not.
  const std::string figure = cluster.dir() + "/curves.svg";
  EXPECT_EQ(cluster.CliAs({"--token-file", cluster.dir() + "/read.token"},
                          {"plot", sweep_id, "--out", figure}, &out, &err),
            0)
      << err;
  EXPECT_NE(cluster.CliAs({"--token-file", cluster.dir() + "/worker.token"},
                          {"plot", sweep_id, "--out", figure}, &out, &err),
            0);
  EXPECT_NE(err.find("PERMISSION_DENIED"), std::string::npos) << err;
  // The refused worker gives up and says so in its exit code and its log.
  EXPECT_EQ(cluster.worker(0).Wait(20000), 1) << cluster.Logs();
  EXPECT_NE(ReadFile(cluster.dir() + "/worker-reader.log").find("PERMISSION_DENIED"),
            std::string::npos)
      << cluster.Logs();
  // The token file was written with mode 0644: the coordinator warned about it.
  EXPECT_NE(ReadFile(cluster.dir() + "/coordinator.log").find("readable by other users"),
            std::string::npos);
  // No token appears in any log.
  for (const char* log : {"coordinator.log", "worker-reader.log", "worker-real.log"}) {
    const std::string text = ReadFile(cluster.dir() + "/" + log);
    for (const auto& token : {admin, worker, reader}) {
      EXPECT_EQ(text.find(token), std::string::npos) << log << " shows a token";
    }
  }
}

// Issue 8 items 9 and 3 over real gRPC: a worker id is usable only with the token
// that registered it, registrations per token are capped, and a repeated AcquireRun
// for a slot returns the lease the slot holds.
TEST(Security, AWorkerTokenCannotActAsAnotherWorker) {
  Cluster cluster({.lease_seconds = 10, .heartbeat_seconds = 0.3});
  const std::string admin = RandomToken(), first = RandomToken(), second = RandomToken();
  WriteFile(cluster.dir() + "/tokens",
            "admin " + admin + "\nworker " + first + "\nworker " + second + "\n");
  cluster.options().coordinator_args = {"--token-file", cluster.dir() + "/tokens",
                                        "--max-workers-per-identity", "2"};
  cluster.StartCoordinator();
  ClientSecurity as_admin, as_first, as_second;
  as_admin.token = admin;
  as_first.token = first;
  as_second.token = second;
  ASSERT_EQ(TrySubmit(cluster.address(), as_admin), grpc::StatusCode::OK);
  auto stub = [&](const ClientSecurity& security) {
    return v1::Coordinator::NewStub(MakeCoordinatorChannel({cluster.address(), 8 << 20, security}));
  };
  auto register_as = [&](const ClientSecurity& security, std::string* worker_id) {
    grpc::ClientContext ctx;
    PrepareCall(&ctx, security, 5000);
    v1::RegisterWorkerRequest req;
    req.set_name("w");
    req.add_devices("cpu");
    v1::RegisterWorkerResponse resp;
    const grpc::Status st = stub(security)->RegisterWorker(&ctx, req, &resp);
    if (worker_id) *worker_id = resp.worker_id();
    return st.error_code();
  };
  auto acquire_as = [&](const ClientSecurity& security, const std::string& worker_id, int slot,
                        v1::AcquireRunResponse* resp) {
    grpc::ClientContext ctx;
    PrepareCall(&ctx, security, 5000);
    v1::AcquireRunRequest req;
    req.set_worker_id(worker_id);
    req.set_slot(slot);
    return stub(security)->AcquireRun(&ctx, req, resp);
  };
  std::string mine, theirs;
  ASSERT_EQ(register_as(as_first, &mine), grpc::StatusCode::OK);
  ASSERT_EQ(register_as(as_second, &theirs), grpc::StatusCode::OK);

  // The first token's worker holds a lease; asking again for its slot returns it.
  v1::AcquireRunResponse leased, again;
  ASSERT_TRUE(acquire_as(as_first, mine, 0, &leased).ok());
  ASSERT_TRUE(leased.has_run());
  ASSERT_TRUE(acquire_as(as_first, mine, 0, &again).ok());
  EXPECT_EQ(again.lease().run_id(), leased.lease().run_id());
  EXPECT_EQ(again.lease().attempt(), leased.lease().attempt());
  v1::AcquireRunResponse no_slot;
  const grpc::Status bad_slot = acquire_as(as_first, mine, 1, &no_slot);
  EXPECT_EQ(bad_slot.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad_slot.error_message().find("slot"), std::string::npos) << bad_slot.error_message();

  // The second token, knowing the first worker's id (as `status` shows it), may not
  // lease, heartbeat, report, fail or release under it.
  v1::AcquireRunResponse stolen;
  EXPECT_EQ(acquire_as(as_second, mine, 0, &stolen).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  {
    grpc::ClientContext ctx;
    PrepareCall(&ctx, as_second, 5000);
    v1::HeartbeatRequest req;
    req.set_worker_id(mine);
    auto* l = req.add_leases();
    l->set_run_id(leased.lease().run_id());
    l->set_attempt(leased.lease().attempt());
    v1::HeartbeatResponse resp;
    EXPECT_EQ(stub(as_second)->Heartbeat(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    PrepareCall(&ctx, as_second, 5000);
    v1::FailRunRequest req;
    req.set_worker_id(mine);
    req.set_run_id(leased.lease().run_id());
    req.set_attempt(leased.lease().attempt());
    req.set_reason("hijacked");
    v1::FailRunResponse resp;
    EXPECT_EQ(stub(as_second)->FailRun(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    PrepareCall(&ctx, as_second, 5000);
    v1::ReleaseRunRequest req;
    req.set_worker_id(mine);
    req.set_run_id(leased.lease().run_id());
    req.set_attempt(leased.lease().attempt());
    v1::ReleaseRunResponse resp;
    EXPECT_EQ(stub(as_second)->ReleaseRun(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  // The run is still the first worker's, on its first attempt, and only it is leased.
  {
    auto db = cluster.OpenDb();
    auto run = db->GetRun(leased.lease().run_id());
    ASSERT_TRUE(run.ok() && run->has_value());
    EXPECT_EQ((*run)->worker_id, mine);
    EXPECT_EQ((*run)->attempt, 1);
    EXPECT_EQ((*run)->state, RunState::kLeased);
    EXPECT_EQ(*db->CountLeasesOf(mine), 1);
    EXPECT_EQ(*db->CountLeasesOf(theirs), 0);
  }
  // The first token's own heartbeat is accepted.
  {
    grpc::ClientContext ctx;
    PrepareCall(&ctx, as_first, 5000);
    v1::HeartbeatRequest req;
    req.set_worker_id(mine);
    v1::HeartbeatResponse resp;
    EXPECT_TRUE(stub(as_first)->Heartbeat(&ctx, req, &resp).ok());
  }
  // At most two live registrations per token: the third is refused, saying why;
  // another token is not affected.
  EXPECT_EQ(register_as(as_first, nullptr), grpc::StatusCode::OK);
  EXPECT_EQ(register_as(as_first, nullptr), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(register_as(as_second, nullptr), grpc::StatusCode::OK);
  EXPECT_TRUE(cluster.coordinator().running());
  EXPECT_EQ(ReadFile(cluster.dir() + "/coordinator.log").find(first), std::string::npos);
}

TEST(Security, TlsAndClientCertificatesFromTheRightCaOnly) {
  Cluster cluster({.lease_seconds = 10, .heartbeat_seconds = 0.3});
  const std::string certs = cluster.dir() + "/certs";
  std::string out, err;
  ASSERT_TRUE(MakeTestCerts(certs));
  const std::string admin = RandomToken(), worker = RandomToken();
  WriteFile(cluster.dir() + "/tokens", "admin " + admin + "\nworker " + worker + "\n");
  WriteFile(cluster.dir() + "/worker.token", worker);
  cluster.options().coordinator_args = {
      "--tls-cert",      certs + "/server.pem", "--tls-key",    certs + "/server.key",
      "--tls-client-ca", certs + "/ca.pem",     "--token-file", cluster.dir() + "/tokens"};
  cluster.StartCoordinator();
  const std::string address = cluster.address();

  ClientSecurity good;
  good.root_certs_pem = ReadPem(certs + "/ca.pem");
  good.cert_chain_pem = ReadPem(certs + "/client.pem");
  good.private_key_pem = ReadPem(certs + "/client.key");
  good.token = admin;

  ClientSecurity plaintext;  // no TLS at all
  plaintext.token = admin;
  ClientSecurity untrusting = good;  // does not trust the coordinator's CA
  untrusting.root_certs_pem = ReadPem(certs + "/other-ca.pem");
  ClientSecurity foreign_cert = good;  // client certificate from another CA
  foreign_cert.cert_chain_pem = ReadPem(certs + "/other-client.pem");
  foreign_cert.private_key_pem = ReadPem(certs + "/other-client.key");
  ClientSecurity no_cert = good;  // TLS without a client certificate
  no_cert.cert_chain_pem.clear();
  no_cert.private_key_pem.clear();
  ClientSecurity no_token = good;
  no_token.token.clear();

  EXPECT_EQ(TrySubmit(address, plaintext), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(TrySubmit(address, untrusting), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(TrySubmit(address, foreign_cert), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(TrySubmit(address, no_cert), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(TrySubmit(address, no_token), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(SweepCount(cluster), 0u);
  EXPECT_EQ(TrySubmit(address, good), grpc::StatusCode::OK);
  EXPECT_EQ(SweepCount(cluster), 1u);

  // The CLI and a worker over mutual TLS with their tokens.
  WriteFile(cluster.dir() + "/admin.token", admin);
  const std::vector<std::string> tls = {"--tls-ca",   certs + "/ca.pem",
                                        "--tls-cert", certs + "/client.pem",
                                        "--tls-key",  certs + "/client.key"};
  std::vector<std::string> admin_cli = tls;
  admin_cli.insert(admin_cli.end(), {"--token-file", cluster.dir() + "/admin.token"});
  cluster.set_cli_args(admin_cli);
  EXPECT_NE(cluster.Cli({"status"}).find("guarded"), std::string::npos);
  std::vector<std::string> worker_args = tls;
  worker_args.insert(worker_args.end(), {"--token-file", cluster.dir() + "/worker.token"});
  cluster.StartWorker("tls", 1, worker_args);
  int code = 0;
  cluster.Cli({"wait", "guarded", "--limit", "60", "--poll", "0.3"}, &code);
  ASSERT_EQ(code, 0) << cluster.Logs();
  // Each kind of TLS mismatch is named, without gRPC's own log lines (exit code 5).
  const std::string token_file = cluster.dir() + "/admin.token";
  struct Mismatch {
    std::vector<std::string> credentials;
    const char* says;
  };
  const std::vector<Mismatch> mismatches = {
      {{"--tls-ca", certs + "/other-ca.pem", "--tls-cert", certs + "/client.pem", "--tls-key",
        certs + "/client.key", "--token-file", token_file},
       "is not trusted by the CA given with --tls-ca"},
      {{"--token-file", token_file}, "speaks TLS but this client connected in plaintext"},
      {{"--tls-ca", certs + "/ca.pem", "--token-file", token_file},
       "requires a client certificate (mutual TLS)"},
      {{"--tls-ca", certs + "/ca.pem", "--tls-cert", certs + "/other-client.pem", "--tls-key",
        certs + "/other-client.key", "--token-file", token_file},
       "refused this client's certificate"},
  };
  for (const auto& m : mismatches) {
    EXPECT_EQ(cluster.CliAs(m.credentials, {"status"}, &out, &err), 5) << err;
    EXPECT_NE(err.find(m.says), std::string::npos) << err;
    EXPECT_EQ(err.find(".cc:"), std::string::npos) << "gRPC log line in: " << err;
    EXPECT_EQ(err.find("is resweep-coordinator running"), std::string::npos) << err;
  }
}

TEST(Security, ClientAgainstAPlaintextCoordinatorWithTlsIsToldSo) {
  Cluster cluster({});
  const std::string certs = cluster.dir() + "/certs";
  std::string out, err;
  ASSERT_TRUE(MakeTestCerts(certs));
  cluster.StartCoordinator();
  EXPECT_EQ(cluster.CliAs({"--tls-ca", certs + "/ca.pem"}, {"status"}, &out, &err), 5);
  EXPECT_NE(err.find("does not speak TLS"), std::string::npos) << err;
  EXPECT_EQ(err.find(".cc:"), std::string::npos) << "gRPC log line in: " << err;
}

}  // namespace
}  // namespace resweep
