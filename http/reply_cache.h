// A bounded cache of the JSON API's rendered replies about one sweep (its summary,
// runs, results and curves: what a dashboard polls), so that a poll while the sweep
// stands still costs a lookup instead of its query and printing.
//
// The contract: an entry is a reply (body, content type, ETag) stored under a key
// that names the endpoint, its normalized query parameters and the sweep's id (never
// a name or prefix, which may come to name another sweep), with the sweep's change
// stamp (Store::SweepChangeStamp) read BEFORE the reply was computed. Find answers
// only for the very stamp the caller read just now: the reply then shows the data of
// that stamp or newer, and since the stamp has not moved, nothing it shows has
// changed since: it is the reply the query would give now. A change during the query
// leaves the entry stale (its stamp older than the next one read), never wrong.
// Replies do not depend on who asks (any read token sees the same): callers are not
// part of the key.
//
// Bounded by bytes (bodies, ETags and keys, plus a fixed overhead per entry), least
// recently used first out. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/mutex.h"
#include "http/json_api.h"

namespace resweep::http {

struct CachedReply {
  std::string content_type;
  std::string body;
  std::string etag;  // quoted, as sent
};

// The key of a reply of `path` (the API path after /api/v1, naming the sweep by its
// id) with `params`: the same path and parameters (in any order) give the same key;
// any other, another (lengths prefixed: no two lists run together alike).
std::string ReplyCacheKey(std::string_view path, const QueryParams& params);

class ReplyCache {
 public:
  // What an entry takes beyond its strings (list node, index entry, allocations).
  static constexpr size_t kEntryOverheadBytes = 128;

  // Keeps entries of at most `max_bytes` in all; 0 keeps none (Find always misses).
  explicit ReplyCache(size_t max_bytes);
  ReplyCache(const ReplyCache&) = delete;
  ReplyCache& operator=(const ReplyCache&) = delete;

  bool enabled() const { return max_bytes_ > 0; }
  size_t max_bytes() const { return max_bytes_; }

  // The reply stored under `key` if it was computed at `stamp` (then the most recently
  // used); null otherwise. An entry of an older stamp is dropped: it can never be
  // served again (stamps only grow).
  std::shared_ptr<const CachedReply> Find(const std::string& key, int64_t stamp);

  // Stores `reply` under `key`, computed after reading `stamp`, unless the entry there
  // is of a newer stamp (a later reply got there first). Evicts the least recently
  // used entries until everything fits; a reply that alone exceeds max_bytes() is not
  // stored. Returns how many entries were evicted.
  int Insert(const std::string& key, int64_t stamp, std::shared_ptr<const CachedReply> reply);

  size_t bytes() const;
  size_t size() const;

 private:
  struct Entry {
    std::string key;
    int64_t stamp;
    std::shared_ptr<const CachedReply> reply;
    size_t bytes;
  };
  using Lru = std::list<Entry>;  // most recently used first

  void EraseLocked(Lru::iterator it) RESWEEP_REQUIRES(mutex_);

  const size_t max_bytes_;
  mutable Mutex mutex_;
  Lru lru_ RESWEEP_GUARDED_BY(mutex_);
  std::unordered_map<std::string_view, Lru::iterator> index_ RESWEEP_GUARDED_BY(mutex_);
  size_t bytes_ RESWEEP_GUARDED_BY(mutex_) = 0;
};

}  // namespace resweep::http
