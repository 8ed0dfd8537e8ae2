#include "coordinator/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <sstream>
#include <string_view>

#include "common/file_util.h"

namespace resweep {

namespace {

std::array<unsigned char, 32> Digest(const std::string& token) {
  std::array<unsigned char, 32> d;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  return d;
}

constexpr size_t kMinTokenLength = 16;

// The token of an "Authorization: Bearer <token>" value: the scheme in any case
// (RFC 9110 11.1: auth-scheme is case-insensitive), then one or more spaces, then the
// token (which holds no spaces: TokenTable::Parse splits on them). "" when the value
// is absent, another scheme, or has no token.
std::string BearerToken(const std::optional<std::string>& authorization) {
  static constexpr std::string_view kScheme = "bearer";
  if (!authorization || authorization->size() <= kScheme.size()) return "";
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char c = (*authorization)[i];
    if ((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != kScheme[i]) return "";
  }
  size_t start = kScheme.size();
  if ((*authorization)[start] != ' ') return "";
  while (start < authorization->size() && (*authorization)[start] == ' ') ++start;
  return authorization->substr(start);
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kWorker:
      return "worker";
    case Role::kAdmin:
      return "admin";
    case Role::kRead:
      return "read";
  }
  return "?";
}

StatusOr<TokenTable> TokenTable::Parse(const std::string& content, const std::string& source) {
  TokenTable table;
  std::istringstream in(content);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string role_name, token, extra;
    if (!(words >> role_name)) continue;  // blank or comment
    const std::string where = source + ":" + std::to_string(number) + ": ";
    if (!(words >> token) || (words >> extra)) {
      return InvalidArgumentError(where + "expected '<role> <token>'");
    }
    Role role;
    if (role_name == "worker") {
      role = Role::kWorker;
    } else if (role_name == "admin") {
      role = Role::kAdmin;
    } else if (role_name == "read") {
      role = Role::kRead;
    } else {
      return InvalidArgumentError(where + "unknown role '" + role_name +
                                  "' (worker, admin or read)");
    }
    if (token.size() < kMinTokenLength) {
      return InvalidArgumentError(where + "token too short (at least " +
                                  std::to_string(kMinTokenLength) + " characters)");
    }
    const auto digest = Digest(token);
    for (const auto& e : table.entries_) {
      if (e.digest == digest) return InvalidArgumentError(where + "token listed twice");
    }
    table.entries_.push_back({digest, role});
  }
  if (table.entries_.empty()) return InvalidArgumentError(source + ": no tokens");
  return table;
}

StatusOr<TokenTable> TokenTable::LoadFile(const std::string& path) {
  auto content = ReadNamedFile(path, "token file");
  if (!content.ok()) return content.status();
  return Parse(*content, path);
}

std::optional<Role> TokenTable::Lookup(const std::string& token) const {
  // Every entry is compared, digest against digest, so neither the time nor the
  // comparison depends on where (or whether) the token matches.
  const auto digest = Digest(token);
  std::optional<Role> found;
  for (const auto& e : entries_) {
    if (CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0) found = e.role;
  }
  return found;
}

bool RoleAllows(Role role, Role needed) {
  return role == needed || (role == Role::kAdmin && needed == Role::kRead);
}

Status AuthorizeCall(const TokenTable* tokens, const std::optional<std::string>& authorization,
                     Role needed, const char* method) {
  if (!tokens) return Status::Ok();
  const std::string token = BearerToken(authorization);
  if (token.empty()) {
    return UnauthenticatedError(std::string(method) + ": no token (this coordinator requires one)");
  }
  const auto role = tokens->Lookup(token);
  if (!role) return UnauthenticatedError(std::string(method) + ": invalid token");
  if (!RoleAllows(*role, needed)) {
    auto article = [](Role r) { return r == Role::kAdmin ? "an " : "a "; };
    return PermissionDeniedError(std::string(method) + " needs " + article(needed) +
                                 RoleName(needed) + " token; this is " + article(*role) +
                                 RoleName(*role) + " token");
  }
  return Status::Ok();
}

std::string CallerIdentity(const std::optional<std::string>& authorization,
                           const std::string& client_certificate_pem) {
  const std::string token = BearerToken(authorization);
  if (token.empty() && client_certificate_pem.empty()) return "";
  // Lengths first: no two different (token, certificate) pairs hash the same input.
  const std::string input = "resweep worker identity v1\n" + std::to_string(token.size()) + "\n" +
                            token + std::to_string(client_certificate_pem.size()) + "\n" +
                            client_certificate_pem;
  const auto digest = Digest(input);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : digest) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 0xf]);
  }
  return hex;
}

}  // namespace resweep
