// The declared lengths of a .pt file, checked against its bytes (pt_format.h).
#include "resgd/pt_format.h"

#include <fmt/format.h>

#include <algorithm>

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace resgd {
namespace {

/// A little-endian unsigned integer of `width` bytes at `at`; 0 past the end.
uint64_t le(const std::string& bytes, size_t at, int width) {
  if (at + static_cast<size_t>(width) > bytes.size()) return 0;
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i)
    value = (value << 8) | static_cast<unsigned char>(bytes[at + static_cast<size_t>(i)]);
  return value;
}

}  // namespace

std::string oversized_zip_entry(const std::string& bytes) {
  // The end of central directory record: its signature within the last 64 KiB + 22 bytes.
  const size_t size = bytes.size();
  if (size < 22) return "";
  size_t eocd = std::string::npos;
  for (size_t at = size - 22;; --at) {
    if (le(bytes, at, 4) == 0x06054b50) {
      eocd = at;
      break;
    }
    if (at == 0 || size - at > 65536 + 22) return "";
  }
  uint64_t entries = le(bytes, eocd + 10, 2), directory = le(bytes, eocd + 16, 4);
  if (entries == 0xffff || directory == 0xffffffff) {  // zip64: the locator precedes the record
    if (eocd < 20 || le(bytes, eocd - 20, 4) != 0x07064b50) return "";
    const uint64_t record = le(bytes, eocd - 12, 8);
    if (record > size - 56 || le(bytes, record, 4) != 0x06064b50) return "";
    entries = le(bytes, record + 32, 8);
    directory = le(bytes, record + 48, 8);
  }
  size_t at = directory;
  for (uint64_t e = 0; e < entries && at + 46 <= size && le(bytes, at, 4) == 0x02014b50; ++e) {
    uint64_t compressed = le(bytes, at + 20, 4), uncompressed = le(bytes, at + 24, 4);
    const size_t name_length = le(bytes, at + 28, 2), extra_length = le(bytes, at + 30, 2);
    const size_t comment_length = le(bytes, at + 32, 2);
    // zip64 sizes, in the extra field of id 1: uncompressed, then compressed, where the
    // 32-bit fields are all ones.
    for (size_t x = at + 46 + name_length; x + 4 <= at + 46 + name_length + extra_length;) {
      const uint64_t id = le(bytes, x, 2), length = le(bytes, x + 2, 2);
      if (id == 1) {
        size_t field = x + 4;
        if (uncompressed == 0xffffffff) uncompressed = le(bytes, field, 8), field += 8;
        if (compressed == 0xffffffff) compressed = le(bytes, field, 8);
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

namespace {

/// What the scan knows of one value the pickle builds: how deep it nests, and whether it
/// has been placed inside another (after which it must not change).
struct PickleValue {
  int depth = 0;
  bool placed = false;
};

/// The unpickler's stack, followed value by value for their depths (refused_pickle).
class NestingTracker {
 public:
  /// A new value holding `children` (by their ids), one deeper than the deepest.
  void push_holding(const std::vector<uint32_t>& children) {
    values_.push_back({1 + deepest(children), false});
    place(children);
    stack_.push_back(static_cast<uint32_t>(values_.size() - 1));
  }
  void push_leaf() {
    values_.push_back({0, false});
    stack_.push_back(static_cast<uint32_t>(values_.size() - 1));
  }
  void push_container() { push_holding({}); }
  void push_existing(uint32_t id) { stack_.push_back(id); }

  /// The top `count` values, popped; false where the stack holds fewer.
  bool pop(size_t count, std::vector<uint32_t>& out) {
    out.clear();
    if (stack_.size() < count) return false;
    out.assign(stack_.end() - static_cast<std::ptrdiff_t>(count), stack_.end());
    stack_.resize(stack_.size() - count);
    return true;
  }
  /// The values above the last mark, popped with it; false where there is no mark.
  bool pop_to_mark(std::vector<uint32_t>& out) {
    if (marks_.empty() || marks_.back() > stack_.size()) return false;
    const size_t count = stack_.size() - marks_.back();
    marks_.pop_back();
    return pop(count, out);
  }
  void mark() { marks_.push_back(stack_.size()); }
  std::optional<uint32_t> top() const { return stack_.empty() ? std::nullopt : std::optional<uint32_t>(stack_.back()); }

  /// `children` go into the value `into` (APPEND, SETITEM, BUILD); why that is refused, or "".
  std::string add_to(uint32_t into, const std::vector<uint32_t>& children) {
    if (values_[into].placed) return "its pickle changes a value after placing it inside another";
    values_[into].depth = std::max(values_[into].depth, 1 + deepest(children));
    place(children);
    return "";
  }
  int depth(uint32_t id) const { return values_[id].depth; }

 private:
  int deepest(const std::vector<uint32_t>& ids) const {
    int d = 0;
    for (uint32_t id : ids) d = std::max(d, values_[id].depth);
    return d;
  }
  void place(const std::vector<uint32_t>& ids) {
    for (uint32_t id : ids) values_[id].placed = true;
  }

  std::vector<PickleValue> values_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
};

}  // namespace

std::string refused_pickle(const char* pickle, size_t size) {
  if (size > kMaxPickleBytes)
    return fmt::format("its pickle is {} bytes, more than the {} a tensor file's names and sizes need", size,
                       kMaxPickleBytes);
  const std::string bytes(pickle, size);
  auto past_end = [&](size_t at, uint64_t length, const char* what) {
    return fmt::format("its pickle declares {} of {} bytes at byte {}, past its end ({} bytes)", what, length, at,
                       size);
  };
  NestingTracker values;
  std::vector<uint32_t> memo;  // LibTorch's memo table: entry i is the value it stored
  std::vector<uint32_t> popped, held;
  size_t at = 0;
  while (at < size) {
    const size_t op_at = at;
    const auto op = static_cast<unsigned char>(bytes[at++]);
    // An argument of `width` bytes holding a length, then that many bytes.
    auto counted = [&](int width, const char* what) -> std::string {
      const uint64_t length = le(bytes, at, width);
      if (at + static_cast<size_t>(width) > size || length > size - at - static_cast<size_t>(width))
        return past_end(at, length, what);
      at += static_cast<size_t>(width) + length;
      values.push_leaf();
      return "";
    };
    // A memo index of `width` bytes: a genuine pickle's are below its count of opcodes.
    auto memo_index = [&](int width, uint64_t& index) -> std::string {
      index = le(bytes, at, width);
      at += static_cast<size_t>(width);
      return index > size ? fmt::format("its pickle names memo entry {} in {} bytes", index, size) : "";
    };
    bool followed = true;  // false: the stack is past following; LibTorch's to refuse
    std::string why;
    uint64_t index = 0;
    // clang-format off: one pickle opcode a line, its name beside it
    switch (op) {
      case 'X':
      case 'B':
      case 'T': why = counted(4, "a string"); break;  // BINUNICODE, BINBYTES, BINSTRING
      case 0x8c:
      case 'C':
      case 'U': why = counted(1, "a string"); break;  // SHORT_BINUNICODE, _BINBYTES, _BINSTRING
      case 0x8d:
      case 0x8e: why = counted(8, "a string"); break;    // BINUNICODE8, BINBYTES8
      case 0x8a: why = counted(1, "an integer"); break;  // LONG1
      case 0x8b: why = counted(4, "an integer"); break;  // LONG4
      case 'J':
        at += 4;
        values.push_leaf();
        break;  // BININT
      case 'K':
        at += 1;
        values.push_leaf();
        break;  // BININT1
      case 'M':
        at += 2;
        values.push_leaf();
        break;  // BININT2
      case 'G':
        at += 8;
        values.push_leaf();
        break;  // BINFLOAT
      case 'N':
      case 0x88:
      case 0x89: values.push_leaf(); break;  // NONE, NEWTRUE, NEWFALSE
      case 0x80: at += 1; break;             // PROTO
      case 0x95: at += 8; break;             // FRAME
      case 'c': {                            // GLOBAL module\nname\n
        for (int line = 0; line < 2 && at != std::string::npos; ++line) {
          at = bytes.find('\n', at);
          if (at != std::string::npos) ++at;
        }
        if (at == std::string::npos) return "";  // cut short: LibTorch's to refuse
        values.push_leaf();
        break;
      }
      case ']':
      case ')':
      case '}': values.push_container(); break;                // EMPTY_LIST, _TUPLE, _DICT
      case '(': values.mark(); break;                          // MARK
      case 't': followed = values.pop_to_mark(popped); break;  // TUPLE
      case 0x85:
      case 0x86:
      case 0x87: followed = values.pop(op - 0x84, popped); break;  // TUPLE1, 2, 3
      case 'R':
      case 0x81: followed = values.pop(2, popped); break;  // REDUCE, NEWOBJ
      case 'Q': followed = values.pop(1, popped); break;   // BINPERSID
      case 'a':
      case 's':
      case 'b':  // APPEND, SETITEM, BUILD
        followed = values.pop(op == 's' ? 2 : 1, held);
        break;
      case 'e':
      case 'u': followed = values.pop_to_mark(held); break;    // APPENDS, SETITEMS
      case '0': followed = values.pop(1, popped); break;       // POP
      case '1': followed = values.pop_to_mark(popped); break;  // POP_MARK
      case '2':
        followed = values.top().has_value();  // DUP
        if (followed) values.push_existing(*values.top());
        break;
      case 'q':
      case 'r':
      case 0x94:  // BINPUT, LONG_BINPUT, MEMOIZE
        if (op != 0x94)
          why = memo_index(op == 'q' ? 1 : 4, index);
        else
          index = memo.size();
        // A pickler numbers its entries in order; a gap would make LibTorch copy the value
        // into every entry it skips.
        if (why.empty() && index > memo.size())
          why = fmt::format("its pickle stores memo entry {} where it has {}", index, memo.size());
        followed = values.top().has_value();
        if (!why.empty() || !followed) break;
        if (index == memo.size())
          memo.push_back(*values.top());
        else
          memo[index] = *values.top();
        break;
      case 'h':
      case 'j':  // BINGET, LONG_BINGET
        why = memo_index(op == 'h' ? 1 : 4, index);
        followed = index < memo.size();
        if (why.empty() && followed) values.push_existing(memo[index]);
        break;
      case '.': return "";  // STOP
      default: return "";   // an opcode LibTorch refuses itself
    }
    // clang-format on
    if (!why.empty()) return why;
    if (!followed) return "";
    // What the opcode built from what it popped: a tuple, an object from its arguments.
    if (op == 't' || op == 0x85 || op == 0x86 || op == 0x87 || op == 'R' || op == 0x81 || op == 'Q')
      values.push_holding(popped);
    if (op == 'a' || op == 's' || op == 'b' || op == 'e' || op == 'u') {
      const auto into = values.top();
      if (!into) return "";
      why = values.add_to(*into, held);
      if (!why.empty()) return fmt::format("{} (byte {})", why, op_at);
    }
    if (const auto top = values.top(); top && values.depth(*top) > kMaxPickleNesting)
      return fmt::format("its pickle nests values more than {} deep (at byte {})", kMaxPickleNesting, op_at);
  }
  return "";
}

}  // namespace resgd
