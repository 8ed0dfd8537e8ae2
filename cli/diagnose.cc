#include "cli/diagnose.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace resweep {

namespace {

struct HostPort {
  std::string host;
  std::string port;
};

bool SplitAddress(const std::string& address, HostPort* out) {
  std::string a = address;
  for (const char* scheme : {"dns:///", "dns:", "ipv4:", "ipv6:"}) {
    if (a.rfind(scheme, 0) == 0) a = a.substr(std::strlen(scheme));
  }
  const size_t colon = a.rfind(':');
  if (colon == std::string::npos) return false;
  out->host = a.substr(0, colon);
  out->port = a.substr(colon + 1);
  if (out->host.size() >= 2 && out->host.front() == '[' && out->host.back() == ']') {
    out->host = out->host.substr(1, out->host.size() - 2);
  }
  return !out->host.empty() && !out->port.empty();
}

// A connected TCP socket, or -1 with *why set.
int Connect(const HostPort& hp, int timeout_ms, std::string* why) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &found); rc != 0) {
    *why = "cannot resolve host '" + hp.host + "': " + gai_strerror(rc);
    return -1;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, freeaddrinfo);
  for (addrinfo* ai = found; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = poll(&p, 1, timeout_ms) == 1 ? 0 : -1;
      int err = rc == 0 ? 0 : ETIMEDOUT;
      socklen_t len = sizeof(err);
      if (rc == 0) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        errno = err;
        rc = -1;
      }
    }
    if (rc == 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      return fd;
    }
    *why = std::strerror(errno);
    close(fd);
  }
  return -1;
}

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out;
}

bool LoadPem(SSL_CTX* ctx, const ClientSecurity& security) {
  if (!security.root_certs_pem.empty()) {
    BIO* bio = BIO_new_mem_buf(security.root_certs_pem.data(),
                               static_cast<int>(security.root_certs_pem.size()));
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, cert);
      X509_free(cert);
    }
    BIO_free(bio);
    ERR_clear_error();
  }
  if (!security.cert_chain_pem.empty() && !security.private_key_pem.empty()) {
    BIO* cbio = BIO_new_mem_buf(security.cert_chain_pem.data(),
                                static_cast<int>(security.cert_chain_pem.size()));
    X509* cert = PEM_read_bio_X509(cbio, nullptr, nullptr, nullptr);
    BIO_free(cbio);
    BIO* kbio = BIO_new_mem_buf(security.private_key_pem.data(),
                                static_cast<int>(security.private_key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio, nullptr, nullptr, nullptr);
    BIO_free(kbio);
    const bool ok = cert && key && SSL_CTX_use_certificate(ctx, cert) == 1 &&
                    SSL_CTX_use_PrivateKey(ctx, key) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!ok) return false;
  }
  return true;
}

enum class TlsOutcome { kOk, kNotTls, kServerCertRejected, kClientCertRefused, kOther };

