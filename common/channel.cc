#include "common/channel.h"

#include <algorithm>

#include <cstdlib>
#include <sstream>

#include "common/file_util.h"

namespace resweep {

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), status.message());
}

Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return Status::Ok();
  return Status(static_cast<StatusCode>(status.error_code()), status.error_message());
}

namespace {

std::string FromEnv(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string Trim(std::string s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

bool IsTokenRole(const std::string& role) {
  return role == "worker" || role == "admin" || role == "read";
}

std::string JoinWords(const std::vector<std::string>& words, const std::string& separator) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : separator) + w;
  return out;
}

}  // namespace

StatusOr<std::string> ParseClientTokenFile(const std::string& content, const std::string& source,
                                           const std::vector<std::string>& roles) {
  for (const auto& role : roles) {
    if (!IsTokenRole(role)) return InternalError("unknown token role '" + role + "' asked for");
  }
  // The whole file one word: the token alone ('#' included, as it always was).
  const std::string trimmed = Trim(content);
  if (!trimmed.empty() && trimmed.find_first_of(" \t\r\n") == std::string::npos) return trimmed;

  struct Line {
    int number;
    std::vector<std::string> words;
  };
  std::vector<Line> lines;
  std::istringstream in(content);
  std::string text;
  for (int number = 1; std::getline(in, text); ++number) {
    const auto hash = text.find('#');
    if (hash != std::string::npos) text.resize(hash);
    std::istringstream words(text);
    Line line{number, {}};
    for (std::string word; words >> word;) line.words.push_back(word);
    if (!line.words.empty()) lines.push_back(std::move(line));
  }
  if (lines.empty()) return InvalidArgumentError(source + " holds no token");
  if (lines.size() == 1 && lines[0].words.size() == 1) return lines[0].words[0];

  std::vector<std::string> found;  // "line N: role", for the error below
  for (const auto& line : lines) {
    const std::string where = source + ":" + std::to_string(line.number) + ": ";
    if (line.words.size() != 2) {
      return InvalidArgumentError(where +
                                  "expected '<role> <token>' (or a file holding only the token)");
    }
    if (!IsTokenRole(line.words[0])) {
      return InvalidArgumentError(where + "unknown role '" + line.words[0] +
                                  "' (worker, admin or read)");
    }
    found.push_back("line " + std::to_string(line.number) + ": " + line.words[0]);
  }
  for (const auto& role : roles) {
    for (const auto& line : lines) {
      if (line.words[0] == role) return line.words[1];
    }
  }
  return InvalidArgumentError(source + " has no line for the " + JoinWords(roles, " or ") +
                              " role, which this program needs (" + JoinWords(found, ", ") + ")");
}

StatusOr<ClientSecurity> LoadClientSecurity(ClientSecurityFlags flags,
                                            const std::vector<std::string>& token_roles) {
  auto pick = [](std::string* value, const char* flag, const char* env) {
    if (!value->empty()) return std::string(flag);
    *value = FromEnv(env);
    return std::string("$") + env;
  };
  const std::string ca_source = pick(&flags.tls_ca_file, "--tls-ca", "RESWEEP_TLS_CA");
  const std::string cert_source = pick(&flags.tls_cert_file, "--tls-cert", "RESWEEP_TLS_CERT");
  const std::string key_source = pick(&flags.tls_key_file, "--tls-key", "RESWEEP_TLS_KEY");
  const std::string token_source = pick(&flags.token_file, "--token-file", "RESWEEP_TOKEN_FILE");

  ClientSecurity s;
  if (!flags.tls_ca_file.empty()) {
    auto pem = ReadNamedFile(flags.tls_ca_file, ca_source);
    if (!pem.ok()) return pem.status();
    s.root_certs_pem = *pem;
  }
  if (flags.tls_cert_file.empty() != flags.tls_key_file.empty()) {
    return InvalidArgumentError("a client certificate needs both --tls-cert and --tls-key");
  }
  if (!flags.tls_cert_file.empty()) {
    if (s.root_certs_pem.empty()) {
      return InvalidArgumentError("--tls-cert needs --tls-ca (client certificates are TLS only)");
    }
    auto cert = ReadNamedFile(flags.tls_cert_file, cert_source);
    if (!cert.ok()) return cert.status();
    auto key = ReadNamedFile(flags.tls_key_file, key_source);
    if (!key.ok()) return key.status();
    s.cert_chain_pem = *cert;
    s.private_key_pem = *key;
  }
  if (!flags.token_file.empty()) {
    auto content = ReadNamedFile(flags.token_file, token_source);
    if (!content.ok()) return content.status();
    auto token = ParseClientTokenFile(*content, token_source + " " + flags.token_file, token_roles);
    if (!token.ok()) return token.status();
    s.token = std::move(*token);
  } else {
    s.token = Trim(FromEnv("RESWEEP_TOKEN"));
  }
  if (s.token.find_first_of(" \t\r\n") != std::string::npos) {
    return InvalidArgumentError(token_source + ": the token must be one word");
  }
  return s;
}

bool IsLoopbackListenAddress(const std::string& listen) {
  std::string host = listen;
  if (!host.empty() && host[0] == '[') {  // [v6]:port
    host = host.substr(1, host.find(']') == std::string::npos ? 0 : host.find(']') - 1);
    return host == "::1";
  }
  host = host.substr(0, host.rfind(':'));
  if (host == "localhost") return true;
  return host.rfind("127.", 0) == 0 && host.find_first_not_of("0123456789.") == std::string::npos;
}

std::string NormalizeCoordinatorAddress(const std::string& address) {
  constexpr const char* kPort = "50051";
  if (address.empty()) return std::string("127.0.0.1:") + kPort;
  for (const char* scheme : {"unix:", "dns:", "ipv4:", "ipv6:"}) {
    if (address.rfind(scheme, 0) == 0) return address;
  }
  if (address.front() == '[') {  // "[::1]", "[::1]:", "[::1]:50051"
    if (address.back() == ']') return address + ":" + kPort;
    if (address.size() >= 2 && address.compare(address.size() - 2, 2, "]:") == 0) {
      return address + kPort;
    }
    return address;
  }
  const size_t colons = std::count(address.begin(), address.end(), ':');
  if (colons == 0) return address + ":" + kPort;         // "host"
  if (colons >= 2) return "[" + address + "]:" + kPort;  // a bare IPv6 literal, "::1"
  if (address.back() == ':') return address + kPort;     // "host:"
  return address;
}

std::shared_ptr<grpc::Channel> MakeCoordinatorChannel(const ChannelOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  // Reconnect quickly after a coordinator restart; the worker adds its own jittered
  // backoff on top for whole calls.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.security.root_certs_pem.empty()) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.security.root_certs_pem;
    ssl.pem_cert_chain = options.security.cert_chain_pem;
    ssl.pem_private_key = options.security.private_key_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  return grpc::CreateCustomChannel(NormalizeCoordinatorAddress(options.address), credentials, args);
}

void PrepareCall(grpc::ClientContext* context, const ClientSecurity& security,
                 int64_t deadline_ms) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
  if (!security.token.empty()) context->AddMetadata(kTokenMetadataKey, "Bearer " + security.token);
}

std::string DefaultCoordinatorAddress() {
  const char* env = std::getenv("RESWEEP_COORDINATOR");
  return env && *env ? env : "127.0.0.1:50051";
}

}  // namespace resweep
