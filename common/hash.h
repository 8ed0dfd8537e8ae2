#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace resweep {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(const std::string& data);

// SHA-256 fed in pieces. A copy carries the state so far: hashing many texts that
// share a prefix (a cell's config, then each seed) costs the prefix once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256& other);
  Sha256& operator=(const Sha256& other);

  void Update(std::string_view data);
  // Lower-case hex digest of everything fed so far; the state is unchanged (more
  // may be fed after).
  [[nodiscard]] std::string HexDigest() const;

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

}  // namespace resweep
