#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/auth.h"

namespace resweep {
namespace {

const std::string kAdmin = "admin-token-0123456789";
const std::string kWorker = "worker-token-0123456789";
const std::string kRead = "read-token-0123456789ab";

TokenTable Table() {
  auto t = TokenTable::Parse("# comment\nadmin " + kAdmin + "\n\nworker " + kWorker +
                                 "  # trailing comment\nread " + kRead + "\n",
                             "tokens.txt");
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(*t);
}

TEST(TokenTable, LooksUpRolesAndRejectsUnknownTokens) {
  const TokenTable t = Table();
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.Lookup(kAdmin), Role::kAdmin);
  EXPECT_EQ(t.Lookup(kWorker), Role::kWorker);
  EXPECT_EQ(t.Lookup(kRead), Role::kRead);
  EXPECT_FALSE(t.Lookup("").has_value());
  EXPECT_FALSE(t.Lookup(kAdmin + "x").has_value());
  EXPECT_FALSE(t.Lookup(kAdmin.substr(1)).has_value());
}

TEST(TokenTable, BadFilesNameTheLineAndNeverEchoTheToken) {
  struct Case {
    std::string content, expect;
  };
  const std::vector<Case> cases = {
      {"admin\n", "tokens.txt:1: expected '<role> <token>'"},
      {"\nroot 0123456789abcdef0\n", "tokens.txt:2: unknown role 'root'"},
      {"admin short\n", "tokens.txt:1: token too short"},
      {"admin a b c\n", "tokens.txt:1: expected"},
      {"admin 0123456789abcdef0\nread 0123456789abcdef0\n", "tokens.txt:2: token listed twice"},
      {"# nothing\n", "tokens.txt: no tokens"},
  };
  for (const auto& c : cases) {
    auto t = TokenTable::Parse(c.content, "tokens.txt");
    ASSERT_FALSE(t.ok()) << c.content;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find(c.expect), std::string::npos) << t.status().message();
    EXPECT_EQ(t.status().message().find("0123456789abcdef0"), std::string::npos);
  }
  EXPECT_FALSE(TokenTable::LoadFile("/nonexistent/tokens").ok());
}

TEST(AuthorizeCall, CodesForMissingWrongAndMisusedTokens) {
  const TokenTable t = Table();
  auto bearer = [](const std::string& token) {
    return std::optional<std::string>("Bearer " + token);
  };
  EXPECT_TRUE(AuthorizeCall(nullptr, std::nullopt, Role::kAdmin, "SubmitSweep").ok());
  EXPECT_EQ(AuthorizeCall(&t, std::nullopt, Role::kAdmin, "SubmitSweep").code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(AuthorizeCall(&t, std::string(kAdmin), Role::kAdmin, "SubmitSweep").code(),
            StatusCode::kUnauthenticated);  // not a Bearer value
  EXPECT_EQ(AuthorizeCall(&t, bearer("nope-nope-nope-nope"), Role::kRead, "ListSweeps").code(),
            StatusCode::kUnauthenticated);
  const Status denied = AuthorizeCall(&t, bearer(kWorker), Role::kAdmin, "SubmitSweep");
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(denied.message().find("SubmitSweep"), std::string::npos);
  EXPECT_EQ(denied.message().find(kWorker), std::string::npos);
  EXPECT_TRUE(AuthorizeCall(&t, bearer(kAdmin), Role::kAdmin, "SubmitSweep").ok());
  EXPECT_TRUE(AuthorizeCall(&t, bearer(kAdmin), Role::kRead, "ListSweeps").ok());
  EXPECT_TRUE(AuthorizeCall(&t, bearer(kRead), Role::kRead, "ListSweeps").ok());
  EXPECT_EQ(AuthorizeCall(&t, bearer(kRead), Role::kAdmin, "CancelSweep").code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(AuthorizeCall(&t, bearer(kAdmin), Role::kWorker, "AcquireRun").code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(AuthorizeCall(&t, bearer(kWorker), Role::kRead, "GetResults").code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(AuthorizeCall(&t, bearer(kWorker), Role::kWorker, "AcquireRun").ok());
}

// RFC 9110 11.1: the auth-scheme is case-insensitive, and 1*SP separates it from the
// credentials.
TEST(AuthorizeCall, BearerSchemeInAnyCase) {
  const TokenTable t = Table();
  for (const std::string scheme : {"Bearer ", "bearer ", "BEARER ", "bEaReR ", "Bearer   "}) {
    EXPECT_TRUE(AuthorizeCall(&t, scheme + kRead, Role::kRead, "ListSweeps").ok()) << scheme;
    // The same worker identity whatever the spelling of the scheme.
    EXPECT_EQ(CallerIdentity(scheme + kWorker, ""), CallerIdentity("Bearer " + kWorker, ""))
        << scheme;
  }
  for (const std::string& value :
       std::vector<std::string>{"Bearer" + kRead, "Bearer ", "Bearer", "Bearerx " + kRead,
                                "Basic " + kRead, " Bearer " + kRead, "Bearer\t" + kRead}) {
    EXPECT_EQ(AuthorizeCall(&t, value, Role::kRead, "ListSweeps").code(),
              StatusCode::kUnauthenticated)
        << value;
  }
}

// Issue 8 item 9: the digest a worker registration is bound to.
TEST(CallerIdentity, DigestOfTokenAndCertificateNeverTheTokenItself) {
  auto bearer = [](const std::string& token) {
    return std::optional<std::string>("Bearer " + token);
  };
  EXPECT_EQ(CallerIdentity(std::nullopt, ""), "");
  EXPECT_EQ(CallerIdentity(std::string("Basic abc"), ""), "");  // not a bearer token
  const std::string a = CallerIdentity(bearer(kWorker), "");
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a, CallerIdentity(bearer(kWorker), ""));  // stable
  EXPECT_EQ(a.find(kWorker), std::string::npos);
  EXPECT_NE(a, CallerIdentity(bearer(kAdmin), ""));
  // The certificate counts too, and token and certificate cannot stand in for each other.
  EXPECT_NE(a, CallerIdentity(bearer(kWorker), "-----BEGIN CERTIFICATE-----"));
  EXPECT_NE(CallerIdentity(std::nullopt, "x"), CallerIdentity(bearer("x"), ""));
  EXPECT_NE(CallerIdentity(bearer("ab"), "c"), CallerIdentity(bearer("a"), "bc"));
}

}  // namespace
}  // namespace resweep
