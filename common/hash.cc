#include "common/hash.h"

#include <openssl/evp.h>

#include <cstdlib>

namespace resweep {

namespace {

std::string Hex(const unsigned char* digest, unsigned int length) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

}  // namespace

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return Hex(digest, length);
}

// OpenSSL fails these calls only on allocation failure; like `new`, that aborts.
struct Sha256::Context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Context() {
    if (ctx == nullptr) std::abort();
  }
  ~Context() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
  if (EVP_DigestInit_ex(context_->ctx, EVP_sha256(), nullptr) != 1) std::abort();
}

Sha256::~Sha256() = default;

Sha256::Sha256(const Sha256& other) : context_(std::make_unique<Context>()) {
  if (EVP_MD_CTX_copy_ex(context_->ctx, other.context_->ctx) != 1) std::abort();
}

Sha256& Sha256::operator=(const Sha256& other) {
  if (this != &other && EVP_MD_CTX_copy_ex(context_->ctx, other.context_->ctx) != 1) {
    std::abort();
  }
  return *this;
}

void Sha256::Update(std::string_view data) {
  if (EVP_DigestUpdate(context_->ctx, data.data(), data.size()) != 1) std::abort();
}

std::string Sha256::HexDigest() const {
  Context done;
  if (EVP_MD_CTX_copy_ex(done.ctx, context_->ctx) != 1) std::abort();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(done.ctx, digest, &length) != 1) std::abort();
  return Hex(digest, length);
}

}  // namespace resweep
