// What a run leaves behind: docs/design.md, "The run directory": metrics.csv (appended
// and flushed row by row, so `tail -f` shows progress) and tensor dictionaries (.pt).
// Whole files go through files.h's atomic writes.
#pragma once

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "resgd/files.h"

namespace resgd {

/// The entry of final.pt that holds the run's resolved configuration as YAML text.
constexpr const char* kConfigEntry = "config";

/// A number as CSV/text: shortest exact form; `inf`, `-inf`, `nan`.
std::string format_number(double value);

/// metrics.csv: a header, then one flushed row per logged iteration.
class CsvWriter {
 public:
  /// Creates `path` with a header line, or with `append` adds rows to an existing file.
  CsvWriter(const std::filesystem::path& path, const std::vector<std::string>& columns, bool append = false);
  ~CsvWriter();
  CsvWriter(const CsvWriter&) = delete;
  CsvWriter& operator=(const CsvWriter&) = delete;
  /// One value per column; nullopt leaves the cell empty.
  void write_row(const std::vector<std::optional<double>>& values);
  /// Flushes, fsyncs and closes the file.
  void close();

 private:
  std::filesystem::path path_;
  size_t columns_ = 0;
  std::FILE* file_ = nullptr;
};

/// A CSV file read back: header and rows of cells (empty cells as empty strings).
struct CsvTable {
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
  /// The column's index; throws IoError naming the file if absent.
  size_t column(const std::string& name) const;
  bool has_column(const std::string& name) const;
  std::string source;
};
CsvTable read_csv(const std::filesystem::path& path);
/// The same, from text; `source` names it in errors.
CsvTable parse_csv(const std::string& text, const std::string& source);
/// The cells of one CSV line (RFC 4180: "a,b" is one cell, "" a quote).
std::vector<std::string> split_csv_line(const std::string& line);

/// Saves named tensors as a dictionary readable by torch.load in Python and by
/// load_tensors, streaming them into the file (no copy of the whole archive in memory).
/// Tensors are copied to the CPU first. An allocation or write failure is an IoError
/// naming the path, and nothing is left at `path`.
/// `texts` go into the same dictionary as strings: final.pt's kConfigEntry, which
/// load_tensors passes over.
void save_tensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::vector<std::pair<std::string, std::string>>& texts = {});
/// Loads a dictionary of tensors written by save_tensors or by torch.save in Python (a
/// string under kConfigEntry passed over).
/// Every tensor's storage offset, sizes and strides are checked against the bytes its
/// storage record holds before any element is read; a file that fails is an IoError
/// naming it.
std::map<std::string, torch::Tensor> load_tensors(const std::filesystem::path& path);
/// The same, from the file's bytes; `source` names it in errors (the fuzz target's entry).
std::map<std::string, torch::Tensor> load_tensors_from_bytes(const std::string& bytes, const std::string& source);

}  // namespace resgd
