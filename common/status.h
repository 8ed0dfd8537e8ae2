// Errors as values at module boundaries.
//
// Status carries a code (mirroring gRPC's, so handlers translate one-to-one) and a
// human-readable message that names the file, field or run it is about.
// StatusOr<T> holds either a value or a non-OK Status: constructed from an OK status it
// holds INTERNAL instead, so `ok()` always means a value is there.
//
// Both are [[nodiscard]]: an error cannot be dropped by accident; where one is ignored
// on purpose, say so with `.IgnoreError()`.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace resweep {

enum class StatusCode {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(const std::string& context) const;

  // Marks an error as deliberately ignored (best-effort clean-up, a rollback after
  // a failure that is already being returned).
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

const char* StatusCodeName(StatusCode code);

inline Status InvalidArgumentError(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status NotFoundError(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status FailedPreconditionError(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
inline Status InternalError(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }
inline Status UnavailableError(std::string m) {
  return Status(StatusCode::kUnavailable, std::move(m));
}
inline Status DataLossError(std::string m) { return Status(StatusCode::kDataLoss, std::move(m)); }
inline Status ResourceExhaustedError(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
inline Status UnauthenticatedError(std::string m) {
  return Status(StatusCode::kUnauthenticated, std::move(m));
}
inline Status PermissionDeniedError(std::string m) {
  return Status(StatusCode::kPermissionDenied, std::move(m));
}
inline Status CancelledError(std::string m) { return Status(StatusCode::kCancelled, std::move(m)); }
inline Status UnimplementedError(std::string m) {
  return Status(StatusCode::kUnimplemented, std::move(m));
}

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status)  // NOLINT: implicit by design
      : status_(status.ok() ? Status(StatusCode::kInternal,
                                     "internal error: StatusOr constructed from an OK status")
                            : status) {}
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  const T& value() const& { return *value_; }
  T& value() & { return *value_; }
  T&& value() && { return std::move(*value_); }
  const T& operator*() const& { return *value_; }
  T& operator*() & { return *value_; }
  const T* operator->() const { return &*value_; }
  T* operator->() { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace resweep

#define RESWEEP_RETURN_IF_ERROR(expr)             \
  do {                                            \
    const ::resweep::Status _resweep_st = (expr); \
    if (!_resweep_st.ok()) return _resweep_st;    \
  } while (0)

#define RESWEEP_STATUS_CONCAT_INNER(a, b) a##b
#define RESWEEP_STATUS_CONCAT(a, b) RESWEEP_STATUS_CONCAT_INNER(a, b)

// `RESWEEP_ASSIGN_OR_RETURN(auto x, Fn());` evaluates Fn() (a StatusOr), returns its
// status from the enclosing function when it is not OK, and otherwise moves its value
// into the declaration or lvalue on the left.
#define RESWEEP_ASSIGN_OR_RETURN(lhs, expr) \
  RESWEEP_ASSIGN_OR_RETURN_IMPL(RESWEEP_STATUS_CONCAT(_resweep_statusor_, __LINE__), lhs, expr)
#define RESWEEP_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return statusor.status();            \
  lhs = std::move(statusor).value()
