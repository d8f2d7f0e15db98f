// .pt files written by hand, pickle opcode by opcode, so that a test can claim what a
// genuine torch.save never would: a storage offset past the storage, a storage larger
// than its record, sizes and strides that reach outside. torch.load in Python refuses
// every one of them; resgd must too, before it reads an element. Used by the hostile-input
// tests and by fuzz/make_tensor_seeds (the .pt fuzzer's corpus).
#pragma once

#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace resgd::testing {

/// One tensor of a forged dictionary, as its pickle describes it.
struct ForgedTensor {
  std::string name;             // the dictionary key ("X", "Y")
  int64_t storage_numel = 0;    // the element count the pickle claims for the storage
  int64_t record_elements = 0;  // float64 elements actually written in its record
  int64_t offset = 0;           // storage offset
  std::vector<int64_t> sizes, strides;
};

namespace forged_detail {

inline void put_int(std::string& pickle, int64_t value) {
  if (value >= INT32_MIN && value <= INT32_MAX) {  // BININT: 4 bytes, little-endian, signed
    const auto v = static_cast<int32_t>(value);
    pickle += 'J';
    pickle.append(reinterpret_cast<const char*>(&v), 4);
  } else {  // LONG1: a length byte, then two's complement, little-endian
    pickle += '\x8a';
    pickle += '\x08';
    pickle.append(reinterpret_cast<const char*>(&value), 8);
  }
}

inline void put_string(std::string& pickle, const std::string& text) {  // BINUNICODE
  const auto length = static_cast<uint32_t>(text.size());
  pickle += 'X';
  pickle.append(reinterpret_cast<const char*>(&length), 4);
  pickle += text;
}

inline void put_int_tuple(std::string& pickle, const std::vector<int64_t>& values) {
  pickle += '(';  // MARK
  for (int64_t v : values) put_int(pickle, v);
  pickle += 't';  // TUPLE
}

}  // namespace forged_detail

/// The bytes of a .pt file holding {name: tensor} for each forged tensor, float64, each
/// with a storage of its own (record "data/<index>" filled with 0.5, 1.5, 2.5, ...).
inline std::string forged_tensor_file(const std::vector<ForgedTensor>& tensors) {
  using namespace forged_detail;
  std::string pickle = "\x80\x02}(";  // PROTO 2, EMPTY_DICT, MARK
  for (size_t i = 0; i < tensors.size(); ++i) {
    const ForgedTensor& t = tensors[i];
    put_string(pickle, t.name);
    pickle += "ctorch._utils\n_rebuild_tensor_v2\n(";  // GLOBAL, MARK (its arguments)
    pickle += '(';                                     // MARK: the persistent id
    put_string(pickle, "storage");
    pickle += "ctorch\nDoubleStorage\n";
    put_string(pickle, std::to_string(i));
    put_string(pickle, "cpu");
    put_int(pickle, t.storage_numel);
    pickle += "tQ";  // TUPLE, BINPERSID
    put_int(pickle, t.offset);
    put_int_tuple(pickle, t.sizes);
    put_int_tuple(pickle, t.strides);
    pickle +=
        "\x89"
        "ccollections\nOrderedDict\n)R";  // requires_grad False; backward hooks OrderedDict()
    pickle += "tR";                       // TUPLE of the arguments, REDUCE
  }
  pickle += "u.";  // SETITEMS, STOP

  std::string file;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t size) {
    file.append(static_cast<const char*>(bytes), size);
    return size;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    std::vector<double> values(static_cast<size_t>(std::max<int64_t>(tensors[i].record_elements, 0)));
    for (size_t k = 0; k < values.size(); ++k) values[k] = 0.5 + static_cast<double>(k);
    writer.writeRecord("data/" + std::to_string(i), values.data(), values.size() * sizeof(double));
  }
  writer.writeEndOfFile();
  return file;
}

/// A genuine (N, n, d) tensor's description: contiguous, its storage exactly its elements.
inline ForgedTensor honest_tensor(const std::string& name, std::vector<int64_t> sizes) {
  ForgedTensor t{name, 1, 1, 0, sizes, std::vector<int64_t>(sizes.size(), 1)};
  for (size_t i = sizes.size(); i-- > 0;) {
    t.strides[i] = t.storage_numel;
    t.storage_numel *= sizes[i];
  }
  t.record_elements = t.storage_numel;
  return t;
}

/// The hostile files of the hostile-input tests and the fuzz corpus: each names what it
/// forges; X claims (4, 3, 2) elements or more, Y is always honest (4, 3, 1).
struct ForgedFile {
  std::string name;
  ForgedTensor X;
  bool refused_by_libtorch = false;  // LibTorch's own checks refuse it while unpickling
};

