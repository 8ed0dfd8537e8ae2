// The coordinator's HTTP face (--http) against hostile or odd requests, sent as raw
// bytes over loopback to a real coordinator: bytes that are not UTF-8 in the path or
// the query, Range headers, methods other than GET, strict parameters, request data
// in the log, the Bearer scheme's case, and clients that send their request slowly.
// (docs/http-api.md, review 11.)
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/cluster.h"

namespace resweep {
namespace {

using namespace resweep::testing;

constexpr const char* kSweep = R"(name: robust
trainer: {kind: synthetic, epoch_seconds: 0.01}
train: {epochs: 2}
seeds: 2
)";

constexpr const char* kReadToken = "readtoken0123456789abcdef";
constexpr const char* kAdminToken = "admintoken0123456789abcdef";

// A connected loopback socket (-1 on failure), reads giving up after 60 s.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{60, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

struct RawReply {
  int status = 0;                                   // 0: no reply
  std::multimap<std::string, std::string> headers;  // names lower-cased
  std::string body;
  nlohmann::json json;  // the body parsed (discarded when not JSON)

  // The JSON error's "message" ("" when there is none).
  std::string Message() const {
    return json.is_object() && json.contains("message") && json["message"].is_string()
               ? json["message"].get<std::string>()
               : std::string();
  }
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool Has(const std::string& name) const { return headers.count(name) > 0; }
};

// The first reply in `raw` (status line, header, then the body up to Content-Length,
// or everything left).
RawReply ParseReply(const std::string& raw) {
  RawReply reply;
  const size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return reply;
  reply.status = std::atoi(raw.c_str() + 9);
  std::istringstream lines(raw.substr(0, end));
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t value = colon + 1;
    while (value < line.size() && line[value] == ' ') ++value;
    reply.headers.emplace(name, line.substr(value));
  }
  reply.body = raw.substr(end + 4);
  if (reply.Has("content-length") && reply.status != 304) {
    reply.body.resize(std::min(reply.body.size(), std::stoul(reply.Header("content-length"))));
  }
  reply.json = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  return reply;
}

// Whether `raw` holds a whole first reply: its header, and as many bytes as its
// Content-Length says (none for a 304 or a reply to HEAD).
bool WholeReply(const std::string& raw, bool head) {
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  const RawReply reply = ParseReply(raw.substr(0, end + 4));
  if (head || reply.status == 304) return true;
  if (!reply.Has("content-length")) return false;  // then up to the close
  return raw.size() - end - 4 >= std::stoul(reply.Header("content-length"));
}

