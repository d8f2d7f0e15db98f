// The pickle of a .pt file, checked against what a tensor file can hold (pt_format.h).
//
// LibTorch 1.13's unpickler trusts its input: a callable is any integer on its stack, a
// type tag is parsed and applied unchecked, a nested value is freed recursively. Fuzzing it
// found stack overflows, aborts and reads of freed memory. So the pickle is followed here
// first, opcode by opcode, value by value, in a loop, and only the grammar that torch.save
// and resgd's own writer produce for a dictionary of tensors is let through.
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "resgd/core/pt_format.h"

namespace resgd {
namespace {

/// What a value on the unpickler's stack is.
enum class Kind : uint8_t { number, text, global, tuple, list, dict, storage, tensor };

/// The callables and storage types a tensor file names (GLOBAL module\nname\n).
enum class Global : uint8_t { none, ordered_dict, rebuild_tensor, restore_type_tag, build_list, storage_type };

Global global_named(const std::string& module, const std::string& name) {
  if (module == "collections" && name == "OrderedDict") return Global::ordered_dict;
  if (module == "torch._utils" && name == "_rebuild_tensor_v2") return Global::rebuild_tensor;
  if (module == "torch.jit._pickle" && name == "restore_type_tag") return Global::restore_type_tag;
  if (module == "torch.jit._pickle" &&
      (name == "build_tensorlist" || name == "build_intlist" || name == "build_doublelist" || name == "build_boollist"))
    return Global::build_list;
  static const char* const kStorages[] = {
      "DoubleStorage", "FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage",          "IntStorage",
      "ShortStorage",  "CharStorage",  "ByteStorage", "BoolStorage",     "ComplexDoubleStorage", "ComplexFloatStorage"};
  if (module == "torch" && std::find(std::begin(kStorages), std::end(kStorages), name) != std::end(kStorages))
    return Global::storage_type;
  return Global::none;
}

/// The container types restore_type_tag may give: dictionaries and lists of tensors and
/// of the plain values LibTorch writes beside them. Parsing any other tag is LibTorch's
/// type parser's work, which a forged tag would reach; what is not a dictionary of
/// tensors is still read, and then refused naming what it holds.
bool known_type_tag(const std::string& tag) {
  static const char* const kElements[] = {"Tensor", "Any", "str", "int", "float", "bool"};
  for (const char* element : kElements) {
    if (tag == fmt::format("List[{}]", element)) return true;
    for (const char* key : {"str", "int"})
      if (tag == fmt::format("Dict[{}, {}]", key, element)) return true;
  }
  return false;
}

struct Value {
  Kind kind = Kind::number;
  int depth = 0;        // how deep it nests values (0: none)
  bool placed = false;  // inside another value: it must not change after
  Global global = Global::none;
  std::string text;             // a text's value (type tags, the persistent id's tag)
  std::vector<uint32_t> items;  // a tuple's elements
};

Value of(Kind kind, int depth = 0) {
  Value v;
  v.kind = kind;
  v.depth = depth;
  return v;
}

/// The pickle followed; each step returns why it is refused, or "".
class Scan {
 public:
  explicit Scan(const std::string& bytes) : bytes_(bytes) {}

  std::string run() {
    while (at_ < bytes_.size()) {
      const size_t op_at = at_;
      const auto op = static_cast<unsigned char>(bytes_[at_++]);
      if (op == '.') return stack_.size() == 1 ? "" : fmt::format("it ends with {} values, not one", stack_.size());
      if (std::string why = step(op); !why.empty())
        return fmt::format("{} (opcode 0x{:02x} at byte {})", why, op, op_at);
      if (!stack_.empty() && values_[stack_.back()].depth > kMaxPickleNesting)
        return fmt::format("it nests values more than {} deep (at byte {})", kMaxPickleNesting, op_at);
    }
    return "it ends without its STOP opcode";
  }

