// Tensor dictionaries: written streaming, read after pt_format has checked the bytes (tensor_io.h).
#include "resgd/science/tensor_io.h"

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <fmt/format.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include "resgd/core/files.h"
#include "resgd/core/pt_format.h"

namespace resgd {
namespace fs = std::filesystem;

void save_tensors(const fs::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::vector<std::pair<std::string, std::string>>& texts) {
  try {
    const c10::TypePtr values =
        texts.empty() ? c10::TypePtr(c10::TensorType::get()) : c10::TypePtr(c10::AnyType::get());
    c10::impl::GenericDict dict(c10::StringType::get(), values);
    for (const auto& [name, tensor] : tensors) dict.insert(name, tensor.detach().to(torch::kCPU).contiguous());
    for (const auto& [name, text] : texts) dict.insert(name, text);
    // What torch::pickle_save does, with the archive streamed into the file instead of
    // gathered in memory: the pickle (small), then each tensor's bytes as a record.
    std::vector<char> pickle;
    torch::jit::Pickler pickler(
        [&](const char* bytes, size_t size) { pickle.insert(pickle.end(), bytes, bytes + size); });
    pickler.protocol();
    pickler.pushIValue(dict);
    pickler.stop();
    write_file_atomic_with(path, [&](std::FILE* file) {
      // The zip writer must never see a short write: its destructor would throw (and
      // terminate the process) on one. A failure is kept here and reported after.
      int write_errno = 0;
      caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t size) {
        if (write_errno == 0 && size > 0 && std::fwrite(bytes, 1, size, file) != size)
          write_errno = errno ? errno : EIO;
        return size;
      });
      torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(), writer);
      writer.writeEndOfFile();
      errno = write_errno;
      return write_errno == 0;
    });
  } catch (const IoError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw IoError(fmt::format("{}: cannot write: out of memory", path.string()));
  } catch (const c10::Error& e) {
    throw IoError(fmt::format("{}: cannot write: {}", path.string(), e.what_without_backtrace()));
  }
}

std::map<std::string, torch::Tensor> load_tensors(const fs::path& path) {
  return load_tensors_from_bytes(read_file(path), path.string());
}

namespace {

/// The bytes of a .pt file for LibTorch's zip reader. torch::pickle_load (1.13) reads
/// through an adapter that copies whatever range the zip directory names, so a file with a
/// forged directory made it read past the buffer (found by fuzz/tensors_fuzz). This one
/// answers a read past the end with a short read, which the zip reader reports as an error.
class CheckedBytesReader : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit CheckedBytesReader(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    const size_t count = std::min<size_t>(n, bytes_.size() - static_cast<size_t>(pos));
    std::memcpy(buf, bytes_.data() + pos, count);
    return count;
  }

 private:
  const std::string& bytes_;
};

/// A length a file declares that it cannot hold (pt_format.h).
struct Forged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The archive's pickle, with every storage it names read from its record: what
/// torch::jit::readArchiveAndTensors does, also noting each record's length, which a
/// storage's claimed size is checked against (LibTorch takes the pickle's word for it).
torch::IValue unpickle(const std::string& content, std::map<const void*, size_t>& record_bytes) {
  if (const std::string why = oversized_zip_entry(content); !why.empty()) throw Forged(why);
  caffe2::serialize::PyTorchStreamReader reader(std::make_unique<CheckedBytesReader>(content));
  at::DataPtr pickle;
  size_t pickle_size = 0;
  std::tie(pickle, pickle_size) = reader.getRecord("data.pkl");
  const char* pickle_bytes = static_cast<const char*>(pickle.get());
  if (const std::string why = refused_pickle(pickle_bytes, pickle_size); !why.empty()) throw Forged(why);
  size_t consumed = 0;
  auto read_pickle = [&](char* buffer, size_t n) -> size_t {
    n = std::min(n, pickle_size - consumed);
    if (n > 0) std::memcpy(buffer, pickle_bytes + consumed, n);
    consumed += n;
    return n;
  };
  auto read_record = [&](const std::string& key) {
    auto [data, size] = reader.getRecord("data/" + key);
    record_bytes[data.get()] = size;
    return std::move(data);
  };
  torch::jit::Unpickler unpickler(read_pickle, nullptr, nullptr, read_record, c10::nullopt);
  unpickler.set_version(reader.version());
  return unpickler.parse_ivalue();
}

