// A headless Chromium driven over the Chrome DevTools Protocol (CDP), for the
// dashboard's browser test: the browser is Debian's `chromium` started with
// --remote-debugging-port=0 (the port it picked is read from DevToolsActivePort);
// the protocol runs over a WebSocket, spoken here by a minimal client (RFC 6455:
// masked text frames out, fragmented and control frames in) over a loopback socket.
// One page (target) is attached with a flat session; what the page logs as an error
// (console.error, an uncaught exception, a failed load) is collected.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace resweep::testing {

// A WebSocket client connection (text messages only), with a deadline per call.
class WebSocket {
 public:
  WebSocket() = default;
  ~WebSocket() {
    if (fd_ >= 0) close(fd_);
  }
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  // Connects to ws://127.0.0.1:port<path> and completes the opening handshake.
  Status Connect(int port, const std::string& path, int timeout_ms) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return UnavailableError("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return UnavailableError("cannot connect to the browser's DevTools port " +
                              std::to_string(port));
    }
    const std::string request = "GET " + path +
                                " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: cmVzd2VlcC1kYXNoYm9hcmQ=\r\n"
                                "Sec-WebSocket-Version: 13\r\n\r\n";
    RESWEEP_RETURN_IF_ERROR(WriteAll(request));
    const auto deadline = Deadline(timeout_ms);
    std::string response;
    while (response.find("\r\n\r\n") == std::string::npos) {
      char c;
      RESWEEP_RETURN_IF_ERROR(ReadExactly(&c, 1, deadline));
      response += c;
      if (response.size() > 16384) return InternalError("WebSocket handshake: reply too long");
    }
    if (response.rfind("HTTP/1.1 101", 0) != 0) {
      return UnavailableError("WebSocket handshake refused: " +
                              response.substr(0, response.find("\r\n")));
    }
    return Status::Ok();
  }

  Status Send(const std::string& text) {
    std::string frame;
    frame += static_cast<char>(0x81);  // FIN, text
    const uint64_t n = text.size();
    if (n < 126) {
      frame += static_cast<char>(0x80 | n);
    } else if (n <= 0xffff) {
      frame += static_cast<char>(0x80 | 126);
      frame += static_cast<char>(n >> 8);
      frame += static_cast<char>(n & 0xff);
    } else {
      frame += static_cast<char>(0x80 | 127);
      for (int shift = 56; shift >= 0; shift -= 8) frame += static_cast<char>((n >> shift) & 0xff);
    }
    // Clients mask every frame (RFC 6455 5.3).
    const uint32_t key = rng_();
    const char mask[4] = {static_cast<char>(key), static_cast<char>(key >> 8),
                          static_cast<char>(key >> 16), static_cast<char>(key >> 24)};
    frame.append(mask, 4);
    for (uint64_t i = 0; i < n; ++i) frame += static_cast<char>(text[i] ^ mask[i % 4]);
    return WriteAll(frame);
  }

  // The next text message (fragments joined); answers pings on the way.
  StatusOr<std::string> Receive(int timeout_ms) {
    const auto deadline = Deadline(timeout_ms);
    std::string message;
    while (true) {
      unsigned char head[2];
      RESWEEP_RETURN_IF_ERROR(ReadExactly(reinterpret_cast<char*>(head), 2, deadline));
      const bool fin = head[0] & 0x80;
      const int opcode = head[0] & 0x0f;
      uint64_t n = head[1] & 0x7f;
      if (n == 126 || n == 127) {
        unsigned char ext[8];
        const int bytes = n == 126 ? 2 : 8;
        RESWEEP_RETURN_IF_ERROR(ReadExactly(reinterpret_cast<char*>(ext), bytes, deadline));
        n = 0;
        for (int i = 0; i < bytes; ++i) n = (n << 8) | ext[i];
      }
      char mask[4] = {0, 0, 0, 0};
      if (head[1] & 0x80) RESWEEP_RETURN_IF_ERROR(ReadExactly(mask, 4, deadline));
      std::string payload(n, '\0');
      if (n) RESWEEP_RETURN_IF_ERROR(ReadExactly(payload.data(), n, deadline));
      if (head[1] & 0x80) {
        for (uint64_t i = 0; i < n; ++i) payload[i] ^= mask[i % 4];
      }
      if (opcode == 0x8) return UnavailableError("the browser closed the DevTools connection");
      if (opcode == 0x9) {  // ping: pong with the same payload
        std::string pong;
        pong += static_cast<char>(0x8a);
        pong += static_cast<char>(0x80 | payload.size());
        pong.append(4, '\0');
        pong += payload;
        RESWEEP_RETURN_IF_ERROR(WriteAll(pong));
        continue;
      }
      if (opcode == 0xa) continue;  // pong
      message += payload;
      if (fin) return message;
    }
  }

 private:
  using Clock = std::chrono::steady_clock;
  static Clock::time_point Deadline(int ms) { return Clock::now() + std::chrono::milliseconds(ms); }

  Status WriteAll(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return UnavailableError("DevTools connection: send failed");
      sent += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  Status ReadExactly(char* into, uint64_t n, Clock::time_point deadline) {
    uint64_t got = 0;
    while (got < n) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0)
        return Status(StatusCode::kDeadlineExceeded, "DevTools connection: no reply in time");
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      const ssize_t r = recv(fd_, into + got, n - got, 0);
      if (r <= 0) return UnavailableError("DevTools connection closed");
      got += static_cast<uint64_t>(r);
    }
    return Status::Ok();
  }

  int fd_ = -1;
  std::mt19937 rng_{std::random_device{}()};
};

