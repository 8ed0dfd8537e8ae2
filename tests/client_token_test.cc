// Client token files (common/channel.h): the token alone, or the coordinator's
// "<role> <token>" lines, from which each client takes the role it can use.
#include <gtest/gtest.h>

#include "common/channel.h"
#include "coordinator/auth.h"
#include "tests/test_util.h"

namespace resweep {
namespace {

const std::string kAdmin = "admin-token-0123456789";
const std::string kWorker = "worker-token-0123456789";
const std::string kRead = "read-token-0123456789ab";
// The coordinator's own token file, as docs/security.md shows it.
const std::string kCoordinatorFile = "# role token\nadmin " + kAdmin + "\n\nworker " + kWorker +
                                     "  # trailing comment\nread\t" + kRead + "\n";

StatusOr<std::string> Parse(const std::string& content, const std::vector<std::string>& roles) {
  return ParseClientTokenFile(content, "tokens.txt", roles);
}

TEST(ClientTokenFile, TheTokenAloneIsTakenWhateverTheRole) {
  for (const auto& roles :
       std::vector<std::vector<std::string>>{{"worker"}, {"admin", "read"}, {"read"}}) {
    EXPECT_EQ(*Parse(kWorker + "\n", roles), kWorker);
    EXPECT_EQ(*Parse("  " + kWorker + "  \r\n\n", roles), kWorker);
    EXPECT_EQ(*Parse("# the worker token\n\n" + kWorker + "  # mine\n", roles), kWorker);
  }
  // A one-word file is the token as written, '#' included (as before role lines).
  EXPECT_EQ(*Parse("abc#def0123456789\n", {"worker"}), "abc#def0123456789");
}

TEST(ClientTokenFile, RoleLinesGiveEachClientItsRoleInPreferenceOrder) {
  EXPECT_EQ(*Parse(kCoordinatorFile, {"worker"}), kWorker);
  EXPECT_EQ(*Parse(kCoordinatorFile, {"admin", "read"}), kAdmin);
  EXPECT_EQ(*Parse("read " + kRead + "\nworker " + kWorker + "\n", {"admin", "read"}), kRead);
  // The first line of a role wins (a coordinator may list two during a rotation).
  EXPECT_EQ(*Parse("worker " + kWorker + "\nworker other-token-0123456\n", {"worker"}), kWorker);
  // What the client takes is what the coordinator reads from the same file.
  auto table = TokenTable::Parse(kCoordinatorFile, "tokens.txt");
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ(table->Lookup(*Parse(kCoordinatorFile, {"worker"})), Role::kWorker);
  EXPECT_EQ(table->Lookup(*Parse(kCoordinatorFile, {"admin", "read"})), Role::kAdmin);
}

TEST(ClientTokenFile, AFileWithoutAUsableRoleIsRefusedNamingTheFileAndItsLines) {
  auto no_worker = Parse("# tokens\nadmin " + kAdmin + "\nread " + kRead + "\n", {"worker"});
  ASSERT_EQ(no_worker.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(no_worker.status().message(),
            "tokens.txt has no line for the worker role, which this program needs (line 2: "
            "admin, line 3: read)");
  auto no_admin = Parse("worker " + kWorker + "\n", {"admin", "read"});
  ASSERT_EQ(no_admin.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(no_admin.status().message(),
            "tokens.txt has no line for the admin or read role, which this program needs (line "
            "1: worker)");
}

TEST(ClientTokenFile, MalformedFilesAreRefusedWithTheLine) {
  struct Case {
    std::string content;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"worker " + kWorker + "\nadmin\n",
       "tokens.txt:2: expected '<role> <token>' (or a file holding only the token)"},
      {"worker " + kWorker + " extra\n",
       "tokens.txt:1: expected '<role> <token>' (or a file holding only the token)"},
      {"# x\nwroker " + kWorker + "\n",
       "tokens.txt:2: unknown role 'wroker' (worker, admin or read)"},
      {"", "tokens.txt holds no token"},
      {"# only a comment\n\n", "tokens.txt holds no token"},
  };
  for (const auto& c : cases) {
    auto token = Parse(c.content, {"worker"});
    ASSERT_FALSE(token.ok()) << c.content;
    EXPECT_EQ(token.status().code(), StatusCode::kInvalidArgument) << c.content;
    EXPECT_EQ(token.status().message(), c.message) << c.content;
  }
}

TEST(ClientTokenFile, LoadClientSecurityReadsEitherFormatAndNamesTheFlagAndFile) {
  testing::TempDir dir;
  const std::string tokens = dir.File("tokens"), bare = dir.File("worker.token");
  testing::WriteFile(tokens, kCoordinatorFile);
  testing::WriteFile(bare, kWorker + "\n");
  ClientSecurityFlags flags;
  flags.token_file = tokens;
  auto worker = LoadClientSecurity(flags, {"worker"});
  ASSERT_TRUE(worker.ok()) << worker.status().ToString();
  EXPECT_EQ(worker->token, kWorker);
  auto cli = LoadClientSecurity(flags, {"admin", "read"});
  ASSERT_TRUE(cli.ok()) << cli.status().ToString();
  EXPECT_EQ(cli->token, kAdmin);
  flags.token_file = bare;
  EXPECT_EQ(LoadClientSecurity(flags, {"admin", "read"})->token, kWorker);

  testing::WriteFile(tokens, "read " + kRead + "\n");
  flags.token_file = tokens;
  auto refused = LoadClientSecurity(flags, {"worker"});
  ASSERT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message().rfind("--token-file " + tokens +
                                                 " has no line for the "
                                                 "worker role",
                                             0),
            0u)
      << refused.status().message();
}

TEST(CoordinatorAddress, AMissingPortMeansResweepsPort) {
  EXPECT_EQ(NormalizeCoordinatorAddress(""), "127.0.0.1:50051");
  EXPECT_EQ(NormalizeCoordinatorAddress("node7"), "node7:50051");
  EXPECT_EQ(NormalizeCoordinatorAddress("node7:"), "node7:50051");
  EXPECT_EQ(NormalizeCoordinatorAddress("node7:6000"), "node7:6000");
  EXPECT_EQ(NormalizeCoordinatorAddress("::1"), "[::1]:50051");
  EXPECT_EQ(NormalizeCoordinatorAddress("[::1]"), "[::1]:50051");
  EXPECT_EQ(NormalizeCoordinatorAddress("[::1]:"), "[::1]:50051");
  EXPECT_EQ(NormalizeCoordinatorAddress("[::1]:7000"), "[::1]:7000");
  EXPECT_EQ(NormalizeCoordinatorAddress("unix:/run/resweep.sock"), "unix:/run/resweep.sock");
  EXPECT_EQ(NormalizeCoordinatorAddress("dns:///node7:6000"), "dns:///node7:6000");
}

}  // namespace
}  // namespace resweep
