#include "worker/data_format.h"

#include <zlib.h>

#include <cstdio>

namespace resweep {

namespace {

constexpr size_t kCifarRecord = 1 + 3 * 32 * 32;

}  // namespace

StatusOr<CifarRecords> ParseCifar10Batch(std::string_view bytes, const std::string& source) {
  if (bytes.empty() || bytes.size() % kCifarRecord != 0) {
    return InvalidArgumentError(source + ": size " + std::to_string(bytes.size()) +
                                " bytes is not a whole number of 3073-byte CIFAR-10 records "
                                "(truncated or not a CIFAR-10 binary batch?)");
  }
  const size_t n = bytes.size() / kCifarRecord;
  CifarRecords batch;
  batch.images.shape = {static_cast<int64_t>(n), 3, 32, 32};
  batch.images.data.resize(n * (kCifarRecord - 1));
  batch.labels.resize(n);
  const auto* in = reinterpret_cast<const uint8_t*>(bytes.data());
  for (size_t r = 0; r < n; ++r) {
    const uint8_t* record = in + r * kCifarRecord;
    batch.labels[r] = record[0];
    std::copy(record + 1, record + kCifarRecord, batch.images.data.data() + r * (kCifarRecord - 1));
  }
  RESWEEP_RETURN_IF_ERROR(CheckLabelRange(batch.labels, 10, source));
  return batch;
}

StatusOr<std::string> Gunzip(std::string_view gz, const std::string& source, size_t max_bytes) {
  if (gz.size() < 2 || static_cast<uint8_t>(gz[0]) != 0x1f || static_cast<uint8_t>(gz[1]) != 0x8b) {
    return InvalidArgumentError(source + ": not gzip data (no 1f 8b header)");
  }
  std::string out;
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return InternalError(source + ": zlib init failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  char buf[1 << 16];
  Status error;
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    const int rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
    if (out.size() > max_bytes) {
      error = InvalidArgumentError(source + ": decompresses to more than " +
                                   std::to_string(max_bytes) + " bytes");
      break;
    }
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      // Another gzip member follows (concatenated files are valid gzip).
      if (inflateReset(&z) != Z_OK) {
        error = InvalidArgumentError(source + ": corrupt gzip data");
        break;
      }
      continue;
    }
    if (rc == Z_BUF_ERROR && z.avail_in == 0) {
      error = InvalidArgumentError(source + ": truncated gzip stream");
      break;
    }
    if (rc != Z_OK) {
      error = InvalidArgumentError(source + ": corrupt gzip data (" +
                                   (z.msg ? z.msg : "zlib error " + std::to_string(rc)) + ")");
      break;
    }
  }
  inflateEnd(&z);
  if (!error.ok()) return error;
  return out;
}

StatusOr<ByteArray> ParseIdx(std::string_view bytes, const std::string& source) {
  auto be32 = [&](size_t at) {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data()) + at;
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
  };
  if (bytes.size() < 8) return InvalidArgumentError(source + ": too short for an IDX header");
  const uint32_t magic = be32(0);
  if ((magic >> 8) != 0x08 || ((magic & 0xff) != 1 && (magic & 0xff) != 3)) {
    char hex[16];
    std::snprintf(hex, sizeof(hex), "0x%08x", magic);
    return InvalidArgumentError(source + ": bad IDX magic " + hex +
                                " (expected 0x00000801 labels or 0x00000803 images)");
  }
  const size_t dims = magic & 0xff;
  const size_t header = 4 + 4 * dims;
  if (bytes.size() < header) return InvalidArgumentError(source + ": truncated IDX header");
  ByteArray array;
  uint64_t count = 1;
  for (size_t i = 0; i < dims; ++i) {
    const uint32_t d = be32(4 + 4 * i);
    array.shape.push_back(d);
    // Dimensions are 32-bit: stop before the product can overflow.
    if (d != 0 && count > (uint64_t{1} << 40) / d) {
      return InvalidArgumentError(source + ": IDX dimensions describe more than 2^40 bytes");
    }
    count *= d;
  }
  if (bytes.size() - header != count) {
    return InvalidArgumentError(source + ": header promises " + std::to_string(count) +
                                " bytes of data, file has " +
                                std::to_string(bytes.size() - header));
  }
  array.data.assign(reinterpret_cast<const uint8_t*>(bytes.data()) + header,
                    reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size());
  return array;
}

Status CheckLabelRange(const std::vector<uint8_t>& labels, int classes, const std::string& source) {
  for (size_t r = 0; r < labels.size(); ++r) {
    if (labels[r] >= classes) {
      return InvalidArgumentError(source + ": record " + std::to_string(r) + " has label " +
                                  std::to_string(labels[r]) + ", outside 0.." +
                                  std::to_string(classes - 1));
    }
  }
  return Status::Ok();
}

}  // namespace resweep