inline std::string Base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) continue;  // '=' padding, whitespace
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  return out;
}

// A headless Chromium with one page attached.
class Browser {
 public:
  // The Chromium binary to run: Debian's (the real one behind its /usr/bin/chromium
  // wrapper) or chromium / chromium-browser / google-chrome in PATH; "" when none.
  static std::string Find() {
    for (const char* path : {"/usr/lib/chromium/chromium", "/usr/bin/chromium",
                             "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}) {
      if (access(path, X_OK) == 0) return path;
    }
    return "";
  }

  ~Browser() {
    if (process_ && process_->running()) {
      (void)Call("Browser.close", nlohmann::json::object(), /*session=*/false, 5000);
      process_->Wait(5000);
    }
  }

  // Starts `binary` headless, with a fresh profile under `dir` (its output in
  // dir/chromium.log), and attaches to a new blank page.
  Status Start(const std::string& binary, const std::string& dir) {
    const std::string profile = dir + "/chromium-profile";
    std::filesystem::create_directories(profile);
    process_ = std::make_unique<Process>(
        std::vector<std::string>{
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--remote-debugging-port=0", "--user-data-dir=" + profile, "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--mute-audio", "--hide-scrollbars",
            "about:blank"},
        dir + "/chromium.log");
    const std::string port_file = profile + "/DevToolsActivePort";
    std::string active;
    const bool started = WaitFor(
        [&] {
          active = ReadFile(port_file);
          return active.find('\n') != std::string::npos && active.size() > active.find('\n') + 1;
        },
        30000);
    if (!started) {
      return UnavailableError("chromium did not open its DevTools port:\n" +
                              ReadFile(dir + "/chromium.log"));
    }
    const int port = std::stoi(active.substr(0, active.find('\n')));
    std::string path = active.substr(active.find('\n') + 1);
    path = path.substr(0, path.find('\n'));
    RESWEEP_RETURN_IF_ERROR(socket_.Connect(port, path, 10000));

    RESWEEP_ASSIGN_OR_RETURN(auto target, Call("Target.createTarget", {{"url", "about:blank"}},
                                               /*session=*/false));
    RESWEEP_ASSIGN_OR_RETURN(auto attached,
                             Call("Target.attachToTarget",
                                  {{"targetId", target["targetId"]}, {"flatten", true}}, false));
    session_ = attached["sessionId"].get<std::string>();
    for (const char* domain : {"Runtime.enable", "Log.enable", "Page.enable"}) {
      RESWEEP_RETURN_IF_ERROR(Call(domain, nlohmann::json::object()).status());
    }
    return Status::Ok();
  }

  // Sends a command (to the page's session, or to the browser) and waits for its
  // result; events that arrive meanwhile are looked at for errors.
  StatusOr<nlohmann::json> Call(const std::string& method, const nlohmann::json& params,
                                bool session = true, int timeout_ms = 15000) {
    const int id = ++last_id_;
    nlohmann::json command = {{"id", id}, {"method", method}, {"params", params}};
    if (session) command["sessionId"] = session_;
    RESWEEP_RETURN_IF_ERROR(socket_.Send(command.dump()));
    while (true) {
      RESWEEP_ASSIGN_OR_RETURN(const std::string text, socket_.Receive(timeout_ms));
      nlohmann::json message = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (!message.is_object()) continue;
      if (!message.contains("id")) {
        Event(message);
        continue;
      }
      if (message["id"] != id) continue;
      if (message.contains("error")) {
        return InternalError(method + ": " + message["error"].dump());
      }
      return message["result"];
    }
  }

  // The value of a JavaScript expression in the page (promises awaited), as JSON.
  StatusOr<nlohmann::json> Eval(const std::string& expression) {
    RESWEEP_ASSIGN_OR_RETURN(auto result, Call("Runtime.evaluate", {{"expression", expression},
                                                                    {"returnByValue", true},
                                                                    {"awaitPromise", true}}));
    if (result.contains("exceptionDetails")) {
      return InvalidArgumentError("JavaScript threw: " + result["exceptionDetails"].dump() +
                                  "\nin: " + expression);
    }
    const auto& value = result["result"];
    return value.contains("value") ? value["value"] : nlohmann::json();
  }

  // Evaluates `expression` until it is truthy (every 100 ms, up to timeout_ms).
  Status WaitUntil(const std::string& expression, int timeout_ms = 10000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::string last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto value = Eval("!!(" + expression + ")");
      if (value.ok() && value->is_boolean() && value->get<bool>()) return Status::Ok();
      last = value.ok() ? value->dump() : value.status().ToString();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return Status(StatusCode::kDeadlineExceeded,
                  "still not true after " + std::to_string(timeout_ms) + " ms: " + expression +
                      " (last: " + last + ")");
  }

  Status Navigate(const std::string& url) {
    RESWEEP_RETURN_IF_ERROR(Call("Page.navigate", {{"url", url}}).status());
    return WaitUntil("document.readyState === 'complete'", 15000);
  }

  // The viewport in CSS pixels (`mobile`: as a phone lays pages out).
  Status SetViewport(int width, int height, bool mobile) {
    return Call(
               "Emulation.setDeviceMetricsOverride",
               {{"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", mobile}})
        .status();
  }

  // A PNG of the whole page (beyond the viewport) at `path`.
  Status Screenshot(const std::string& path) {
    RESWEEP_ASSIGN_OR_RETURN(auto metrics, Call("Page.getLayoutMetrics", nlohmann::json::object()));
    const auto& size = metrics["cssContentSize"];
    RESWEEP_ASSIGN_OR_RETURN(auto shot,
                             Call("Page.captureScreenshot", {{"format", "png"},
                                                             {"captureBeyondViewport", true},
                                                             {"clip",
                                                              {{"x", 0},
                                                               {"y", 0},
                                                               {"width", size["width"]},
                                                               {"height", size["height"]},
                                                               {"scale", 1}}}}));
    std::ofstream out(path, std::ios::binary);
    out << Base64Decode(shot["data"].get<std::string>());
    if (!out) return InternalError("cannot write " + path);
    return Status::Ok();
  }

  // What the page reported as errors so far: console.error/assert calls, uncaught
  // exceptions, and the browser's own error log entries (e.g. a resource that
  // failed to load).
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  void Event(const nlohmann::json& message) {
    const std::string method = message.value("method", "");
    const auto& params = message.contains("params") ? message["params"] : nlohmann::json();
    if (method == "Runtime.consoleAPICalled") {
      const std::string type = params.value("type", "");
      if (type == "error" || type == "assert") {
        errors_.push_back("console." + type + ": " + params["args"].dump());
      }
    } else if (method == "Runtime.exceptionThrown") {
      errors_.push_back("uncaught: " + params["exceptionDetails"].dump());
    } else if (method == "Log.entryAdded") {
      if (params["entry"].value("level", "") == "error") {
        errors_.push_back("log: " + params["entry"].dump());
      }
    }
  }

  std::unique_ptr<Process> process_;
  WebSocket socket_;
  std::string session_;
  int last_id_ = 0;
  std::vector<std::string> errors_;
};

}  // namespace resweep::testing