 private:
  std::string step(unsigned char op) {
    // One opcode a case, its name beside it.
    switch (op) {
      case 'X':
      case 'B':
      case 'T': return text(4);  // BINUNICODE, BINBYTES, BINSTRING
      case 0x8c:
      case 'C':
      case 'U': return text(1);  // SHORT_BINUNICODE, _BINBYTES, _BINSTRING
      case 0x8d:
      case 0x8e: return text(8);          // BINUNICODE8, BINBYTES8
      case 0x8a: return number(1, true);  // LONG1
      case 'J': return number(4);         // BININT
      case 'K': return number(1);         // BININT1
      case 'M': return number(2);         // BININT2
      case 'G': return number(8);         // BINFLOAT
      case 'N':
      case 0x88:
      case 0x89: return number(0);                           // NONE, NEWTRUE, NEWFALSE
      case 0x80: return skip(1);                             // PROTO
      case 0x95: return skip(8);                             // FRAME
      case 'c': return global();                             // GLOBAL
      case ']': return push(of(Kind::list, 1));              // EMPTY_LIST
      case ')': return push(of(Kind::tuple, 1));             // EMPTY_TUPLE
      case '}': return push(of(Kind::dict, 1));              // EMPTY_DICT
      case '(': marks_.push_back(stack_.size()); return "";  // MARK
      case 't': return tuple(to_mark());                     // TUPLE
      case 0x85:
      case 0x86:
      case 0x87: return tuple(op - 0x84);                        // TUPLE1, 2, 3
      case 'a': return add_to(Kind::list, 1, 1);                 // APPEND
      case 'e': return add_to(Kind::list, to_mark(), 1);         // APPENDS
      case 's': return add_to(Kind::dict, 2, 2);                 // SETITEM
      case 'u': return add_to(Kind::dict, to_mark(), 2);         // SETITEMS
      case 'R': return reduce();                                 // REDUCE
      case 'Q': return persistent_id();                          // BINPERSID
      case 'q': return memo_put(1);                              // BINPUT
      case 'r': return memo_put(4);                              // LONG_BINPUT
      case 'h': return memo_get(1);                              // BINGET
      case 'j': return memo_get(4);                              // LONG_BINGET
      default: return "it uses an opcode no tensor file holds";  // BUILD, NEWOBJ, POP, DUP, ...
    }
  }

  static constexpr const char* kUnderflow = "it takes more values from its stack than it put there";

  std::string push(Value v) {
    values_.push_back(std::move(v));
    stack_.push_back(static_cast<uint32_t>(values_.size() - 1));
    return "";
  }
  std::string skip(size_t width) {
    at_ += width;
    return "";
  }
  std::string number(size_t width, bool counted = false) {
    if (counted) {
      const size_t length = little_endian(bytes_, at_, 1);
      if (at_ + 1 + length > bytes_.size())
        return fmt::format("it declares an integer of {} bytes past its end", length);
      width = 1 + length;
    }
    at_ += width;
    return push(of(Kind::number));
  }
  std::string text(int width) {
    const uint64_t length = little_endian(bytes_, at_, width);
    if (at_ + static_cast<size_t>(width) > bytes_.size() || length > bytes_.size() - at_ - static_cast<size_t>(width))
      return fmt::format("it declares a string of {} bytes at byte {}, past its end ({} bytes)", length, at_,
                         bytes_.size());
    Value v = of(Kind::text);
    // Short texts only: type tags and the persistent id's tag are all that is read back.
    if (length <= 64) v.text = bytes_.substr(at_ + static_cast<size_t>(width), length);
    at_ += static_cast<size_t>(width) + length;
    return push(std::move(v));
  }
  std::string global() {
    std::string parts[2];
    for (auto& part : parts) {
      const size_t end = bytes_.find('\n', at_);
      if (end == std::string::npos) return "it ends inside a GLOBAL";
      part = bytes_.substr(at_, end - at_);
      at_ = end + 1;
    }
    const Global g = global_named(parts[0], parts[1]);
    if (g == Global::none)
      return fmt::format("it names '{}.{}', which no tensor file does", parts[0].substr(0, 64), parts[1].substr(0, 64));
    Value v = of(Kind::global);
    v.global = g;
    return push(std::move(v));
  }

  /// How many values lie above the last mark (which it pops); -1 where there is none.
  long to_mark() {
    if (marks_.empty() || marks_.back() > stack_.size()) return -1;
    const size_t count = stack_.size() - marks_.back();
    marks_.pop_back();
    return static_cast<long>(count);
  }
  bool pop(long count) {
    popped_.clear();
    if (count < 0 || stack_.size() < static_cast<size_t>(count)) return false;
    popped_.assign(stack_.end() - count, stack_.end());
    stack_.resize(stack_.size() - static_cast<size_t>(count));
    return true;
  }
  int deepest(const std::vector<uint32_t>& ids) const {
    int d = 0;
    for (uint32_t id : ids) d = std::max(d, values_[id].depth);
    return d;
  }
  void place(const std::vector<uint32_t>& ids) {
    for (uint32_t id : ids) values_[id].placed = true;
  }

  std::string tuple(long count) {
    if (!pop(count)) return kUnderflow;
    Value v = of(Kind::tuple, 1 + deepest(popped_));
    v.items = popped_;
    place(popped_);
    return push(std::move(v));
  }

  /// APPEND(S) into a list, SETITEM(S) into a dictionary: `count` values popped, in groups
  /// of `group`; the target, below them, must be of `kind` and not yet placed.
  std::string add_to(Kind kind, long count, long group) {
    if (!pop(count) || stack_.empty()) return kUnderflow;
    if (popped_.size() % static_cast<size_t>(group) != 0) return "it sets a key without its value";
    Value& target = values_[stack_.back()];
    if (target.kind != kind)
      return kind == Kind::list ? "it appends to what is not a list" : "it sets an item of what is not a dictionary";
    if (target.placed) return "it changes a value after placing it inside another";
    for (size_t i = 0; group == 2 && i < popped_.size(); i += 2)
      if (values_[popped_[i]].kind != Kind::text && values_[popped_[i]].kind != Kind::number)
        return "it keys a dictionary by what is neither a text nor a number";
    target.depth = std::max(target.depth, 1 + deepest(popped_));
    place(popped_);
    return "";
  }

