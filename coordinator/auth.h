// Role tokens: who may call what.
//
// A token file has one "<role> <token>" per line (# starts a comment); roles are
//   worker  the worker calls (register, acquire, heartbeat, report, checkpoints)
//   admin   submit and cancel, and everything a read token may do
//   read    queries (list, status, runs, results)
// Tokens are kept only as SHA-256 digests and compared in constant time; they are
// never logged.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace resweep {

enum class Role { kWorker, kAdmin, kRead };
const char* RoleName(Role role);

class TokenTable {
 public:
  // Parses a token file's content; errors name `source` and the line.
  static StatusOr<TokenTable> Parse(const std::string& content, const std::string& source);
  static StatusOr<TokenTable> LoadFile(const std::string& path);

  // The role of `token`, or nullopt. Takes the same time whichever entry matches.
  std::optional<Role> Lookup(const std::string& token) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::array<unsigned char, 32> digest;
    Role role;
  };
  std::vector<Entry> entries_;
};

// Whether `role` may make a call that needs `needed`: admin covers read.
bool RoleAllows(Role role, Role needed);

// The decision for one call: `authorization` is the call's metadata value (nullopt
// when absent): "Bearer <token>", the scheme in any case (RFC 9110), one or more
// spaces before the token. UNAUTHENTICATED for a missing or unknown token, PERMISSION_DENIED
// for a known token of the wrong role. With no table (nullptr) every call passes.
Status AuthorizeCall(const TokenTable* tokens, const std::optional<std::string>& authorization,
                     Role needed, const char* method);

// Who makes a call, for binding worker registrations: a hex SHA-256 over the call's
// bearer token (from `authorization`, if any) and its client certificate (PEM, if
// any), under a label of its own so that it is never the digest a TokenTable keeps.
// "" when the call carries neither. Never the token itself.
std::string CallerIdentity(const std::optional<std::string>& authorization,
                           const std::string& client_certificate_pem);

}  // namespace resweep