inline std::vector<ForgedFile> forged_files() {
  const ForgedTensor X = honest_tensor("X", {4, 3, 2});  // 24 elements
  std::vector<ForgedFile> files;
  auto add = [&](const std::string& name, auto&& forge, bool refused_by_libtorch = false) {
    ForgedTensor x = X;
    forge(x);
    files.push_back({name, x, refused_by_libtorch});
  };
  add("StorageOffsetPastItsStorage", [](ForgedTensor& x) { x.offset = 1000000; });
  add("StorageLargerThanItsRecord", [](ForgedTensor& x) { x.storage_numel = 1000000; });
  add("SizesPastItsStorage", [](ForgedTensor& x) { x.sizes = {40, 3, 2}; });
  add("StridesPastItsStorage", [](ForgedTensor& x) { x.strides = {1000, 2, 1}; });
  add("NegativeStorageOffset", [](ForgedTensor& x) { x.offset = -5; });
  add("StridesWhoseReachOverflows", [](ForgedTensor& x) { x.strides = {int64_t{1} << 62, 2, 1}; });
  // LibTorch replaces a negative stride by a contiguous one as it builds the tensor, so a
  // forged negative stride reads nothing it should not; these it refuses itself.
  add(
      "NegativeStorageSize", [](ForgedTensor& x) { x.storage_numel = -1; }, true);
  add(
      "SizesWhoseProductOverflows",
      [](ForgedTensor& x) {
        x.sizes = {int64_t{1} << 40, int64_t{1} << 40, 2};
        x.strides = {2, 1, 1};
      },
      true);
  add(
      "SizesAndStridesOfDifferentLengths",
      [](ForgedTensor& x) {
        x.strides = {2, 1};
      },
      true);
  return files;
}

/// The bytes of one hostile file: its X, and an honest Y.
inline std::string forged_file_bytes(const ForgedFile& file) {
  return forged_tensor_file({file.X, honest_tensor("Y", {4, 3, 1})});
}

/// An honest file whose zip directory then claims 4 GB for the record of X: what LibTorch's
/// zip reader would allocate before reading it.
inline std::string file_with_an_oversized_zip_entry() {
  std::string file = forged_tensor_file({honest_tensor("X", {4, 3, 2}), honest_tensor("Y", {4, 3, 1})});
  for (size_t at = file.find("PK\x01\x02"); at != std::string::npos; at = file.find("PK\x01\x02", at + 4)) {
    const uint16_t name_length = static_cast<uint16_t>(static_cast<unsigned char>(file[at + 28]) |
                                                       static_cast<unsigned char>(file[at + 29]) << 8);
    if (file.compare(at + 46, name_length, "archive/data/0") != 0) continue;
    const uint32_t claimed = 0xfffffff0;  // uncompressed and compressed size
    std::memcpy(&file[at + 20], &claimed, 4);
    std::memcpy(&file[at + 24], &claimed, 4);
  }
  return file;
}

/// A .pt file whose data.pkl is `pickle` and which has no tensor records.
inline std::string file_of_pickle(const std::string& pickle) {
  std::string file;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t size) {
    file.append(static_cast<const char*>(bytes), size);
    return size;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  writer.writeEndOfFile();
  return file;
}

/// Pickles whose values nest `depth` deep, each as a forger would write it: tuples of
/// tuples (TUPLE1), lists appended into lists (APPENDS), and a list nested through the
/// memo after it was placed in a tuple, so that the tuple's depth never shows it.
inline std::string pickle_of_nested_tuples(int depth) {
  return "\x80\x02)" + std::string(static_cast<size_t>(depth), '\x85') + ".";
}
inline std::string pickle_of_nested_lists(int depth) {
  std::string pickle = "\x80\x02";
  for (int i = 0; i < depth; ++i) pickle += "](";                      // EMPTY_LIST, MARK
  return pickle + std::string(static_cast<size_t>(depth), 'e') + ".";  // APPENDS: each into the one before
}
inline std::string pickle_growing_a_placed_list(int depth) {
  auto index = [](int i) {
    const auto value = static_cast<uint32_t>(i);
    return std::string(reinterpret_cast<const char*>(&value), 4);
  };
  std::string pickle = "\x80\x02]r" + index(0) + "\x85";    // L_0 = [], memo 0; the tuple (L_0,)
  for (int i = 0; i < depth; ++i)                           // L_i.append(L_i+1 = []), memo i + 1; pop L_i
    pickle += "j" + index(i) + "]r" + index(i + 1) + "a0";  // LONG_BINGET, LONG_BINPUT
  return pickle + ".";
}

}  // namespace resgd::testing
