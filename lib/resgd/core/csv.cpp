// CSV tables: metrics.csv written row by row, any table read back (csv.h).
#include "resgd/core/csv.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "resgd/core/files.h"

namespace resgd {
namespace fs = std::filesystem;

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return fmt::format("{}", value);
}

// ---------------------------------------------------------------------------------------
CsvWriter::CsvWriter(const fs::path& path, const std::vector<std::string>& columns, bool append)
    : path_(path), columns_(columns.size()) {
  file_ = open_for_writing(path, append);
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
  if (values.size() != columns_)  // a programming error, not a user's
    throw std::logic_error(
        fmt::format("{}: a row of {} values for {} columns", path_.string(), values.size(), columns_));
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
  const bool synced = sync_file(file_);
  const int saved = errno;
  const int status = std::fclose(file_);
  file_ = nullptr;
  if (!synced || status != 0)
    throw IoError(fmt::format("{}: write failed: {}", path_.string(), std::strerror(synced ? errno : saved)));
  sync_path(path_.has_parent_path() ? path_.parent_path() : fs::path("."));
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
  std::string line;
  if (std::getline(in, line)) table.columns = split_csv_line(line);
  while (std::getline(in, line))
    if (!line.empty()) table.rows.push_back(split_csv_line(line));
  return table;
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (ch == '"' && quoted && i + 1 < line.size() && line[i + 1] == '"')
      cells.back() += '"', ++i;
    else if (ch == '"')
      quoted = !quoted;
    else if (ch == ',' && !quoted)
      cells.emplace_back();
    else
      cells.back() += ch;
  }
  return cells;
}

}  // namespace resgd
