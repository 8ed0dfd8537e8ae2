// The coordinator's observability faces, against real processes over loopback: the
// gRPC health service (grpc.health.v1.Health), server reflection, the HTTP JSON API
// (--http, docs/http-api.md) with its security, and /metrics.
#include <gtest/gtest.h>

#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <random>
#include <set>
#include <string>

#include "common/channel.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "resweep/v1/resweep.grpc.pb.h"
#include "tests/cluster.h"
#include "tests/refusing_port.h"

namespace resweep {
namespace {

using namespace resweep::testing;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

std::shared_ptr<grpc::Channel> Plaintext(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

HealthCheckResponse::ServingStatus Check(grpc::health::v1::Health::Stub& health,
                                         const std::string& service,
                                         grpc::StatusCode* code = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HealthCheckRequest req;
  req.set_service(service);
  HealthCheckResponse resp;
  const grpc::Status status = health.Check(&ctx, req, &resp);
  if (code) *code = status.error_code();
  return resp.status();
}

// Watch streams the status: SERVING now, NOT_SERVING once the coordinator is told to
// stop (before its calls in flight are done); then it exits 0.
void ExpectWatchSaysNotServingOnceStopping(grpc::health::v1::Health::Stub& health,
                                           Cluster& cluster) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  HealthCheckRequest req;
  req.set_service("resweep.v1.Coordinator");
  auto watch = health.Watch(&ctx, req);
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);
  cluster.coordinator().Kill(SIGTERM);
  ASSERT_TRUE(watch->Read(&update)) << cluster.CoordinatorLog();
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  ctx.TryCancel();
  watch->Finish().IgnoreError();
  EXPECT_EQ(cluster.coordinator().Wait(20000), 0) << cluster.CoordinatorLog();
}

// With an HTTP face too: probes hear NOT_SERVING before it closes. A short lease: the
// reaper re-checks health every quarter lease, and Watch streams changes only.
TEST(Health, CheckAndWatchSayServingThenNotServingWhileShuttingDown) {
  Cluster cluster({.lease_seconds = 1});
  StartWithHttp(cluster);
  auto health = grpc::health::v1::Health::NewStub(Plaintext(cluster.address()));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(2500));
    HealthCheckRequest req;
    auto watch = health->Watch(&ctx, req);
    HealthCheckResponse update;
    ASSERT_TRUE(watch->Read(&update));
    EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);
    // About ten health rounds, no change: no other message until the deadline.
    EXPECT_FALSE(watch->Read(&update)) << "a second message: " << update.ShortDebugString();
    EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }

  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  EXPECT_EQ(Check(*health, "", &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(code, grpc::StatusCode::OK);
  EXPECT_EQ(Check(*health, "resweep.v1.Coordinator", &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(code, grpc::StatusCode::OK);
  Check(*health, "no.such.Service", &code);
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);

  ExpectWatchSaysNotServingOnceStopping(*health, cluster);
  const std::string log = cluster.CoordinatorLog();
  const size_t not_serving = log.find("health: NOT_SERVING (shutting down)");
  const size_t http_stopped = log.find("http: stopped");
  ASSERT_NE(not_serving, std::string::npos) << log;
  ASSERT_NE(http_stopped, std::string::npos) << log;
  EXPECT_LT(not_serving, http_stopped) << log;
}

// --health-listen: the health service alone, in plaintext and without a token, for
// probes that can do neither (Kubernetes' gRPC probes); it tells what the main port's
// says, NOT_SERVING from the start of a shutdown included, and serves nothing else.
TEST(Health, APlaintextHealthPortForProbesServesHealthAloneWithoutAToken) {
  Cluster cluster({});
  WriteFile(cluster.dir() + "/tokens", "admin " + std::string(64, 'a') + "\n");
  cluster.options().coordinator_args = {"--token-file",       cluster.dir() + "/tokens",
                                        "--health-listen",    "127.0.0.1:0",
                                        "--health-port-file", cluster.dir() + "/health-port"};
  cluster.StartCoordinator();
  const std::string health_address =
      "127.0.0.1:" + std::to_string(std::stoi(ReadFile(cluster.dir() + "/health-port")));
  auto health = grpc::health::v1::Health::NewStub(Plaintext(health_address));
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  EXPECT_EQ(Check(*health, "", &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(code, grpc::StatusCode::OK);
  EXPECT_EQ(Check(*health, "resweep.v1.Coordinator", &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(code, grpc::StatusCode::OK);

  // The coordinator's own calls are not there (and on the main port need the token).
  auto on_health_port = v1::Coordinator::NewStub(Plaintext(health_address));
  auto on_main_port = v1::Coordinator::NewStub(Plaintext(cluster.address()));
  for (auto* stub : {on_health_port.get(), on_main_port.get()}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListSweepsRequest req;
    v1::ListSweepsResponse resp;
    const grpc::Status status = stub->ListSweeps(&ctx, req, &resp);
    EXPECT_EQ(status.error_code(), stub == on_health_port.get() ? grpc::StatusCode::UNIMPLEMENTED
                                                                : grpc::StatusCode::UNAUTHENTICATED)
        << status.error_message();
  }

  ExpectWatchSaysNotServingOnceStopping(*health, cluster);
}

// One ServerReflectionInfo exchange asking for the service list; the names listed.
// Spoken with the generic stub (the reflection messages' generated code lives inside
// libgrpc++_reflection, without headers): the request is ServerReflectionRequest
// {list_services = ""} (field 7), the reply's list_services_response is field 6, a
// ListServiceResponse of ServiceResponse (field 1) with their name (field 1).
std::set<std::string> ListServicesByReflection(const std::string& address) {
  grpc::GenericStub stub(Plaintext(address));
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call =
      stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto step = [&cq](const char* what) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok)) << what;
    EXPECT_TRUE(ok) << what;
    return ok;
  };
  std::set<std::string> names;
  call->StartCall(nullptr);
  if (!step("start")) return names;
  const std::string request("\x3a\x00", 2);
  grpc::Slice slice(request);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, nullptr);
  if (!step("write")) return names;
  call->WritesDone(nullptr);
  if (!step("writes done")) return names;
  grpc::ByteBuffer in;
  call->Read(&in, nullptr);
  if (!step("read")) return names;
  grpc::Status status;
  call->Finish(&status, nullptr);
  step("finish");
  EXPECT_TRUE(status.ok()) << status.error_message();

  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(in.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  google::protobuf::UnknownFieldSet reply;
  EXPECT_TRUE(reply.ParseFromString(bytes));
  for (int i = 0; i < reply.field_count(); ++i) {
    if (reply.field(i).number() != 6) continue;
    google::protobuf::UnknownFieldSet list;
    EXPECT_TRUE(list.ParseFromString(reply.field(i).length_delimited()));
    for (int j = 0; j < list.field_count(); ++j) {
      google::protobuf::UnknownFieldSet service;
      EXPECT_TRUE(service.ParseFromString(list.field(j).length_delimited()));
      for (int k = 0; k < service.field_count(); ++k) {
        if (service.field(k).number() == 1) names.insert(service.field(k).length_delimited());
      }
    }
  }
  return names;
}

TEST(Reflection, ListsTheCoordinatorAndHealthServices) {
  Cluster cluster({});
  cluster.StartCoordinator();
  const auto names = ListServicesByReflection(cluster.address());
  EXPECT_TRUE(names.count("resweep.v1.Coordinator")) << ::testing::PrintToString(names);
  EXPECT_TRUE(names.count("grpc.health.v1.Health")) << ::testing::PrintToString(names);
  EXPECT_TRUE(names.count("grpc.reflection.v1alpha.ServerReflection"))
      << ::testing::PrintToString(names);
}

// ---------------------------------------------------------------- HTTP JSON API

constexpr const char* kSweep = R"(name: observed
trainer: {kind: synthetic, epoch_seconds: 0.01}
train: {epochs: 3}
grid:
  model.depth_n: [1, 2]
seeds: 2
)";

struct HttpAnswer {
  int status = 0;  // 0: no answer
  std::string body;
  nlohmann::json json;  // the body parsed (null when it is not JSON)
};

// A GET with `client` (httplib::Client or SSLClient), with the token if any.
template <typename Client>
HttpAnswer Get(Client& client, const std::string& path, const std::string& token = "") {
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  auto res = client.Get(path.c_str(), headers);
  HttpAnswer answer;
  if (!res) return answer;
  answer.status = res->status;
  answer.body = res->body;
  answer.json = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  return answer;
}

// The HTTP body parsed into `Message` by protobuf's JSON parser (which refuses field
// names the message does not have).
template <typename Message>
Message FromJson(const HttpAnswer& answer) {
  Message message;
  const auto status = google::protobuf::util::JsonStringToMessage(answer.body, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << answer.body;
  return message;
}

::testing::AssertionResult SameMessage(const google::protobuf::Message& http,
                                       const google::protobuf::Message& grpc) {
  if (google::protobuf::util::MessageDifferencer::Equals(http, grpc)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "HTTP:\n"
                                       << http.DebugString() << "gRPC:\n"
                                       << grpc.DebugString();
}

// A 400 naming `field`: in the message, and as "field" when given.
void ExpectBadParameter(httplib::Client& client, const std::string& path, const std::string& field,
                        bool field_key = true) {
  const HttpAnswer a = Get(client, path);
  EXPECT_EQ(a.status, 400) << path << ": " << a.body;
  ASSERT_TRUE(a.json.is_object()) << path << ": " << a.body;
  EXPECT_EQ(a.json.value("code", ""), "INVALID_ARGUMENT") << path;
  EXPECT_NE(a.json.value("message", "").find(field), std::string::npos) << path << ": " << a.body;
  if (field_key) EXPECT_EQ(a.json.value("field", ""), field) << path << ": " << a.body;
}

TEST(HttpApi, EveryEndpointAnswersWhatItsGrpcReplySays) {
  Cluster cluster({.lease_seconds = 10, .heartbeat_seconds = 0.3});
  const int http_port = StartWithHttp(cluster);
  cluster.StartWorker("w1");
  const std::string sweep_id = ShortId(SubmitSweep(cluster, "s.yaml", kSweep));
  int code = 0;
  cluster.Cli({"wait", sweep_id, "--limit", "60", "--poll", "0.2"}, &code);
  ASSERT_EQ(code, 0) << cluster.Logs();

  httplib::Client http("127.0.0.1", http_port);
  http.set_read_timeout(20, 0);
  auto stub = v1::Coordinator::NewStub(Plaintext(cluster.address()));
  auto ctx = [] {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return c;
  };

  {
    v1::ListSweepsResponse grpc_reply;
    ASSERT_TRUE(stub->ListSweeps(ctx().get(), {}, &grpc_reply).ok());
    const HttpAnswer a = Get(http, "/api/v1/sweeps");
    ASSERT_EQ(a.status, 200) << a.body;
    EXPECT_TRUE(SameMessage(FromJson<v1::ListSweepsResponse>(a), grpc_reply));
    // The gRPC JSON mapping's names, every field printed.
    EXPECT_TRUE(a.json.contains("nextPageToken")) << a.body;
    EXPECT_EQ(a.json["sweeps"][0].value("sweepId", ""), sweep_id) << a.body;
  }
  {
    v1::GetSweepRequest req;
    req.set_sweep_id(sweep_id);
    v1::GetSweepResponse grpc_reply;
    ASSERT_TRUE(stub->GetSweep(ctx().get(), req, &grpc_reply).ok());
    // By id and by name, as for gRPC.
    for (const std::string& which : {sweep_id, std::string("observed")}) {
      const HttpAnswer a = Get(http, "/api/v1/sweeps/" + which);
      ASSERT_EQ(a.status, 200) << a.body;
      EXPECT_TRUE(SameMessage(FromJson<v1::GetSweepResponse>(a), grpc_reply));
    }
  }
  {
    v1::GetResultsRequest req;
    req.set_sweep_id(sweep_id);
    v1::GetResultsResponse grpc_reply;
    ASSERT_TRUE(stub->GetResults(ctx().get(), req, &grpc_reply).ok());
    const HttpAnswer a = Get(http, "/api/v1/sweeps/" + sweep_id + "/results");
    ASSERT_EQ(a.status, 200) << a.body;
    EXPECT_TRUE(SameMessage(FromJson<v1::GetResultsResponse>(a), grpc_reply));
    EXPECT_EQ(grpc_reply.cells_size(), 2);
    req.set_last_k(2);
    ASSERT_TRUE(stub->GetResults(ctx().get(), req, &grpc_reply).ok());
    const HttpAnswer k2 = Get(http, "/api/v1/sweeps/" + sweep_id + "/results?last_k=2");
    EXPECT_TRUE(SameMessage(FromJson<v1::GetResultsResponse>(k2), grpc_reply));
  }
  {
    v1::ListRunsRequest req;
    req.set_sweep_id(sweep_id);
    v1::ListRunsResponse grpc_reply;
    ASSERT_TRUE(stub->ListRuns(ctx().get(), req, &grpc_reply).ok());
    ASSERT_EQ(grpc_reply.runs_size(), 4);
    const HttpAnswer a = Get(http, "/api/v1/sweeps/" + sweep_id + "/runs?state=succeeded");
    ASSERT_EQ(a.status, 200) << a.body;
    EXPECT_TRUE(SameMessage(FromJson<v1::ListRunsResponse>(a), grpc_reply));
    EXPECT_EQ(Get(http, "/api/v1/sweeps/" + sweep_id + "/runs?state=failed").json["runs"].size(),
              0u);

    // Pages of one run each, followed by their tokens, give the same runs in order.
    std::vector<std::string> paged;
    std::string token;
    for (int page = 0; page < 10; ++page) {
      const HttpAnswer p =
          Get(http, "/api/v1/sweeps/" + sweep_id + "/runs?page_size=1&page_token=" + token);
      ASSERT_EQ(p.status, 200) << p.body;
      const auto runs = FromJson<v1::ListRunsResponse>(p);
      ASSERT_EQ(runs.runs_size(), 1) << p.body;
      paged.push_back(runs.runs(0).run_id());
      token = runs.next_page_token();
      if (token.empty()) break;
    }
    std::vector<std::string> all;
    for (const auto& run : grpc_reply.runs()) all.push_back(run.run_id());
    EXPECT_EQ(paged, all);
    // A page of sweeps, the same way.
    const HttpAnswer sweeps = Get(http, "/api/v1/sweeps?page_size=1");
    ASSERT_EQ(sweeps.status, 200) << sweeps.body;
    EXPECT_EQ(sweeps.json["sweeps"].size(), 1u);
  }
  {
    v1::GetCurvesRequest req;
    req.set_sweep_id(sweep_id);
    v1::GetCurvesResponse grpc_reply;
    ASSERT_TRUE(stub->GetCurves(ctx().get(), req, &grpc_reply).ok());
    const HttpAnswer a = Get(http, "/api/v1/sweeps/" + sweep_id + "/curves");
    ASSERT_EQ(a.status, 200) << a.body;
    EXPECT_TRUE(SameMessage(FromJson<v1::GetCurvesResponse>(a), grpc_reply));
    ASSERT_EQ(grpc_reply.runs_size(), 4);
    EXPECT_EQ(grpc_reply.runs(0).points_size(), 3);

    // downsample is GetCurves' max_points.
    req.set_max_points(1);
    ASSERT_TRUE(stub->GetCurves(ctx().get(), req, &grpc_reply).ok());
    const HttpAnswer d = Get(http, "/api/v1/sweeps/" + sweep_id + "/curves?downsample=1");
    ASSERT_EQ(d.status, 200) << d.body;
    EXPECT_TRUE(SameMessage(FromJson<v1::GetCurvesResponse>(d), grpc_reply));
    EXPECT_LT(grpc_reply.runs(0).points_size(), 3);

    // metric keeps that one metric in each point (and where the point is).
    const HttpAnswer m =
        Get(http, "/api/v1/sweeps/" + sweep_id + "/curves?metric=test_error&downsample=1");
    ASSERT_EQ(m.status, 200) << m.body;
    ASSERT_EQ(m.json["runs"].size(), 4u) << m.body;
    const auto& points = m.json["runs"][0]["points"];
    ASSERT_EQ(points.size(), static_cast<size_t>(grpc_reply.runs(0).points_size()));
    std::set<std::string> keys;
    for (const auto& [key, value] : points[0].items()) keys.insert(key);
    EXPECT_EQ(keys, (std::set<std::string>{"epoch", "iteration", "testError"})) << m.body;
    EXPECT_EQ(points[0]["testError"].get<double>(), grpc_reply.runs(0).points(0).test_error());
  }
  {
    v1::ListWorkersResponse grpc_reply;
    ASSERT_TRUE(stub->ListWorkers(ctx().get(), {}, &grpc_reply).ok());
    const HttpAnswer a = Get(http, "/api/v1/workers");
    ASSERT_EQ(a.status, 200) << a.body;
    auto http_reply = FromJson<v1::ListWorkersResponse>(a);
    ASSERT_EQ(http_reply.workers_size(), 1) << a.body;
    // What moves between the two calls: the worker's latest contact.
    for (auto* reply : {&http_reply, &grpc_reply}) {
      for (auto& w : *reply->mutable_workers()) {
        w.clear_heartbeat_age_seconds();
        w.clear_last_seen_unix_ms();
        w.clear_state();
      }
    }
    EXPECT_TRUE(SameMessage(http_reply, grpc_reply));
  }

  // Bad parameters: 400 naming the parameter; the service stays up.
  const std::string runs = "/api/v1/sweeps/" + sweep_id + "/runs";
  ExpectBadParameter(http, runs + "?page_size=ten", "page_size");
  ExpectBadParameter(http, runs + "?page_size=-1", "page_size", /*field_key=*/false);
  ExpectBadParameter(http, runs + "?page_size=99999999999", "page_size");
  ExpectBadParameter(http, runs + "?state=bogus", "state", /*field_key=*/false);
  ExpectBadParameter(http, runs + "?page_token=not-a-token", "page_token", /*field_key=*/false);
  ExpectBadParameter(http, runs + "?pagesize=10", "pagesize");
  ExpectBadParameter(http, "/api/v1/sweeps?include_archived=maybe", "include_archived");
  ExpectBadParameter(http, "/api/v1/sweeps/" + sweep_id + "/results?last_k=x", "last_k");
  ExpectBadParameter(http, "/api/v1/sweeps/" + sweep_id + "/curves?downsample=-2", "downsample");
  ExpectBadParameter(http, "/api/v1/sweeps/" + sweep_id + "/curves?metric=accuracy", "metric");
  // Unknown sweep, unknown path: 404 with the gRPC code name; writes: 405.
  const HttpAnswer missing = Get(http, "/api/v1/sweeps/nosuchsweep");
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_EQ(missing.json.value("code", ""), "NOT_FOUND") << missing.body;
  EXPECT_EQ(Get(http, "/api/v1/nothing").status, 404);
  EXPECT_EQ(Get(http, "/nothing").json.value("code", ""), "NOT_FOUND");
  auto post = http.Post("/api/v1/sweeps", "{}", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(Get(http, "/api/v1/sweeps").status, 200);
  EXPECT_TRUE(cluster.coordinator().running());
}

// Issue 11 review, finding 4: newest_first lists the sweeps newest first, page by page
// with its own tokens (the reverse of the default order), as gRPC's ListSweeps does.
TEST(HttpApi, SweepsListNewestFirstPageByPage) {
  Cluster cluster({});
  const int http_port = StartWithHttp(cluster);
  std::vector<std::string> submitted;
  for (int i = 0; i < 5; ++i) {
    const std::string name = "s" + std::to_string(i);
    submitted.push_back(SubmitOneRunSweep(cluster, name));
  }
  httplib::Client http("127.0.0.1", http_port);
  http.set_read_timeout(20, 0);
  // Every page of `query` (page_size 2), its sweeps' id prefixes in the order listed.
  auto page_through = [&](const std::string& query) {
    std::vector<std::string> seen;
    std::string token;
    for (int page = 0; page < 10; ++page) {
      const HttpAnswer a = Get(http, "/api/v1/sweeps?page_size=2" + query +
                                         (token.empty() ? "" : "&page_token=" + token));
      EXPECT_EQ(a.status, 200) << a.body;
      if (a.status != 200) break;
      EXPECT_LE(a.json["sweeps"].size(), 2u);
      for (const auto& s : a.json["sweeps"])
        seen.push_back(s["sweepId"].get<std::string>().substr(0, 12));
      token = a.json.value("nextPageToken", "");
      if (token.empty()) break;
    }
    return seen;
  };
  const std::vector<std::string> newest(submitted.rbegin(), submitted.rend());
  EXPECT_EQ(page_through(""), submitted);
  EXPECT_EQ(page_through("&newest_first=false"), submitted);
  EXPECT_EQ(page_through("&newest_first=true"), newest);

  // The same page as gRPC's ListSweeps with newest_first.
  auto stub = v1::Coordinator::NewStub(Plaintext(cluster.address()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::ListSweepsRequest req;
  req.set_newest_first(true);
  req.set_page_size(2);
  v1::ListSweepsResponse grpc_reply;
  ASSERT_TRUE(stub->ListSweeps(&ctx, req, &grpc_reply).ok());
  const HttpAnswer first = Get(http, "/api/v1/sweeps?newest_first=true&page_size=2");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_TRUE(SameMessage(FromJson<v1::ListSweepsResponse>(first), grpc_reply));
  ASSERT_EQ(grpc_reply.sweeps_size(), 2);
  EXPECT_EQ(grpc_reply.sweeps(0).sweep_id().substr(0, 12), submitted[4]);

  // A token leads on only in the order it came from; a bad value names the parameter.
  const HttpAnswer oldest = Get(http, "/api/v1/sweeps?page_size=2");
  ASSERT_FALSE(oldest.json.value("nextPageToken", "").empty()) << oldest.body;
  ExpectBadParameter(
      http, "/api/v1/sweeps?newest_first=true&page_token=" + oldest.json.value("nextPageToken", ""),
      "page_token", /*field_key=*/false);
  ExpectBadParameter(http, "/api/v1/sweeps?page_token=" + first.json.value("nextPageToken", ""),
                     "page_token", /*field_key=*/false);
  ExpectBadParameter(http, "/api/v1/sweeps?newest_first=maybe", "newest_first");
}

std::string RandomToken() {
  std::random_device rd;
  std::string t;
  for (int i = 0; i < 32; ++i) t += "0123456789abcdef"[rd() % 16];
  return t;
}

TEST(HttpApi, TlsFromTheSameCertificateAndReadTokens) {
  Cluster cluster({});
  const std::string certs = cluster.dir() + "/certs";
  ASSERT_TRUE(MakeTestCerts(certs));
  const std::string admin = RandomToken(), worker = RandomToken(), reader = RandomToken();
  WriteFile(cluster.dir() + "/tokens",
            "admin " + admin + "\nworker " + worker + "\nread " + reader + "\n");
  const int http_port =
      StartWithHttp(cluster, {"--tls-cert", certs + "/server.pem", "--tls-key",
                              certs + "/server.key", "--token-file", cluster.dir() + "/tokens"});

  httplib::SSLClient https("127.0.0.1", http_port);
  https.set_ca_cert_path((certs + "/ca.pem").c_str());
  https.enable_server_certificate_verification(true);
  https.set_read_timeout(20, 0);
  for (const std::string path : {"/api/v1/sweeps", "/metrics"}) {
    const HttpAnswer none = Get(https, path);
    EXPECT_EQ(none.status, 401) << path << ": " << none.body;
    EXPECT_EQ(none.json.value("code", ""), "UNAUTHENTICATED") << none.body;
    EXPECT_EQ(Get(https, path, RandomToken()).status, 401) << path;
    const HttpAnswer as_worker = Get(https, path, worker);
    EXPECT_EQ(as_worker.status, 403) << path << ": " << as_worker.body;
    EXPECT_EQ(as_worker.json.value("code", ""), "PERMISSION_DENIED") << as_worker.body;
    EXPECT_EQ(Get(https, path, reader).status, 200) << path;
    EXPECT_EQ(Get(https, path, admin).status, 200) << path;
  }
  // Never the token in the log.
  EXPECT_EQ(cluster.CoordinatorLog().find(worker), std::string::npos);

  // Plaintext to the TLS port gets no answer.
  httplib::Client plain("127.0.0.1", http_port);
  plain.set_read_timeout(5, 0);
  EXPECT_NE(Get(plain, "/api/v1/sweeps", reader).status, 200);
  // A client that does not trust the server's CA refuses it.
  httplib::SSLClient untrusting("127.0.0.1", http_port);
  untrusting.set_ca_cert_path((certs + "/other-ca.pem").c_str());
  untrusting.enable_server_certificate_verification(true);
  EXPECT_EQ(Get(untrusting, "/api/v1/sweeps", reader).status, 0);
}

// With --tls-client-ca the HTTP face, like gRPC, takes only clients holding a
// certificate from that CA.
TEST(HttpApi, MutualTlsTakesOnlyClientCertificatesFromTheCa) {
  Cluster cluster({});
  const std::string certs = cluster.dir() + "/certs";
  ASSERT_TRUE(MakeTestCerts(certs));
  const std::string reader = RandomToken();
  WriteFile(cluster.dir() + "/tokens", "read " + reader + "\n");
  const int http_port = StartWithHttp(
      cluster, {"--tls-cert", certs + "/server.pem", "--tls-key", certs + "/server.key",
                "--tls-client-ca", certs + "/ca.pem", "--token-file", cluster.dir() + "/tokens"});
  // A refused handshake can close the socket under OpenSSL's write (TLS 1.3 checks the
  // client's certificate after the client has sent its request): no SIGPIPE for that.
  std::signal(SIGPIPE, SIG_IGN);
  auto answer = [&](const std::string& cert, const std::string& key) {
    std::unique_ptr<httplib::SSLClient> https =
        cert.empty() ? std::make_unique<httplib::SSLClient>("127.0.0.1", http_port)
                     : std::make_unique<httplib::SSLClient>("127.0.0.1", http_port, cert, key);
    https->set_ca_cert_path((certs + "/ca.pem").c_str());
    https->enable_server_certificate_verification(true);
    https->set_read_timeout(10, 0);
    return Get(*https, "/api/v1/sweeps", reader).status;
  };
  EXPECT_EQ(answer(certs + "/client.pem", certs + "/client.key"), 200);
  EXPECT_EQ(answer("", ""), 0);  // no client certificate: the handshake fails
  EXPECT_EQ(answer(certs + "/other-client.pem", certs + "/other-client.key"), 0);
  EXPECT_TRUE(cluster.coordinator().running());
}

TEST(HttpApi, ServingBeyondLoopbackNeedsTlsAndTokensOrInsecure) {
  TempDir dir;
  std::string out, err;
  const int code = RunCommand({RESWEEP_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db",
                               dir.File("x.db"), "--http", "0.0.0.0:0"},
                              &out, &err, 20000);
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("refusing to serve HTTP on 0.0.0.0:0"), std::string::npos) << err;
  EXPECT_NE(err.find("--insecure"), std::string::npos) << err;

  // With --insecure it serves (checked on loopback, where the wildcard address listens).
  Cluster cluster({});
  auto& args = cluster.options().coordinator_args;
  args = {"--http", "0.0.0.0:0", "--http-port-file", cluster.dir() + "/http-port", "--insecure"};
  cluster.StartCoordinator();
  httplib::Client http("127.0.0.1", std::stoi(ReadFile(cluster.dir() + "/http-port")));
  EXPECT_EQ(Get(http, "/api/v1/sweeps").status, 200);
  EXPECT_NE(cluster.CoordinatorLog().find("--insecure: serving HTTP on 0.0.0.0:0"),
            std::string::npos);
}

// ---------------------------------------------------------------- metrics

std::string PrometheusBinary() {
  for (const char* path : {"/usr/bin/prometheus", "/usr/local/bin/prometheus"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

// A real Prometheus server (Debian's `prometheus`) scraping `targets` (job name ->
// host:port) every 500 ms, with its own config and data directory under `dir`, on
// a loopback port; killed when the object goes.
class Prometheus {
 public:
  Prometheus(const std::string& dir, const std::map<std::string, std::string>& targets) {
    std::string config =
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n"
        "scrape_configs:\n";
    for (const auto& [job, target] : targets) {
      config +=
          "  - job_name: " + job + "\n    static_configs:\n      - targets: ['" + target + "']\n";
    }
    WriteFile(dir + "/prometheus.yml", config);
    // A free loopback port, taken again by Prometheus (a few tries, should another
    // process take it in between).
    for (int attempt = 0; attempt < 3 && !process_; ++attempt) {
      port_ = RefusingPort().port();
      process_ = std::make_unique<Process>(
          std::vector<std::string>{PrometheusBinary(), "--config.file=" + dir + "/prometheus.yml",
                                   "--storage.tsdb.path=" + dir + "/prometheus-data",
                                   "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                   "--log.level=warn"},
          dir + "/prometheus.log");
      httplib::Client client("127.0.0.1", port_);
      const bool ready = WaitFor(
          [&] {
            auto res = client.Get("/-/ready");
            return (res && res->status == 200) || !process_->running();
          },
          30000);
      if (!ready || !process_->running()) process_.reset();
    }
  }
  bool running() const { return process_ != nullptr; }

  // The value of the instant query `query`'s single series; nullopt while it has
  // none (or more than one).
  std::optional<double> Value(const std::string& query) {
    httplib::Client client("127.0.0.1", port_);
    auto res = client.Get("/api/v1/query", httplib::Params{{"query", query}}, httplib::Headers{});
    if (!res || res->status != 200) return std::nullopt;
    const auto reply = nlohmann::json::parse(res->body, nullptr, false);
    if (!reply.is_object() || reply.value("status", "") != "success") return std::nullopt;
    const auto& result = reply["data"]["result"];
    if (!result.is_array() || result.size() != 1) return std::nullopt;
    return std::stod(result[0]["value"][1].get<std::string>());
  }

 private:
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

TEST(Metrics, PrometheusScrapesTheCoordinatorAndAWorker) {
  if (PrometheusBinary().empty()) {
    GTEST_SKIP() << "no prometheus binary (Debian package `prometheus`): not tested";
  }
  Cluster cluster({.lease_seconds = 10, .heartbeat_seconds = 0.3});
  const int http_port = StartWithHttp(cluster);
  // A free loopback port for the worker's metrics (taken again by the worker).
  const int worker_port = RefusingPort().port();
  const std::string worker_metrics = "127.0.0.1:" + std::to_string(worker_port);
  cluster.StartWorker("w1", 1, {"--metrics-listen", worker_metrics});
  const std::string sweep_id = ShortId(SubmitSweep(cluster, "s.yaml", kSweep));
  int code = 0;
  cluster.Cli({"wait", sweep_id, "--limit", "60", "--poll", "0.2"}, &code);
  ASSERT_EQ(code, 0) << cluster.Logs();

  Prometheus prometheus(cluster.dir(), {{"coordinator", "127.0.0.1:" + std::to_string(http_port)},
                                        {"worker", worker_metrics}});
  ASSERT_TRUE(prometheus.running()) << ReadFile(cluster.dir() + "/prometheus.log");
  // Every series asked for, as Prometheus stored it from its scrapes: 4 runs x 3
  // epochs reported and accepted, the calls by method and code with their latency.
  // Worker calls are counted at least as often as the runs need them (a call retried
  // after a lost reply counts again).
  struct Expected {
    double value;
    bool at_least;
  };
  const std::map<std::string, Expected> expected = {
      {R"(up{job="coordinator"})", {1, false}},
      {R"(resweep_runs{state="succeeded"})", {4, false}},
      {R"(resweep_runs{state="queued"})", {0, false}},
      {R"(resweep_queue_depth)", {0, false}},
      {R"(resweep_leases_held)", {0, false}},
      {R"(resweep_workers{state="alive"})", {1, false}},
      {R"(resweep_workers_quarantined)", {0, false}},
      {R"(resweep_epoch_reports_total{outcome="accepted"})", {12, true}},
      {R"(resweep_epoch_reports_total{outcome="refused"})", {0, false}},
      {R"(grpc_server_handled_total{grpc_method="CompleteRun",grpc_code="OK"})", {4, true}},
      {R"(grpc_server_handled_total{grpc_method="SubmitSweep",grpc_code="OK"})", {1, false}},
      {R"(grpc_server_handling_seconds_count{grpc_method="ReportEpoch"})", {12, true}},
      {R"(grpc_server_handling_seconds_bucket{grpc_method="ReportEpoch",le="+Inf"})", {12, true}},
      {R"(resweep_checkpoint_bytes{kind="upload"})", {0, false}},
      // The worker's: its one slot trained every run (the synthetic trainer's epochs
      // last epoch_seconds and report no throughput).
      {R"(up{job="worker"})", {1, false}},
      {R"(resweep_worker_runs_total{outcome="completed"})", {4, false}},
      {R"(resweep_worker_runs_total{outcome="failed"})", {0, false}},
      {R"(resweep_worker_runs_total{outcome="given_back"})", {0, false}},
      {R"(resweep_worker_epoch_seconds{slot="0",device="cpu"})", {0.01, false}},
      {R"(resweep_worker_images_per_second{slot="0",device="cpu"})", {0, false}},
  };
  auto matches = [](const std::optional<double>& seen, const Expected& e) {
    return seen && (e.at_least ? *seen >= e.value : *seen == e.value);
  };
  std::map<std::string, std::optional<double>> seen;
  const bool all = WaitFor(
      [&] {
        for (const auto& [query, e] : expected) seen[query] = prometheus.Value(query);
        return std::all_of(expected.begin(), expected.end(),
                           [&](const auto& e) { return matches(seen[e.first], e.second); });
      },
      30000);
  for (const auto& [query, e] : expected) {
    EXPECT_TRUE(matches(seen[query], e))
        << query << ": " << (seen[query] ? std::to_string(*seen[query]) : "no series")
        << (e.at_least ? " (expected at least " : " (expected ") << e.value << ")";
  }
  ASSERT_TRUE(all) << ReadFile(cluster.dir() + "/prometheus.log");
  // Group commits were timed.
  EXPECT_GT(prometheus.Value(R"(resweep_sqlite_commit_seconds_count{phase="sync"})").value_or(0),
            0);
}

TEST(Metrics, AWorkerServesMetricsBeyondLoopbackOnlyWhenTold) {
  std::string out, err;
  // Refused before the worker contacts any coordinator (none listens there).
  EXPECT_EQ(RunCommand({RESWEEP_WORKER_BIN, "--coordinator", RefusingPort().address(), "--device",
                        "cpu", "--metrics-listen", "0.0.0.0:0"},
                       &out, &err, 20000),
            2);
  EXPECT_NE(err.find("refusing to serve metrics on 0.0.0.0:0"), std::string::npos) << err;
  EXPECT_NE(err.find("--metrics-beyond-loopback"), std::string::npos) << err;
}

}  // namespace
}  // namespace resweep
