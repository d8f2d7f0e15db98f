// metrics.csv and the other tables a run leaves behind (docs/design.md, "The run
// directory"): appended and flushed row by row, so `tail -f` shows progress; read back
// strictly. Whole files go through files.h's atomic writes.
#pragma once

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace resgd {

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

}  // namespace resgd
