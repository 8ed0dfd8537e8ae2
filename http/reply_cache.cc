#include "http/reply_cache.h"

#include <iterator>

namespace resweep::http {

namespace {

void AppendField(std::string* key, std::string_view field) {
  key->append(std::to_string(field.size()));
  key->push_back(':');
  key->append(field);
}

}  // namespace

std::string ReplyCacheKey(std::string_view path, const QueryParams& params) {
  // QueryParams is ordered by name (and, for a repeated name, by arrival: a request
  // with a repeated parameter is refused, so never cached).
  std::string key;
  AppendField(&key, path);
  for (const auto& [name, value] : params) {
    AppendField(&key, name);
    AppendField(&key, value);
  }
  return key;
}

ReplyCache::ReplyCache(size_t max_bytes) : max_bytes_(max_bytes) {}

std::shared_ptr<const CachedReply> ReplyCache::Find(const std::string& key, int64_t stamp) {
  if (!enabled()) return nullptr;
  MutexLock lock(&mutex_);
  auto found = index_.find(key);
  if (found == index_.end()) return nullptr;
  const Lru::iterator it = found->second;
  if (it->stamp != stamp) {
    if (it->stamp < stamp) EraseLocked(it);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it);
  return it->reply;
}

int ReplyCache::Insert(const std::string& key, int64_t stamp,
                       std::shared_ptr<const CachedReply> reply) {
  if (!enabled() || !reply) return 0;
  const size_t bytes = kEntryOverheadBytes + key.size() + reply->body.size() + reply->etag.size() +
                       reply->content_type.size();
  MutexLock lock(&mutex_);
  if (auto found = index_.find(key); found != index_.end()) {
    if (found->second->stamp > stamp) return 0;
    EraseLocked(found->second);
  }
  if (bytes > max_bytes_) return 0;
  int evicted = 0;
  while (bytes_ + bytes > max_bytes_ && !lru_.empty()) {
    EraseLocked(std::prev(lru_.end()));
    ++evicted;
  }
  lru_.push_front(Entry{key, stamp, std::move(reply), bytes});
  // The index's key views the entry's own copy, which lives as long as the entry.
  index_.emplace(lru_.front().key, lru_.begin());
  bytes_ += bytes;
  return evicted;
}

void ReplyCache::EraseLocked(Lru::iterator it) {
  bytes_ -= it->bytes;
  index_.erase(it->key);
  lru_.erase(it);
}

size_t ReplyCache::bytes() const {
  MutexLock lock(&mutex_);
  return bytes_;
}

size_t ReplyCache::size() const {
  MutexLock lock(&mutex_);
  return lru_.size();
}

}  // namespace resweep::http
