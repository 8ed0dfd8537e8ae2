#include "worker/dataset.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "tests/data_files.h"

namespace resweep {
namespace {

using namespace resweep::testing;

TEST(Cifar10, ReadsRecordsInTheOfficialLayout) {
  TempDir dir;
  WriteCifarDir(dir.path(), 3, 4, /*learnable=*/false);
  auto d = LoadCifar10(dir.path());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->train_images.sizes(), (std::vector<int64_t>{15, 3, 32, 32}));
  EXPECT_EQ(d->test_images.sizes(), (std::vector<int64_t>{4, 3, 32, 32}));
  EXPECT_EQ(d->train_images.dtype(), torch::kUInt8);
  // data_batch_2 record 1: label (1 + 2) % 10; pixel byte p = (7 + p) % 256.
  EXPECT_EQ(d->train_labels[4].item<int64_t>(), 3);
  // Byte p = 1024 + 32 * 5 + 6 is G plane, row 5, column 6.
  EXPECT_EQ(d->train_images[4][1][5][6].item<uint8_t>(), (7 + 1024 + 32 * 5 + 6) % 256);
  EXPECT_EQ(d->train_images[4][0][0][0].item<uint8_t>(), 7);
  EXPECT_EQ(d->test_labels[3].item<int64_t>(), 3);
}

TEST(Cifar10, TruncatedFileIsNamed) {
  TempDir dir;
  WriteCifarDir(dir.path(), 2, 2, false);
  std::string batch = CifarBatch(2);
  WriteFile(dir.File("data_batch_3.bin"), batch.substr(0, batch.size() - 100));
  auto d = LoadCifar10(dir.path());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("data_batch_3.bin"), std::string::npos);
  EXPECT_NE(d.status().message().find("3073-byte"), std::string::npos);
}

TEST(Cifar10, LabelOutOfRangeAndMissingFiles) {
  TempDir dir;
  WriteCifarDir(dir.path(), 2, 2, false);
  std::string batch = CifarBatch(2);
  batch[3073] = 12;  // record 1's label
  WriteFile(dir.File("test_batch.bin"), batch);
  auto d = LoadCifar10(dir.path());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("test_batch.bin: record 1 has label 12"), std::string::npos)
      << d.status().message();
  std::remove(dir.File("data_batch_5.bin").c_str());
  EXPECT_EQ(LoadCifar10(dir.path()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(LoadCifar10(dir.File("nope")).status().code(), StatusCode::kNotFound);
}

void WriteFashionDir(const std::string& dir, int train, int test) {
  WriteGz(dir + "/train-images-idx3-ubyte.gz", IdxImages(train, 28, 28));
  WriteGz(dir + "/train-labels-idx1-ubyte.gz", IdxLabels(train));
  WriteGz(dir + "/t10k-images-idx3-ubyte.gz", IdxImages(test, 28, 28));
  WriteGz(dir + "/t10k-labels-idx1-ubyte.gz", IdxLabels(test));
}

TEST(FashionMnist, ReadsGzippedIdx) {
  TempDir dir;
  WriteFashionDir(dir.path(), 12, 5);
  auto d = LoadFashionMnist(dir.path());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->train_images.sizes(), (std::vector<int64_t>{12, 1, 28, 28}));
  EXPECT_EQ(d->test_labels.sizes(), (std::vector<int64_t>{5}));
  EXPECT_EQ(d->train_labels[11].item<int64_t>(), 1);
  EXPECT_EQ(d->train_images[3][0][2][5].item<uint8_t>(), (3 + 2 * 28 + 5) % 256);
}

TEST(FashionMnist, BadMagicCorruptGzipMismatchAndLabels) {
  TempDir dir;
  WriteFashionDir(dir.path(), 4, 4);
  std::string images = IdxImages(4, 28, 28);
  images[3] = 0x05;
  WriteGz(dir.File("t10k-images-idx3-ubyte.gz"), images);
  auto bad_magic = LoadFashionMnist(dir.path());
  EXPECT_NE(bad_magic.status().message().find("bad IDX magic 0x00000805"), std::string::npos)
      << bad_magic.status().message();

  WriteFashionDir(dir.path(), 4, 4);
  std::string gz = ReadFile(dir.File("train-images-idx3-ubyte.gz"));
  for (size_t i = 20; i < gz.size() - 8; ++i) gz[i] = static_cast<char>(gz[i] ^ 0x5a);
  WriteFile(dir.File("train-images-idx3-ubyte.gz"), gz);
  auto corrupt = LoadFashionMnist(dir.path());
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(corrupt.status().message().find("train-images-idx3-ubyte.gz"), std::string::npos);
  EXPECT_NE(corrupt.status().message().find("gzip"), std::string::npos)
      << corrupt.status().message();

  WriteFashionDir(dir.path(), 4, 4);
  WriteGz(dir.File("train-labels-idx1-ubyte.gz"), IdxLabels(3));
  EXPECT_NE(LoadFashionMnist(dir.path()).status().message().find("4 images but 3 labels"),
            std::string::npos);

  WriteFashionDir(dir.path(), 4, 12);
  WriteGz(dir.File("t10k-labels-idx1-ubyte.gz"), IdxLabels(12, 13));  // labels 10 and 11
  EXPECT_NE(LoadFashionMnist(dir.path()).status().message().find("outside 0..9"),
            std::string::npos);

  WriteFashionDir(dir.path(), 4, 4);
  std::string truncated = IdxImages(4, 28, 28);
  WriteGz(dir.File("train-images-idx3-ubyte.gz"), truncated.substr(0, truncated.size() - 10));
  EXPECT_NE(LoadFashionMnist(dir.path()).status().message().find("header promises"),
            std::string::npos);
}