  /// callable(args): a GLOBAL of a tensor file applied to a tuple of the arguments it takes.
  std::string reduce() {
    if (!pop(2)) return kUnderflow;
    const Value callable = values_[popped_[0]];
    const Value args = values_[popped_[1]];
    if (callable.kind != Kind::global || callable.global == Global::storage_type)
      return "it calls what is not a tensor file's function";
    if (args.kind != Kind::tuple) return "it calls a function without a tuple of arguments";
    auto arg = [&](size_t i) -> const Value& { return values_[args.items[i]]; };
    Value result = of(Kind::tensor, 1 + args.depth);
    switch (callable.global) {
      case Global::ordered_dict:
        if (!args.items.empty()) return "it builds an OrderedDict from arguments";
        result = of(Kind::dict, 1);
        break;
      case Global::rebuild_tensor:  // (storage, offset, sizes, strides, requires_grad, hooks[, metadata])
        if (args.items.size() < 6 || args.items.size() > 7 || arg(0).kind != Kind::storage ||
            arg(1).kind != Kind::number || arg(2).kind != Kind::tuple || arg(3).kind != Kind::tuple ||
            arg(4).kind != Kind::number || arg(5).kind != Kind::dict)
          return "it rebuilds a tensor from arguments of the wrong kinds";
        for (const size_t shape : {size_t{2}, size_t{3}})
          for (uint32_t id : arg(shape).items)
            if (values_[id].kind != Kind::number) return "it gives a tensor a size or a stride that is no number";
        break;
      case Global::restore_type_tag: {  // (container, type tag)
        if (args.items.size() != 2 || arg(1).kind != Kind::text || !known_type_tag(arg(1).text))
          return "it tags a container with a type no tensor file holds";
        const Kind container = arg(1).text.rfind("Dict", 0) == 0 ? Kind::dict : Kind::list;
        if (arg(0).kind != container) return "its type tag does not fit the value it tags";
        return returns_its_argument(args);
      }
      case Global::build_list:  // (list,)
        if (args.items.size() != 1 || arg(0).kind != Kind::list) return "it builds a typed list from no list";
        return returns_its_argument(args);
      default: return "it calls what is not a tensor file's function";
    }
    place(popped_);
    return push(std::move(result));
  }

  /// restore_type_tag and build_*list give back their first argument itself (LibTorch
  /// shares it), which stays placed: it was filled before it was tagged.
  std::string returns_its_argument(const Value& args) {
    place(popped_);
    stack_.push_back(args.items[0]);
    return "";
  }

  /// BINPERSID: ('storage', storage type, key, location, element count) names a record.
  std::string persistent_id() {
    if (!pop(1)) return kUnderflow;
    const Value id = values_[popped_[0]];
    auto item = [&](size_t i) -> const Value& { return values_[id.items[i]]; };
    if (id.kind != Kind::tuple || id.items.size() != 5 || item(0).kind != Kind::text || item(0).text != "storage" ||
        item(1).kind != Kind::global || item(1).global != Global::storage_type || item(2).kind != Kind::text ||
        item(3).kind != Kind::text || item(4).kind != Kind::number)
      return "it names a storage other than as ('storage', type, key, location, size)";
    place(popped_);
    return push(of(Kind::storage, 1 + id.depth));
  }

  std::string memo_put(int width) {
    const uint64_t index = little_endian(bytes_, at_, width);
    at_ += static_cast<size_t>(width);
    if (stack_.empty()) return kUnderflow;
    // A pickler numbers its entries in order; at a gap LibTorch copies the value into every
    // entry it skips, as many as the index says.
    if (index > memo_.size()) return fmt::format("it stores memo entry {} where it has {}", index, memo_.size());
    if (index == memo_.size())
      memo_.push_back(stack_.back());
    else
      memo_[index] = stack_.back();
    return "";
  }
  std::string memo_get(int width) {
    const uint64_t index = little_endian(bytes_, at_, width);
    at_ += static_cast<size_t>(width);
    if (index >= memo_.size()) return fmt::format("it reads memo entry {} where it has {}", index, memo_.size());
    stack_.push_back(memo_[index]);
    return "";
  }

  const std::string& bytes_;
  size_t at_ = 0;
  std::vector<Value> values_;
  std::vector<uint32_t> stack_, memo_;
  std::vector<size_t> marks_;
  std::vector<uint32_t> popped_;
};

}  // namespace

std::string refused_pickle(const char* pickle, size_t size) {
  if (size > kMaxPickleBytes)
    return fmt::format("its pickle is {} bytes, more than the {} a tensor file's names and sizes need", size,
                       kMaxPickleBytes);
  const std::string bytes(pickle, size);
  const std::string why = Scan(bytes).run();
  return why.empty() ? "" : "its pickle is not a tensor file's: " + why;
}

}  // namespace resgd
