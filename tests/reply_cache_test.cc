// The HTTP reply cache (http/reply_cache.h): what it answers for which stamp, its
// bound in bytes and its order of eviction, and its keys.
#include "http/reply_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace resweep::http {
namespace {

std::shared_ptr<const CachedReply> Reply(const std::string& body) {
  return std::make_shared<CachedReply>(
      CachedReply{"application/json", body, "\"etag-of-" + body.substr(0, 8) + "\""});
}

// What an entry of `key` with `body` takes (as Insert counts it).
size_t EntryBytes(const std::string& key, const std::string& body) {
  return ReplyCache::kEntryOverheadBytes + key.size() + body.size() + Reply(body)->etag.size() +
         std::string("application/json").size();
}

TEST(ReplyCache, AnswersOnlyForTheStampTheReplyWasComputedAt) {
  ReplyCache cache(1 << 20);
  EXPECT_EQ(cache.Find("k", 5), nullptr);
  EXPECT_EQ(cache.Insert("k", 5, Reply("five")), 0);
  auto hit = cache.Find("k", 5);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->body, "five");
  EXPECT_EQ(hit->etag, "\"etag-of-five\"");
  EXPECT_EQ(hit->content_type, "application/json");
  // A reader that read an older stamp (before the entry's) misses and leaves it.
  EXPECT_EQ(cache.Find("k", 4), nullptr);
  EXPECT_NE(cache.Find("k", 5), nullptr);
  // The sweep changed: the entry is stale, gone for good.
  EXPECT_EQ(cache.Find("k", 6), nullptr);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_EQ(cache.Find("k", 5), nullptr);
}

TEST(ReplyCache, AReplyOfAnOlderStampNeverReplacesANewerOne) {
  ReplyCache cache(1 << 20);
  cache.Insert("k", 7, Reply("seven"));
  // A slower request that read stamp 6 finishes after one that read 7.
  cache.Insert("k", 6, Reply("six"));
  ASSERT_NE(cache.Find("k", 7), nullptr);
  EXPECT_EQ(cache.Find("k", 7)->body, "seven");
  // A newer one replaces it, and the bytes are those of the new entry alone.
  cache.Insert("k", 8, Reply("eight!"));
  EXPECT_EQ(cache.Find("k", 8)->body, "eight!");
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.bytes(), EntryBytes("k", "eight!"));
}

TEST(ReplyCache, EvictsTheLeastRecentlyUsedToStayWithinItsBytes) {
  const std::string body(1000, 'x');
  const size_t entry = EntryBytes("a", body);
  ReplyCache cache(3 * entry);
  EXPECT_EQ(cache.Insert("a", 1, Reply(body)), 0);
  EXPECT_EQ(cache.Insert("b", 1, Reply(body)), 0);
  EXPECT_EQ(cache.Insert("c", 1, Reply(body)), 0);
  EXPECT_EQ(cache.bytes(), 3 * entry);
  // "a" is used again: "b" is now the least recently used.
  ASSERT_NE(cache.Find("a", 1), nullptr);
  EXPECT_EQ(cache.Insert("d", 1, Reply(body)), 1);
  EXPECT_EQ(cache.Find("b", 1), nullptr);
  EXPECT_NE(cache.Find("a", 1), nullptr);
  EXPECT_NE(cache.Find("c", 1), nullptr);
  EXPECT_NE(cache.Find("d", 1), nullptr);
  EXPECT_EQ(cache.bytes(), 3 * entry);
  // A bigger reply makes room for itself: two entries go.
  const std::string big(1000 + entry, 'y');
  EXPECT_EQ(cache.Insert("e", 1, Reply(big)), 2);
  EXPECT_LE(cache.bytes(), 3 * entry);
  EXPECT_NE(cache.Find("e", 1), nullptr);
  EXPECT_EQ(cache.size(), 2u);
  // One larger than the whole cache is not kept, and evicts nothing.
  EXPECT_EQ(cache.Insert("huge", 1, Reply(std::string(3 * entry, 'z'))), 0);
  EXPECT_EQ(cache.Find("huge", 1), nullptr);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(ReplyCache, OfZeroBytesKeepsNothing) {
  ReplyCache cache(0);
  EXPECT_FALSE(cache.enabled());
  EXPECT_EQ(cache.Insert("k", 1, Reply("one")), 0);
  EXPECT_EQ(cache.Find("k", 1), nullptr);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(ReplyCache, KeysTellPathsAndParametersApartButNotTheParametersOrder) {
  const QueryParams ab = {{"a", "1"}, {"b", "2"}};
  QueryParams ba;
  ba.emplace("b", "2");
  ba.emplace("a", "1");
  EXPECT_EQ(ReplyCacheKey("/sweeps/x/curves", ab), ReplyCacheKey("/sweeps/x/curves", ba));
  EXPECT_NE(ReplyCacheKey("/sweeps/x/curves", ab), ReplyCacheKey("/sweeps/y/curves", ab));
  EXPECT_NE(ReplyCacheKey("/sweeps/x/curves", ab), ReplyCacheKey("/sweeps/x/results", ab));
  EXPECT_NE(ReplyCacheKey("/sweeps/x/curves", ab), ReplyCacheKey("/sweeps/x/curves", {}));
  EXPECT_NE(ReplyCacheKey("/sweeps/x/curves", {{"metric", "lr"}}),
            ReplyCacheKey("/sweeps/x/curves", {{"metric", "test_error"}}));
  // No two parameter lists run together alike.
  EXPECT_NE(ReplyCacheKey("/p", {{"a", "b1"}}), ReplyCacheKey("/p", {{"ab", "1"}}));
  EXPECT_NE(ReplyCacheKey("/p", {{"a", ""}, {"b", ""}}), ReplyCacheKey("/p", {{"a", "1:b0:"}}));
}

// Many threads finding, inserting and evicting at once (run under make tsan too):
// the bytes stay within the bound and every hit is the reply of its stamp.
TEST(ReplyCache, IsSafeToUseFromManyThreads) {
  ReplyCache cache(20 * EntryBytes("key-0", std::string(100, 'x')));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string key = "key-" + std::to_string((i * 7 + t) % 40);
        const int64_t stamp = i / 100;
        if (auto hit = cache.Find(key, stamp)) {
          EXPECT_EQ(hit->body, std::string(100, static_cast<char>('a' + stamp % 26)));
        } else {
          cache.Insert(key, stamp, Reply(std::string(100, static_cast<char>('a' + stamp % 26))));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(cache.bytes(), cache.max_bytes());
}

}  // namespace
}  // namespace resweep::http