TEST(FashionMnist, RealDebianFilesLoad) {
  const std::string path = "/usr/share/datasets/fashion-mnist";
  struct stat st;
  if (stat(path.c_str(), &st) != 0) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto d = LoadFashionMnist(path);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->train_images.size(0), 60000);
  EXPECT_EQ(d->test_images.size(0), 10000);
  EXPECT_EQ(d->train_labels.bincount().size(0), 10);
}

// The stored corpus of broken data files (tests/corpus/data/MANIFEST): each is
// refused with an error that names the file and the problem.
TEST(BadDataFiles, StoredCorpusIsRefusedWithClearErrors) {
  const std::string corpus = std::string(RESWEEP_SOURCE_DIR) + "/tests/corpus/data";
  std::istringstream manifest(ReadFile(corpus + "/MANIFEST"));
  int cases = 0;
  for (std::string line; std::getline(manifest, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string file, loader, expected;
    words >> file >> loader;
    std::getline(words >> std::ws, expected);
    const std::string path = corpus + "/" + file;
    Status st;
    std::string named = path;
    if (loader == "cifar") {
      torch::Tensor images, labels;
      st = ReadCifar10Batch(path, &images, &labels);
    } else if (loader == "idx") {
      st = ReadIdxGz(path).status();
    } else if (loader == "fashion-labels") {
      TempDir dir;
      WriteFashionDir(dir.path(), 11, 4);
      WriteFile(dir.File("train-labels-idx1-ubyte.gz"), ReadFile(path));
      st = LoadFashionMnist(dir.path()).status();
      named = dir.File("train-labels-idx1-ubyte.gz");
    } else {
      FAIL() << "MANIFEST: unknown loader " << loader;
    }
    ++cases;
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << file << ": " << st.ToString();
    EXPECT_NE(st.message().find(expected), std::string::npos)
        << file << ": expected '" << expected << "' in: " << st.message();
    EXPECT_NE(st.message().find(named), std::string::npos) << file << ": " << st.message();
  }
  EXPECT_GE(cases, 12);
}

TEST(DatasetPath, ResolvesAgainstTheDataRoot) {
  TempDir root;
  std::filesystem::create_directories(root.File("cifar-10-batches-bin"));
  std::filesystem::create_directories(root.File("mine/sub"));
  const std::string canonical_root = std::filesystem::canonical(root.path()).string();
  DatasetConfig c;
  c.kind = "cifar10";
  EXPECT_EQ(*ResolveDatasetPath(c, root.path(), false), canonical_root + "/cifar-10-batches-bin");
  for (const std::string spelling : {"mine", "./mine", "mine/", "mine/sub/..", "mine//"}) {
    c.path = spelling;
    auto resolved = ResolveDatasetPath(c, root.path(), false);
    ASSERT_TRUE(resolved.ok()) << spelling << ": " << resolved.status().ToString();
    EXPECT_EQ(*resolved, canonical_root + "/mine") << spelling;
  }
  c.path = "/abs/cifar";
  EXPECT_EQ(*ResolveDatasetPath(c, root.path(), true), "/abs/cifar");
  c.path = "missing";  // inside the root: the run can say what is missing
  EXPECT_EQ(*ResolveDatasetPath(c, root.path(), false), canonical_root + "/missing");
  c.kind = "fashion-mnist";
  c.path = "";
  EXPECT_EQ(*ResolveDatasetPath(c, "/nonexistent", false), "/usr/share/datasets/fashion-mnist");
}

// A submitter must not learn which folders exist on a worker host: every way out of
// --data-root is refused with the same message whether its target exists or not.
TEST(DatasetPath, RelativePathsStayUnderTheDataRootAndAbsoluteOnesNeedTheFlag) {
  TempDir dir;
  const std::string root = dir.File("root");
  std::filesystem::create_directories(root + "/inside");
  std::filesystem::create_directories(dir.File("outside/real"));
  std::filesystem::create_directory_symlink(dir.File("outside"), root + "/link-out");
  std::filesystem::create_directory_symlink(root + "/inside", root + "/link-in");
  DatasetConfig c;
  c.kind = "cifar10";
  auto refused = [&](const std::string& path, bool allow_absolute) {
    c.path = path;
    auto resolved = ResolveDatasetPath(c, root, allow_absolute);
    EXPECT_FALSE(resolved.ok()) << path << " resolved to " << *resolved;
    if (resolved.ok()) return std::string();
    EXPECT_EQ(resolved.status().code(), StatusCode::kInvalidArgument) << path;
    EXPECT_NE(resolved.status().message().find("dataset.path " + path), std::string::npos)
        << resolved.status().message();
    return std::string(resolved.status().message());
  };
  // `..` out of the root, to a folder that exists and to one that does not.
  const std::string up_real = refused("../outside/real", false);
  const std::string up_none = refused("../outside/none", false);
  EXPECT_NE(up_real.find("leaves --data-root"), std::string::npos) << up_real;
  EXPECT_EQ(up_real.substr(up_real.find(" leaves")), up_none.substr(up_none.find(" leaves")));
  refused("inside/../../outside/real", false);
  refused("..", false);
  // Through a link that leads out, even when its target does not exist.
  const std::string link_real = refused("link-out/real", false);
  const std::string link_none = refused("link-out/none", false);
  EXPECT_EQ(link_real.substr(link_real.find(" leaves")),
            link_none.substr(link_none.find(" leaves")));
  // Absolute paths: refused without --allow-absolute-data-paths, existing or not.
  const std::string abs_real = refused(dir.File("outside/real"), false);
  const std::string abs_none = refused(dir.File("outside/none"), false);
  EXPECT_NE(abs_real.find("--allow-absolute-data-paths"), std::string::npos) << abs_real;
  EXPECT_EQ(abs_real.substr(abs_real.find(" is absolute")),
            abs_none.substr(abs_none.find(" is absolute")));
  // Allowed: a link that stays inside, and absolute paths with the flag.
  c.path = "link-in";
  EXPECT_EQ(*ResolveDatasetPath(c, root, false),
            std::filesystem::canonical(root + "/inside").string());
  c.path = dir.File("outside/real");
  EXPECT_EQ(*ResolveDatasetPath(c, root, true),
            std::filesystem::canonical(dir.File("outside/real")).string());
}

TEST(DatasetCache, OneFolderLoadsOnceHoweverItIsSpelled) {
  TempDir root;
  std::filesystem::create_directories(root.File("a"));
  WriteCifarDir(root.File("a"), 2, 3, /*learnable=*/false);
  std::filesystem::create_directory_symlink(root.File("a"), root.File("alias"));
  DatasetCache cache({.data_root = root.path()});
  DatasetConfig c;
  c.kind = "cifar10";
  std::shared_ptr<const Dataset> first;
  for (const std::string spelling : {"a", "./a", "a/", "alias", "a/../a"}) {
    c.path = spelling;
    auto d = cache.Get(c);
    ASSERT_TRUE(d.ok()) << spelling << ": " << d.status().ToString();
    if (!first) first = *d;
    EXPECT_EQ(d->get(), first.get()) << spelling;
  }
  EXPECT_EQ(cache.loads(), 1);
  c.path = "../a";
  EXPECT_EQ(cache.Get(c).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.loads(), 1);  // refused before anything is read
}

TEST(DatasetCache, KeepsTheMostRecentlyUsedDataSetsWithinItsByteBudget) {
  TempDir root;
  for (const char* name : {"a", "b", "c"}) {
    std::filesystem::create_directories(root.File(name));
    WriteCifarDir(root.File(name), 2, 3, false);
  }
  DatasetConfig c;
  c.kind = "cifar10";
  c.path = "a";
  int64_t one = 0;
  {
    DatasetCache probe({.data_root = root.path()});
    ASSERT_TRUE(probe.Get(c).ok());
    one = probe.cached_bytes();  // 13 images of 3x32x32 and their labels
  }
  ASSERT_GT(one, 13 * 3072);
  DatasetCache cache({.data_root = root.path(), .max_bytes = 2 * one});
  auto get = [&](const char* name) {
    c.path = name;
    auto d = cache.Get(c);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
  };
  get("a");
  get("b");
  get("a");  // a is now the most recently used; b the least
  EXPECT_EQ(cache.loads(), 2);
  get("c");  // drops b
  EXPECT_EQ(cache.loads(), 3);
  EXPECT_EQ(cache.cached_bytes(), 2 * one);
  get("a");
  EXPECT_EQ(cache.loads(), 3);
  get("b");  // loaded again
  EXPECT_EQ(cache.loads(), 4);
  EXPECT_LE(cache.cached_bytes(), 2 * one);

  // A data set bigger than the whole budget is handed out but not kept.
  DatasetCache tiny({.data_root = root.path(), .max_bytes = one - 1});
  c.path = "a";
  auto d1 = tiny.Get(c);
  auto d2 = tiny.Get(c);
  ASSERT_TRUE(d1.ok() && d2.ok());
  EXPECT_EQ((*d1)->train_images.size(0), 10);
  EXPECT_EQ(tiny.loads(), 2);
  EXPECT_EQ(tiny.cached_bytes(), 0);
}

}  // namespace
}  // namespace resweep
