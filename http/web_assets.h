// The dashboard's files (web/: HTML, CSS, JavaScript and the vendored charting
// library), embedded in the binary at build time by web/embed.cmake, so that the
// dashboard works with no internet and no files beside the binary.
#pragma once

#include <cstddef>
#include <string_view>

namespace resweep::http {

struct WebAsset {
  std::string_view path;          // relative to web/, e.g. "index.html", "vendor/dygraph.min.js"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view etag;          // a strong ETag, quoted: a hash of the bytes
  std::string_view bytes;
};

// The asset at `path`, or null.
const WebAsset* FindWebAsset(std::string_view path);
size_t WebAssetCount();

}  // namespace resweep::http
