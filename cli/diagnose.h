// Why a call to the coordinator could not connect, in words a user can act on.
#pragma once

#include <string>

#include "common/channel.h"

namespace resweep {

// Probes `address` (host:port) with a plain TCP connection and, when something
// listens, a TLS handshake, and says what is wrong: nothing listening, a plaintext
// client against a TLS coordinator (or the reverse), a server certificate not from
// the CA given, a client certificate refused or missing. Bounded by `timeout_ms`
// per step. Returns "" when it finds nothing wrong.
std::string DiagnoseConnection(const std::string& address, const ClientSecurity& security,
                               int timeout_ms = 2000);

}  // namespace resweep