/// Why `t` reaches outside the bytes its storage record holds, or "" if it does not.
std::string outside_its_storage(const torch::Tensor& t, const std::map<const void*, size_t>& record_bytes) {
  if (t.layout() != torch::kStrided || !t.has_storage()) return "is not a dense tensor";
  const auto& storage = t.storage();
  const auto record = record_bytes.find(storage.data());
  const size_t held = record == record_bytes.end() ? 0 : record->second;
  if (storage.nbytes() > held)
    return fmt::format("claims a storage of {} bytes, but its record holds {}", storage.nbytes(), held);
  if (t.storage_offset() < 0) return fmt::format("has a negative storage offset {}", t.storage_offset());
  const auto sizes = t.sizes(), strides = t.strides();
  if (sizes.size() != strides.size()) return "has sizes and strides of different lengths";
  for (size_t i = 0; i < sizes.size(); ++i)
    if (sizes[i] < 0 || strides[i] < 0)
      return fmt::format("has sizes {} and strides {}", c10::str(sizes), c10::str(strides));
  if (std::find(sizes.begin(), sizes.end(), 0) != sizes.end()) return "";  // no element to read
  // The byte past the last element read, (offset + sum (size_i - 1) stride_i + 1) x the
  // element size, checked for overflow at every step so that no forged value can wrap.
  int64_t end = t.storage_offset();
  bool overflow = false;
  for (size_t i = 0; i < sizes.size(); ++i) {
    int64_t reach = 0;
    overflow = overflow || __builtin_mul_overflow(sizes[i] - 1, strides[i], &reach) ||
               __builtin_add_overflow(end, reach, &end);
  }
  overflow = overflow || __builtin_add_overflow(end, 1, &end) ||
             __builtin_mul_overflow(end, static_cast<int64_t>(t.element_size()), &end);
  if (overflow || static_cast<uint64_t>(end) > storage.nbytes())
    return fmt::format("with storage offset {}, sizes {} and strides {} reads past the {} bytes of its storage",
                       t.storage_offset(), c10::str(sizes), c10::str(strides), storage.nbytes());
  return "";
}

}  // namespace

std::map<std::string, torch::Tensor> load_tensors_from_bytes(const std::string& content, const std::string& source) {
  const std::string not_readable = fmt::format("{}: not a readable tensor file (torch.save / pickle format)", source);
  torch::IValue value;
  std::map<const void*, size_t> record_bytes;  // each storage record's data -> its length
  try {
    value = unpickle(content, record_bytes);
  } catch (const Forged& e) {
    throw IoError(fmt::format("{}: {}", not_readable, e.what()));
  } catch (const c10::Error& e) {
    throw IoError(fmt::format("{}: {}", not_readable, e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {  // a forged length: LibTorch's unpickler allocates it before reading
    throw IoError(fmt::format("{}: it declares more bytes than memory holds", not_readable));
  } catch (const std::exception& e) {  // e.g. torch::jit::ErrorReport for a mangled type tag (fuzz)
    std::string why = e.what();
    std::replace(why.begin(), why.end(), '\n', ' ');
    throw IoError(fmt::format("{}: {}", not_readable, why));
  }
  if (!value.isGenericDict())
    throw IoError(fmt::format("{}: expected a dictionary of tensors, found {}", source, value.tagKind()));
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : value.toGenericDict()) {
    // final.pt's configuration text rides beside the tensors; any other non-tensor is refused.
    if (item.key().isString() && item.key().toStringRef() == kConfigEntry && item.value().isString()) continue;
    if (!item.key().isString() || !item.value().isTensor())
      throw IoError(fmt::format("{}: expected a dictionary of name -> tensor, found {} -> {}", source,
                                item.key().tagKind(), item.value().tagKind()));
    const torch::Tensor& t = item.value().toTensor();
    if (const std::string why = outside_its_storage(t, record_bytes); !why.empty())
      throw IoError(fmt::format("{}: tensor '{}' {}", not_readable, item.key().toStringRef(), why));
    out.emplace(item.key().toStringRef(), t);
  }
  return out;
}

}  // namespace resgd
