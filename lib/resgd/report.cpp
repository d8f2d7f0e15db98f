// Sweep tables: sweep.csv and the printed summary.
#include "resgd/report.h"

#include <fmt/format.h>

#include <algorithm>

#include "resgd/io.h"

namespace resgd {
namespace {

/// A summary.json entry as text: numbers in shortest exact form, null as empty.
std::string cell(const nlohmann::json& summary, const std::string& key, int64_t block = 0) {
  if (!summary.contains(key)) return "";
  const nlohmann::json* value = &summary.at(key);
  if (value->is_array()) {
    if (block < 1 || block > static_cast<int64_t>(value->size())) return "";
    value = &value->at(static_cast<size_t>(block - 1));
  }
  if (value->is_null()) return "";
  if (value->is_string()) return value->get<std::string>();
  if (value->is_number_integer()) return std::to_string(value->get<int64_t>());
  if (value->is_number()) return format_number(value->get<double>());
  return value->dump();
}

std::string short_number(const std::string& text) {
  if (text.empty()) return "-";
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used != text.size() || text.find_first_of(".eE") == std::string::npos) return text;
    return fmt::format("{:.4g}", v);
  } catch (const std::exception&) {
    return text;  // inf, nan, words
  }
}

}  // namespace

std::vector<std::string> summary_columns(int64_t layers) {
  std::vector<std::string> columns = {"status", "initial_loss", "final_loss", "iters", "iters_to_tol", "linear_rate"};
  for (const char* stem : {"sigma_min_g", "sigma_max_g", "cond_g"})
    for (int64_t l = 1; l <= layers; ++l) columns.push_back(fmt::format("{}{}", stem, l));
  for (const char* key : {"pl_ratio_min", "pl_ratio_median", "wall_time_s", "steps_per_s"}) columns.emplace_back(key);
  return columns;
}

namespace {
/// The value of a summary column; "cond_g2" reads block 2 of the list "cond_g".
std::string summary_cell(const nlohmann::json& summary, const std::string& column) {
  for (const char* stem : {"sigma_min_g", "sigma_max_g", "cond_g"}) {
    const std::string s = stem;
    if (column.size() > s.size() && column.compare(0, s.size(), s) == 0 &&
        std::all_of(column.begin() + static_cast<long>(s.size()), column.end(), ::isdigit))
      return cell(summary, s, std::stoll(column.substr(s.size())));
  }
  return cell(summary, column);
}
}  // namespace

std::string format_run_line(const RunRecord& record, size_t index, size_t total) {
  const auto& s = record.summary;
  const std::string name = record.point.values.empty() && total == 1 ? record.dir.string() : record.point.dir_name();
  return fmt::format("[{}/{}] {}: {} after {} steps, loss {} -> {}, rate {}, {:.2f} s", index, total, name,
                     cell(s, "status"), cell(s, "iters"), short_number(cell(s, "initial_loss")),
                     short_number(cell(s, "final_loss")), short_number(cell(s, "linear_rate")),
                     s.value("wall_time_s", 0.0));
}

void write_sweep_csv(const std::filesystem::path& path, const ExperimentConfig& config,
                     const std::vector<RunRecord>& records) {
  std::vector<std::string> header = {"run"};
  for (const auto& axis : config.sweep.axes) header.push_back(axis.key);
  header.emplace_back("seed");
  const auto columns = summary_columns(config.model.layers);
  header.insert(header.end(), columns.begin(), columns.end());
  std::string text;
  for (size_t i = 0; i < header.size(); ++i) text += (i ? "," : "") + header[i];
  text += "\n";
  for (const auto& record : records) {
    std::vector<std::string> row = {record.point.dir_name()};
    for (const auto& [key, value] : record.point.values) row.push_back(value);
    row.push_back(std::to_string(record.point.seed));
    for (const auto& column : columns) row.push_back(summary_cell(record.summary, column));
    for (size_t i = 0; i < row.size(); ++i) text += (i ? "," : "") + row[i];
    text += "\n";
  }
  write_file_atomic(path, text);
}

std::string format_summary_table(const ExperimentConfig& config, const std::vector<RunRecord>& records) {
  std::vector<std::string> header;
  for (const auto& axis : config.sweep.axes) {
    const auto dot = axis.key.find('.');
    header.push_back(dot == std::string::npos ? axis.key : axis.key.substr(dot + 1));
  }
  const std::vector<std::pair<std::string, std::string>> shown = {
      {"status", "status"}, {"iters", "iters"}, {"final_loss", "final loss"},
      {"linear_rate", "linear rate"}, {"cond_g1", "cond_g1 (init)"}, {"pl_ratio_median", "pl_ratio (median)"}};
  header.emplace_back("seed");
  for (const auto& [key, title] : shown) header.push_back(title);

  std::vector<std::vector<std::string>> rows;
  for (const auto& record : records) {
    std::vector<std::string> row;
    for (const auto& [key, value] : record.point.values) row.push_back(value);
    row.push_back(std::to_string(record.point.seed));
    for (const auto& [key, title] : shown) row.push_back(short_number(summary_cell(record.summary, key)));
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) out += fmt::format("{}{:<{}}", c ? "  " : "", cells[c], width[c]);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(header);
  std::vector<std::string> rule;
  for (size_t w : width) rule.emplace_back(w, '-');
  out += line(rule);
  for (const auto& row : rows) out += line(row);
  return out;
}

}  // namespace resgd
