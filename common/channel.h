// gRPC client channels to the coordinator, shared by the CLI and the worker:
// plaintext or TLS (optionally with a client certificate), and the role token every
// call carries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/status.h"

namespace resweep {

// Status codes mirror gRPC's, so these are one-to-one.
grpc::Status ToGrpcStatus(const Status& status);
Status FromGrpcStatus(const grpc::Status& status);

// What a client presents to the coordinator. PEM contents, not paths.
struct ClientSecurity {
  std::string root_certs_pem;  // non-empty: TLS, trusting these CAs
  std::string cert_chain_pem;  // with private_key_pem: the client certificate (mutual TLS)
  std::string private_key_pem;
  std::string token;  // sent as "authorization: Bearer <token>" on every call
};

// Paths from the command line; each empty one falls back to its environment
// variable: RESWEEP_TLS_CA, RESWEEP_TLS_CERT, RESWEEP_TLS_KEY, RESWEEP_TOKEN_FILE,
// and RESWEEP_TOKEN (the token itself) when no token file is named anywhere.
struct ClientSecurityFlags {
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string token_file;
};

// Reads the files; an error names the file (or variable) and what is wrong with it.
// `token_roles` are the roles the caller can use, in order of preference (e.g.
// {"worker"}, or {"admin", "read"}): see ParseClientTokenFile for the token file.
StatusOr<ClientSecurity> LoadClientSecurity(ClientSecurityFlags flags,
                                            const std::vector<std::string>& token_roles);

// The token in a client token file's `content`, which holds either
//   - the token alone (one word; # comment lines around it are allowed), or
//   - "<role> <token>" lines as in the coordinator's --token-file (roles worker,
//     admin, read; # starts a comment): the token of the first role of `roles` that
//     has a line, from its first line.
// INVALID_ARGUMENT naming `source` (the file, and how it was named) and the line for
// a malformed line or an unknown role, and naming the roles found when none of
// `roles` has a line.
StatusOr<std::string> ParseClientTokenFile(const std::string& content, const std::string& source,
                                           const std::vector<std::string>& roles);

struct ChannelOptions {
  std::string address = "127.0.0.1:50051";
  int max_message_bytes = 8 << 20;
  ClientSecurity security;
};

// The coordinator address a user typed, as host:port: a missing or empty port means
// resweep's 50051 (gRPC alone would try 443), a bare IPv6 literal gets its brackets;
// "unix:", "dns:", "ipv4:" and "ipv6:" targets are left alone.
std::string NormalizeCoordinatorAddress(const std::string& address);

// A channel to options.address (normalized as above).
std::shared_ptr<grpc::Channel> MakeCoordinatorChannel(const ChannelOptions& options);

// Sets the deadline and attaches the token (if any) to one call.
void PrepareCall(grpc::ClientContext* context, const ClientSecurity& security, int64_t deadline_ms);

// The metadata key the token travels under (lower case, as gRPC requires).
inline constexpr const char* kTokenMetadataKey = "authorization";

// True for 127.0.0.0/8, [::1] and localhost, with any port: the listen addresses a
// server may use without TLS and tokens (coordinator --listen and --http, worker
// --metrics-listen).
bool IsLoopbackListenAddress(const std::string& listen);

// The coordinator address from $RESWEEP_COORDINATOR, else 127.0.0.1:50051.
std::string DefaultCoordinatorAddress();

}  // namespace resweep
