// Run-directory files: atomic writes, CSV, tensor dictionaries.
#include "resgd/io.h"

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <fmt/format.h>
#include <torch/csrc/jit/serialization/import_read.h>
#include <torch/serialize.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

namespace resgd {
namespace fs = std::filesystem;

void write_file_atomic(const fs::path& path, const std::string& content) {
  if (path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) throw IoError(fmt::format("{}: cannot create directory: {}", path.parent_path().string(), ec.message()));
  }
  const fs::path temporary = path.string() + ".tmp";
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (!file) throw IoError(fmt::format("{}: cannot write: {}", path.string(), std::strerror(errno)));
  const bool written = std::fwrite(content.data(), 1, content.size(), file) == content.size();
  const int write_errno = errno;
  const bool closed = std::fclose(file) == 0;  // a full disk often shows only here
  if (!written || !closed) {
    std::remove(temporary.c_str());
    throw IoError(fmt::format("{}: write failed: {}", path.string(), std::strerror(written ? errno : write_errno)));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int rename_errno = errno;
    std::remove(temporary.c_str());
    throw IoError(fmt::format("{}: cannot rename into place: {}", path.string(), std::strerror(rename_errno)));
  }
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot read: {}", path.string(), std::strerror(errno)));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return fmt::format("{}", value);
}

// ---------------------------------------------------------------------------------------
CsvWriter::CsvWriter(const fs::path& path, const std::vector<std::string>& columns, bool append)
    : path_(path), columns_(columns.size()) {
  file_ = std::fopen(path.c_str(), append ? "ab" : "wb");
  if (!file_) throw IoError(fmt::format("{}: cannot write: {}", path.string(), std::strerror(errno)));
  if (append) return;
  std::string header;
  for (size_t i = 0; i < columns.size(); ++i) header += (i ? "," : "") + columns[i];
  header += "\n";
  if (std::fputs(header.c_str(), file_) < 0 || std::fflush(file_) != 0)
    throw IoError(fmt::format("{}: write failed: {}", path.string(), std::strerror(errno)));
}

CsvWriter::~CsvWriter() {
  if (file_) std::fclose(file_);
}

void CsvWriter::write_row(const std::vector<std::optional<double>>& values) {
  TORCH_CHECK(values.size() == columns_, "CSV row has ", values.size(), " values for ", columns_, " columns");
  std::string line;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) line += ',';
    if (values[i]) line += format_number(*values[i]);
  }
  line += '\n';
  if (std::fputs(line.c_str(), file_) < 0 || std::fflush(file_) != 0)
    throw IoError(fmt::format("{}: write failed: {}", path_.string(), std::strerror(errno)));
}

void CsvWriter::close() {
  if (!file_) return;
  const int status = std::fclose(file_);
  file_ = nullptr;
  if (status != 0) throw IoError(fmt::format("{}: write failed: {}", path_.string(), std::strerror(errno)));
}

size_t CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < columns.size(); ++i)
    if (columns[i] == name) return i;
  throw IoError(fmt::format("{}: no column '{}'", source, name));
}

bool CsvTable::has_column(const std::string& name) const {
  return std::find(columns.begin(), columns.end(), name) != columns.end();
}

CsvTable read_csv(const fs::path& path) { return parse_csv(read_file(path), path.string()); }

CsvTable parse_csv(const std::string& text, const std::string& source) {
  CsvTable table;
  table.source = source;
  std::stringstream in(text);
  auto split = [](const std::string& line) {  // RFC 4180: "a,b" is one cell, "" a quote
    std::vector<std::string> cells(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      const char ch = line[i];
      if (ch == '"' && quoted && i + 1 < line.size() && line[i + 1] == '"') cells.back() += '"', ++i;
      else if (ch == '"') quoted = !quoted;
      else if (ch == ',' && !quoted) cells.emplace_back();
      else cells.back() += ch;
    }
    return cells;
  };
  std::string line;
  if (std::getline(in, line)) table.columns = split(line);
  while (std::getline(in, line))
    if (!line.empty()) table.rows.push_back(split(line));
  return table;
}

// ---------------------------------------------------------------------------------------
void save_tensors(const fs::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : tensors) dict.insert(name, tensor.detach().to(torch::kCPU).contiguous());
  const std::vector<char> bytes = torch::pickle_save(dict);
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
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

}  // namespace

std::map<std::string, torch::Tensor> load_tensors_from_bytes(const std::string& content, const std::string& source) {
  torch::IValue value;
  try {
    // What torch::pickle_load does, with a bounds-checked reader.
    caffe2::serialize::PyTorchStreamReader reader(std::make_unique<CheckedBytesReader>(content));
    value = torch::jit::readArchiveAndTensors("data", /*pickle_prefix=*/"", /*tensor_prefix=*/"",
                                              /*type_resolver=*/c10::nullopt, /*obj_loader=*/c10::nullopt,
                                              /*device=*/c10::nullopt, reader);
  } catch (const c10::Error& e) {
    throw IoError(fmt::format("{}: not a readable tensor file (torch.save / pickle format): {}",
                              source, e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {  // a forged length: LibTorch's unpickler allocates it before reading
    throw IoError(fmt::format("{}: not a readable tensor file (torch.save / pickle format): it "
                              "declares more bytes than memory holds", source));
  } catch (const std::exception& e) {  // e.g. torch::jit::ErrorReport for a mangled type tag (fuzz)
    std::string why = e.what();
    std::replace(why.begin(), why.end(), '\n', ' ');
    throw IoError(fmt::format("{}: not a readable tensor file (torch.save / pickle format): {}", source, why));
  }
  if (!value.isGenericDict())
    throw IoError(fmt::format("{}: expected a dictionary of tensors, found {}", source, value.tagKind()));
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor())
      throw IoError(fmt::format("{}: expected a dictionary of name -> tensor, found {} -> {}", source,
                                item.key().tagKind(), item.value().tagKind()));
    out.emplace(item.key().toStringRef(), item.value().toTensor());
  }
  return out;
}

}  // namespace resgd
