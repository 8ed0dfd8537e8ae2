// A loopback address where nothing listens, for tests of a worker that cannot
// reach its coordinator.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace resweep::testing {

// A loopback port that refuses connections for as long as this object lives: the
// socket is bound (so nothing else gets the port) but never listens.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      socklen_t len = sizeof(addr);
      getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
      port_ = ntohs(addr.sin_port);
    }
  }
  ~RefusingPort() { close(fd_); }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;

  // 127.0.0.1:PORT, or 127.0.0.1:1 (nothing listens there either) if binding failed.
  std::string address() const { return "127.0.0.1:" + std::to_string(port_ ? port_ : 1); }
  // The port (0 if binding failed). Free again once this object is gone: a server
  // started after that may take it (tests that need a port they cannot pick 0 for).
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace resweep::testing
