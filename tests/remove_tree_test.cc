#include "common/remove_tree.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "tests/test_util.h"

namespace resweep {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

TEST(RemoveTree, RemovesNestedFilesAndDirectoriesButNotLinkTargets) {
  testing::TempDir outside;
  std::ofstream(outside.File("keep")) << "kept";
  testing::TempDir dir;
  const std::string root = dir.File("run-1");
  ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((root + "/sub").c_str(), 0755), 0);
  std::ofstream(root + "/a.ckpt") << "a";
  std::ofstream(root + "/sub/b.ckpt") << "b";
  // A link to a directory outside: removed as a link, its target untouched.
  ASSERT_EQ(symlink(outside.path().c_str(), (root + "/link").c_str()), 0);
  ASSERT_TRUE(RemoveTree(root).ok());
  EXPECT_FALSE(Exists(root));
  EXPECT_TRUE(Exists(outside.File("keep")));
  EXPECT_TRUE(Exists(dir.path()));
}

TEST(RemoveTree, MissingPathIsOkAndAPlainFileIsRemoved) {
  testing::TempDir dir;
  EXPECT_TRUE(RemoveTree(dir.File("never-made")).ok());
  std::ofstream(dir.File("f")) << "x";
  EXPECT_TRUE(RemoveTree(dir.File("f")).ok());
  EXPECT_FALSE(Exists(dir.File("f")));
}

TEST(RemoveTree, ReportsAPathItCannotReach) {
  testing::TempDir dir;
  std::ofstream(dir.File("file")) << "x";
  // A path through a regular file: neither missing nor removable.
  const Status s = RemoveTree(dir.File("file") + "/child");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(dir.File("file") + "/child"), std::string::npos) << s.message();
  EXPECT_TRUE(Exists(dir.File("file")));
}

}  // namespace
}  // namespace resweep
