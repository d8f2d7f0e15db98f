// The declared lengths of a .pt file, checked against its bytes (pt_format.h).
#include "resgd/core/pt_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace resgd {

uint64_t little_endian(const std::string& bytes, size_t at, int width) {
  if (at + static_cast<size_t>(width) > bytes.size()) return 0;
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i)
    value = (value << 8) | static_cast<unsigned char>(bytes[at + static_cast<size_t>(i)]);
  return value;
}

std::string oversized_zip_entry(const std::string& bytes) {
  // The end of central directory record: its signature within the last 64 KiB + 22 bytes.
  const size_t size = bytes.size();
  if (size < 22) return "";
  size_t eocd = std::string::npos;
  for (size_t at = size - 22;; --at) {
    if (little_endian(bytes, at, 4) == 0x06054b50) {
      eocd = at;
      break;
    }
    if (at == 0 || size - at > 65536 + 22) return "";
  }
  uint64_t entries = little_endian(bytes, eocd + 10, 2), directory = little_endian(bytes, eocd + 16, 4);
  if (entries == 0xffff || directory == 0xffffffff) {  // zip64: the locator precedes the record
    if (eocd < 20 || little_endian(bytes, eocd - 20, 4) != 0x07064b50) return "";
    const uint64_t record = little_endian(bytes, eocd - 12, 8);
    if (record > size - 56 || little_endian(bytes, record, 4) != 0x06064b50) return "";
    entries = little_endian(bytes, record + 32, 8);
    directory = little_endian(bytes, record + 48, 8);
  }
  size_t at = directory;
  for (uint64_t e = 0; e < entries && at + 46 <= size && little_endian(bytes, at, 4) == 0x02014b50; ++e) {
    uint64_t compressed = little_endian(bytes, at + 20, 4), uncompressed = little_endian(bytes, at + 24, 4);
    const size_t name_length = little_endian(bytes, at + 28, 2), extra_length = little_endian(bytes, at + 30, 2);
    const size_t comment_length = little_endian(bytes, at + 32, 2);
    // zip64 sizes, in the extra field of id 1: uncompressed, then compressed, where the
    // 32-bit fields are all ones.
    for (size_t x = at + 46 + name_length; x + 4 <= at + 46 + name_length + extra_length;) {
      const uint64_t id = little_endian(bytes, x, 2), length = little_endian(bytes, x + 2, 2);
      if (id == 1) {
        size_t field = x + 4;
        if (uncompressed == 0xffffffff) uncompressed = little_endian(bytes, field, 8), field += 8;
        if (compressed == 0xffffffff) compressed = little_endian(bytes, field, 8);
      }
      x += 4 + length;
    }
    if (uncompressed > size || compressed > size) {
      const std::string name = bytes.substr(std::min(at + 46, size), std::min<size_t>(name_length, 200));
      return fmt::format("its zip entry '{}' declares {} bytes, but the file holds {}", name,
                         std::max(uncompressed, compressed), size);
    }
    at += 46 + name_length + extra_length + comment_length;
  }
  return "";
}

}  // namespace resgd