// Sends `request` (whole, as given) and reads its reply (the first one: after a
// request line httplib refuses, it reads the rest of the header as more requests).
RawReply SendRaw(int port, const std::string& request) {
  const int fd = Connect(port);
  if (fd < 0) return {};
  const bool head = request.rfind("HEAD ", 0) == 0;
  std::string raw;
  if (SendAll(fd, request)) {
    char buf[65536];
    ssize_t n;
    while (!WholeReply(raw, head) && (n = recv(fd, buf, sizeof(buf), 0)) > 0) {
      raw.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return ParseReply(raw);
}

// `method` `target` (raw: percent escapes as given) with `headers` ("Name: value\r\n"
// lines), the connection closed after the reply.
RawReply Request(int port, const std::string& method, const std::string& target,
                 const std::string& headers = "") {
  return SendRaw(port, method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
                           "Connection: close\r\n\r\n");
}

std::string Bearer(const std::string& token) { return "Authorization: Bearer " + token + "\r\n"; }

// A JSON error reply with `status` and gRPC code name `code` (and `field` if given),
// its body valid JSON (nlohmann refuses invalid UTF-8).
::testing::AssertionResult IsJsonError(const RawReply& reply, int status, const std::string& code,
                                       const std::string& field = "") {
  if (reply.status != status || !reply.json.is_object() || reply.json.value("code", "") != code ||
      reply.Message().empty() || (!field.empty() && reply.json.value("field", "") != field)) {
    return ::testing::AssertionFailure() << "expected " << status << " " << code << " " << field
                                         << ", got " << reply.status << ": " << reply.body;
  }
  return ::testing::AssertionSuccess();
}

std::string WriteTokens(Cluster& cluster) {
  const std::string file = cluster.dir() + "/tokens";
  WriteFile(file, std::string("admin ") + kAdminToken + "\nread " + kReadToken + "\n");
  return file;
}

// Review 11 findings 1 and 2: one byte that is not UTF-8 in the path ended the
// coordinator (an error reply's JSON threw, then the exception handler threw); in a
// query it was a 500.
TEST(HttpRobustness, NonUtf8InThePathOrQueryIsAJsonErrorNeverACrash) {
  Cluster cluster({});
  const int port = StartWithHttp(cluster);
  for (const char* target :
       {"/static/%ff", "/x%ff", "/metrics%ff", "/%ff%fe%c3", "/static/%c3%28", "/api/v1/%ff"}) {
    EXPECT_TRUE(IsJsonError(Request(port, "GET", target), 404, "NOT_FOUND")) << target;
    ASSERT_TRUE(cluster.coordinator().running()) << target << "\n" << cluster.CoordinatorLog();
  }
  EXPECT_TRUE(IsJsonError(Request(port, "GET", "/api/v1/sweeps/%ff"), 404, "NOT_FOUND"));
  EXPECT_TRUE(IsJsonError(Request(port, "POST", "/x%ff"), 405, "UNIMPLEMENTED"));
  // In a query: the parameter's 400.
  EXPECT_TRUE(IsJsonError(Request(port, "GET", "/api/v1/sweeps?page_size=%ff"), 400,
                          "INVALID_ARGUMENT", "page_size"));
  EXPECT_TRUE(IsJsonError(Request(port, "GET", "/api/v1/sweeps?include_archived=%ff"), 400,
                          "INVALID_ARGUMENT", "include_archived"));
  EXPECT_TRUE(
      IsJsonError(Request(port, "GET", "/api/v1/sweeps?page_token=%ff"), 400, "INVALID_ARGUMENT"));
  EXPECT_TRUE(IsJsonError(Request(port, "GET", "/api/v1/sweeps/x/curves?metric=%ff"), 400,
                          "INVALID_ARGUMENT", "metric"));
  const RawReply name = Request(port, "GET", "/api/v1/sweeps?f%ffo=1");
  EXPECT_TRUE(IsJsonError(name, 400, "INVALID_ARGUMENT"));
  ASSERT_TRUE(name.json.is_object()) << name.body;
  EXPECT_NE(name.json.value("field", "").find("\xef\xbf\xbd"), std::string::npos)  // U+FFFD
      << name.body;
  // Still serving, and nothing was an internal error.
  EXPECT_EQ(Request(port, "GET", "/api/v1/sweeps").status, 200);
  EXPECT_TRUE(cluster.coordinator().running());
  EXPECT_EQ(cluster.CoordinatorLog().find("INTERNAL"), std::string::npos)
      << cluster.CoordinatorLog();
}

// The same with tokens: the refusal (401) of a request without one built its reply
// from the path too, and dashboard paths need no token.
TEST(HttpRobustness, NonUtf8InThePathWithTokensIsRefusedNeverACrash) {
  Cluster cluster({});
  const int port = StartWithHttp(cluster, {"--token-file", WriteTokens(cluster)});
  EXPECT_TRUE(IsJsonError(Request(port, "GET", "/static/%ff"), 404, "NOT_FOUND"));
  for (const char* target : {"/nope%ff", "/metrics%ff", "/api/v1/sweeps/%ff"}) {
    EXPECT_TRUE(IsJsonError(Request(port, "GET", target), 401, "UNAUTHENTICATED")) << target;
    ASSERT_TRUE(cluster.coordinator().running()) << target << "\n" << cluster.CoordinatorLog();
  }
  EXPECT_TRUE(IsJsonError(Request(port, "GET", "/api/v1/sweeps/%ff", Bearer(kReadToken)), 404,
                          "NOT_FOUND"));
  EXPECT_TRUE(IsJsonError(Request(port, "GET", "/api/v1/sweeps?page_token=%ff", Bearer(kReadToken)),
                          400, "INVALID_ARGUMENT"));
  EXPECT_EQ(Request(port, "GET", "/api/v1/sweeps", Bearer(kReadToken)).status, 200);
  EXPECT_TRUE(cluster.coordinator().running());
}

// Review 11 finding 13: the scheme is case-insensitive (RFC 9110 11.1).
TEST(HttpRobustness, TheBearerSchemeInAnyCase) {
  Cluster cluster({});
  const int port = StartWithHttp(cluster, {"--token-file", WriteTokens(cluster)});
  for (const std::string scheme : {"Bearer", "bearer", "BEARER"}) {
    EXPECT_EQ(Request(port, "GET", "/api/v1/sweeps",
                      "Authorization: " + scheme + " " + kReadToken + "\r\n")
                  .status,
              200)
        << scheme;
  }
  EXPECT_TRUE(IsJsonError(Request(port, "GET", "/api/v1/sweeps",
                                  std::string("Authorization: Basic ") + kReadToken + "\r\n"),
                          401, "UNAUTHENTICATED"));
}

// Review 11 finding 10: a refused request's path is logged escaped: "%0a" cannot
// forge a log line.
TEST(HttpRobustness, RequestDataIsEscapedInTheLog) {
  Cluster cluster({});
  const int port = StartWithHttp(cluster, {"--token-file", WriteTokens(cluster)});
  const std::string forged = "[1999-01-01 00:00:00.000] [coordinator] [info] FAKE LINE";
  EXPECT_TRUE(IsJsonError(
      Request(port, "GET",
              "/api/v1/x%0d%0a%5B1999-01-01%2000:00:00.000%5D%20%5Bcoordinator%5D%20%5Binfo%5D"
              "%20FAKE%20LINE%1b%5B2J%ff"),
      401, "UNAUTHENTICATED"));
  // A method is logged escaped too (that one is no method: httplib's plain 400).
  EXPECT_EQ(Request(port, "X\x1b[2JY", "/").status, 400);
  // (httplib logs a request after its reply has gone out.)
  EXPECT_TRUE(WaitFor(
      [&] { return cluster.CoordinatorLog().find("X\\x1b[2JY") != std::string::npos; }, 20000))
      << cluster.CoordinatorLog();
  const std::string log = cluster.CoordinatorLog();
  std::istringstream lines(log);
  std::string line;
  bool quoted = false;
  bool method_quoted = false;
  while (std::getline(lines, line)) {
    EXPECT_NE(line.rfind("[1999-01-01", 0), 0u) << "a forged line:\n" << log;
    // No control character (an escape sequence for a terminal) and no byte 0xff.
    for (const char c : line) {
      const auto byte = static_cast<unsigned char>(c);
      EXPECT_FALSE(byte < 0x20 || byte == 0x7f || byte == 0xff)
          << "a raw byte " << static_cast<int>(byte) << " in: " << line;
    }
    if (line.find("refused") != std::string::npos &&
        line.find("/api/v1/x\\r\\n" + forged + "\\x1b[2J\\xff") != std::string::npos) {
      quoted = true;
    }
    if (line.find("X\\x1b[2JY") != std::string::npos) method_quoted = true;
  }
  EXPECT_TRUE(quoted) << log;
  EXPECT_TRUE(method_quoted) << log;
}

// Review 11 finding 6: a Range header cut the body of a 200. Replies are whole; the
// server says it serves no ranges.
TEST(HttpRobustness, RangeHeadersAreIgnored) {
  Cluster cluster({});
  const int port = StartWithHttp(cluster);
  const std::string id = ShortId(SubmitSweep(cluster, "s.yaml", kSweep));
  for (const std::string& target : std::vector<std::string>{
           "/api/v1/sweeps", "/api/v1/sweeps/" + id, "/api/v1/sweeps/" + id + "/runs", "/",
           "/static/app.js", "/metrics", "/api/v1/nothing"}) {
    const RawReply whole = Request(port, "GET", target);
    ASSERT_TRUE(whole.status == 200 || whole.status == 404) << target << ": " << whole.status;
    EXPECT_EQ(whole.Header("accept-ranges"), "none") << target;
    for (const std::string range : {"bytes=0-9", "bytes=5-", "bytes=-3", "bytes=0-1,4-6"}) {
      const RawReply ranged = Request(port, "GET", target, "Range: " + range + "\r\n");
      EXPECT_EQ(ranged.status, whole.status) << target << " " << range;
      EXPECT_FALSE(ranged.Has("content-range")) << target << " " << range;
      EXPECT_EQ(ranged.Header("accept-ranges"), "none") << target;
      if (target != "/metrics") {  // (its values move between two scrapes)
        EXPECT_EQ(ranged.body, whole.body) << target << " " << range;
      } else {
        EXPECT_GT(ranged.body.size(), 100u) << ranged.body;
      }
    }
  }
  // HEAD too says none (httplib would say "bytes").
  const RawReply head = Request(port, "HEAD", "/");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("accept-ranges"), "none");
}

// Review 11 finding 14: other methods are 405 with the JSON error and Allow, also
// those httplib does not know (it refused them with an empty 400).
TEST(HttpRobustness, MethodsOtherThanGetAndHeadAre405) {
  Cluster cluster({});
  const int port = StartWithHttp(cluster);
  for (const std::string method :
       {"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO", "PROPFIND"}) {
    const RawReply reply = Request(port, method, "/api/v1/sweeps");
    EXPECT_TRUE(IsJsonError(reply, 405, "UNIMPLEMENTED")) << method;
    EXPECT_EQ(reply.Header("allow"), "GET, HEAD") << method;
    if (reply.Header("connection") == "close") {
      EXPECT_FALSE(reply.Has("keep-alive")) << method;
    }
    EXPECT_NE(reply.Message().find(method), std::string::npos) << reply.body;
  }
  // Not a method at all: still the plain 400 of a malformed request.
  EXPECT_EQ(Request(port, "G(T", "/api/v1/sweeps").status, 400);
  EXPECT_EQ(Request(port, "GET", "/api/v1/sweeps").status, 200);
  EXPECT_TRUE(cluster.coordinator().running());
}

// Review 11 findings 11 and 16: numbers are plain decimal digits (last_k 0 to 1000,
// as the CLI's --last-k), booleans exactly true or false; the 400 names the parameter.
TEST(HttpRobustness, ParametersAreParsedStrictly) {
  Cluster cluster({});
  const int port = StartWithHttp(cluster);
  const std::string id = ShortId(SubmitSweep(cluster, "s.yaml", kSweep));
  const std::string sweep = "/api/v1/sweeps/" + id;
  struct Case {
    std::string target, field;
  };
  const std::vector<Case> refused = {
      {"/api/v1/sweeps?page_size=%2B5", "page_size"},
      {"/api/v1/sweeps?page_size=%205", "page_size"},
      {"/api/v1/sweeps?page_size=5%20", "page_size"},
      {"/api/v1/sweeps?page_size=-1", "page_size"},
      {"/api/v1/sweeps?page_size=", "page_size"},
      {"/api/v1/sweeps?page_size=0x10", "page_size"},
      {"/api/v1/sweeps?page_size=1e3", "page_size"},
      {"/api/v1/sweeps?page_size=2147483648", "page_size"},
      {"/api/v1/sweeps?include_archived=", "include_archived"},
      {"/api/v1/sweeps?include_archived=1", "include_archived"},
      {"/api/v1/sweeps?include_archived=0", "include_archived"},
      {"/api/v1/sweeps?include_archived=TRUE", "include_archived"},
      {"/api/v1/workers?include_gone=1", "include_gone"},
      {sweep + "/results?last_k=-3", "last_k"},
      {sweep + "/results?last_k=1001", "last_k"},
      {sweep + "/results?last_k=100000", "last_k"},
      {sweep + "/results?last_k=%2B3", "last_k"},
      {sweep + "/runs?page_size=%2B1", "page_size"},
      {sweep + "/curves?downsample=%2B2", "downsample"},
      {sweep + "/curves?downsample=-2", "downsample"},
  };
  for (const auto& c : refused) {
    const RawReply reply = Request(port, "GET", c.target);
    EXPECT_TRUE(IsJsonError(reply, 400, "INVALID_ARGUMENT", c.field)) << c.target;
    EXPECT_NE(reply.Message().find(c.field), std::string::npos) << reply.body;
  }
  for (const std::string& target :
       {std::string("/api/v1/sweeps?page_size=5"), std::string("/api/v1/sweeps?page_size=0"),
        std::string("/api/v1/sweeps?include_archived=true"),
        std::string("/api/v1/sweeps?include_archived=false"),
        std::string("/api/v1/workers?include_gone=true"), sweep + "/results?last_k=0",
        sweep + "/results?last_k=1000", sweep + "/runs?page_size=007",
        sweep + "/curves?downsample=3"}) {
    EXPECT_EQ(Request(port, "GET", target).status, 200) << target;
  }
  const RawReply k = Request(port, "GET", sweep + "/results?last_k=1000");
  ASSERT_TRUE(k.json.is_object()) << k.body;
  EXPECT_EQ(k.json.value("lastK", 0), 1000) << k.body;
}

// Review 11 finding 5: each connection holds one of the server's threads while it
// sends its request, and with a fixed pool of 8, 8 slow clients kept every other
// one waiting as long as they liked. Here 24 clients trickle their headers while a
// normal request is made: it is answered (the slow ones each have a thread), and then
// the coordinator stops on SIGTERM. No timing is asserted: both just have to happen
// before the slow clients stop.
TEST(HttpRobustness, ClientsSendingSlowlyDoNotStarveOthers) {
  Cluster cluster({});
  const int port = StartWithHttp(cluster);
  std::vector<int> slow;
  for (int i = 0; i < 24; ++i) {
    const int fd = Connect(port);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, "GET /api/v1/sweeps HTTP/1.1\r\nHost: x\r\n"));
    slow.push_back(fd);
  }
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    // A header line a second each (under the server's read timeout), until told.
    while (!stop) {
      for (int fd : slow) SendAll(fd, "X-a: b\r\n");
      for (int i = 0; i < 10 && !stop; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(120, 0);
  http.set_connection_timeout(120, 0);
  auto res = http.Get("/api/v1/sweeps");
  // Only now do the slow clients stop: an answer above came while they held on.
  const bool answered_while_slow_clients_held_on = res && !stop;
  // Nor do they hold up a shutdown (their connections are ended after a grace).
  cluster.coordinator().Kill(SIGTERM);
  EXPECT_EQ(cluster.coordinator().Wait(60000), 0) << cluster.CoordinatorLog();
  const bool stopped_while_slow_clients_held_on = !stop;
  stop = true;
  trickle.join();
  for (int fd : slow) close(fd);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(answered_while_slow_clients_held_on);
  EXPECT_TRUE(stopped_while_slow_clients_held_on);
}

}  // namespace
}  // namespace resweep