// One TLS handshake (verifying the server against `security`'s CA when `verify`),
// then a short read so that a refusal of the client certificate (sent after the
// handshake in TLS 1.3) is seen too.
TlsOutcome ProbeTls(const HostPort& hp, const ClientSecurity& security, bool verify, int timeout_ms,
                    std::string* detail) {
  std::string why;
  int fd = Connect(hp, timeout_ms, &why);
  if (fd < 0) {
    *detail = why;
    return TlsOutcome::kOther;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!LoadPem(ctx, security)) {
    *detail = "cannot load the client certificate or key: " + OpenSslErrors();
    SSL_CTX_free(ctx);
    close(fd);
    return TlsOutcome::kOther;
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, hp.host.c_str());
  if (verify) {
    // The name check gRPC makes: an IP address against the certificate's IP entries.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, hp.host.c_str()) != 1) {
      ERR_clear_error();
      X509_VERIFY_PARAM_set1_host(param, hp.host.c_str(), 0);
    }
  }
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl, kAlpn, sizeof(kAlpn));
  TlsOutcome outcome = TlsOutcome::kOk;
  if (SSL_connect(ssl) != 1) {
    const long verify_result = SSL_get_verify_result(ssl);
    const std::string errors = OpenSslErrors();
    if (verify && verify_result != X509_V_OK) {
      *detail = X509_verify_cert_error_string(verify_result);
      outcome = TlsOutcome::kServerCertRejected;
    } else if (errors.find("wrong version number") != std::string::npos ||
               errors.find("packet length too long") != std::string::npos ||
               errors.find("record layer failure") != std::string::npos ||
               errors.find("unexpected eof") != std::string::npos || errors.empty()) {
      *detail = errors;
      outcome = TlsOutcome::kNotTls;
    } else if (errors.find("alert") != std::string::npos) {
      *detail = errors;
      outcome = TlsOutcome::kClientCertRefused;
    } else {
      *detail = errors;
      outcome = TlsOutcome::kOther;
    }
  } else {
    // An HTTP/2 preface so a server that refuses our certificate after the
    // handshake says so instead of waiting for us.
    static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    SSL_write(ssl, kPreface, sizeof(kPreface) - 1);
    char buf[64];
    // A gRPC server answers the preface with its SETTINGS frame; one that closes
    // the connection (with an alert or without) instead has refused this client's
    // certificate or the lack of one.
    if (SSL_read(ssl, buf, sizeof(buf)) <= 0) {
      *detail = OpenSslErrors();
      if (detail->empty()) *detail = "connection closed after the handshake";
      outcome = TlsOutcome::kClientCertRefused;
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);
  return outcome;
}

}  // namespace

std::string DiagnoseConnection(const std::string& address, const ClientSecurity& security,
                               int timeout_ms) {
  HostPort hp;
  if (!SplitAddress(address, &hp)) return "";
  std::string why;
  int fd = Connect(hp, timeout_ms, &why);
  if (fd < 0) {
    return "cannot connect to " + address + " (" + why +
           "): is resweep-coordinator running there? (address from --coordinator or "
           "$RESWEEP_COORDINATOR)";
  }
  close(fd);
  std::string detail;
  const bool client_uses_tls = !security.root_certs_pem.empty();
  if (!client_uses_tls) {
    const TlsOutcome o = ProbeTls(hp, security, /*verify=*/false, timeout_ms, &detail);
    if (o == TlsOutcome::kOk || o == TlsOutcome::kClientCertRefused) {
      return "the coordinator at " + address +
             " speaks TLS but this client connected in plaintext: pass --tls-ca with the CA "
             "that signed its certificate (and --tls-cert/--tls-key if it requires client "
             "certificates)";
    }
    return "";
  }
  switch (ProbeTls(hp, security, /*verify=*/true, timeout_ms, &detail)) {
    case TlsOutcome::kOk:
      return "";
    case TlsOutcome::kNotTls:
      return "the coordinator at " + address +
             " does not speak TLS (it listens in plaintext): drop --tls-ca / $RESWEEP_TLS_CA, or "
             "start the coordinator with --tls-cert and --tls-key";
    case TlsOutcome::kServerCertRejected:
      if (detail.find("mismatch") != std::string::npos) {
        return "TLS: the coordinator's certificate does not name '" + hp.host + "' (" + detail +
               "): connect with the host name or address its certificate was issued for";
      }
      return "TLS: the coordinator's certificate at " + address +
             " is not trusted by the CA given with --tls-ca (" + detail +
             "): use the CA that signed the coordinator's certificate";
    case TlsOutcome::kClientCertRefused:
      if (security.cert_chain_pem.empty()) {
        return "TLS: the coordinator at " + address +
               " requires a client certificate (mutual TLS): pass --tls-cert and --tls-key";
      }
      return "TLS: the coordinator at " + address +
             " refused this client's certificate (--tls-cert): it must be signed by the CA the "
             "coordinator trusts for clients (--tls-client-ca) [" +
             detail + "]";
    case TlsOutcome::kOther:
      return detail.empty() ? "" : "TLS handshake with " + address + " failed: " + detail;
  }
  return "";
}

}  // namespace resweep
