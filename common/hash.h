#pragma once

#include <string>

namespace resweep {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(const std::string& data);

}  // namespace resweep
