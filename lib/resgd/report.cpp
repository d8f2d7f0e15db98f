// Sweep tables: sweep.csv, the printed summary, and report.md (plots are drawn by plots.cpp).
#include "resgd/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <tuple>

#include "resgd/diagnostics.h"
#include "resgd/io.h"
#include "resgd/plots.h"

namespace resgd {
namespace {

/// How cell() writes a floating-point value: every digit (sweep.csv) or four significant
/// ones (console tables). Integers (iters) are written whole either way.
enum class CellDigits { all, four };

/// A summary.json entry as text, null as empty.
std::string cell(const nlohmann::json& summary, const std::string& key, int64_t block = 0,
                 CellDigits digits = CellDigits::all) {
  if (!summary.contains(key)) return "";
  const nlohmann::json* value = &summary.at(key);
  if (value->is_array()) {
    if (block < 1 || block > static_cast<int64_t>(value->size())) return "";
    value = &value->at(static_cast<size_t>(block - 1));
  }
  if (value->is_null()) return "";
  if (value->is_string()) return value->get<std::string>();
  if (value->is_number_integer()) return std::to_string(value->get<int64_t>());
  if (value->is_number())
    return digits == CellDigits::all ? format_number(value->get<double>()) : fmt::format("{:.4g}", value->get<double>());
  return value->dump();
}

/// A table cell: "-" where the summary has no value.
std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

}  // namespace

std::vector<std::string> summary_columns(int64_t layers) {
  std::vector<std::string> columns = {"status", "initial_loss", "final_loss", "loss_max", "within_sequence_loss",
                                      "iters", "iters_to_tol", "linear_rate"};
  for (const char* stem : {"sigma_min_g", "sigma_max_g", "cond_g"})
    for (int64_t l = 1; l <= layers; ++l) columns.push_back(fmt::format("{}{}", stem, l));
  for (const char* key : {"sigma_min_phi", "ntk_lambda_min", "sharpness", "sharpness_max", "sharpness_final",
                          "pl_ratio_min", "pl_ratio_median", "wall_time_s", "steps_per_s"})
    columns.emplace_back(key);
  return columns;
}

namespace {
/// The value of a summary column; "cond_g2" reads block 2 of the list "cond_g".
std::string summary_cell(const nlohmann::json& summary, const std::string& column, CellDigits digits = CellDigits::all) {
  for (const char* stem : {"sigma_min_g", "sigma_max_g", "cond_g"}) {
    const std::string s = stem;
    if (column.size() > s.size() && column.compare(0, s.size(), s) == 0 &&
        std::all_of(column.begin() + static_cast<long>(s.size()), column.end(), ::isdigit))
      return cell(summary, s, std::stoll(column.substr(s.size())), digits);
  }
  return cell(summary, column, 0, digits);
}
}  // namespace

std::string format_run_line(const RunRecord& record, size_t index, size_t total) {
  const auto& s = record.summary;
  const std::string name = record.point.values.empty() && total == 1 ? record.dir.string() : record.point.dir_name();
  return fmt::format("[{}/{}] {}: {} after {} steps, loss {} -> {}, rate {}, {:.2f} s", index, total, name,
                     cell(s, "status"), cell(s, "iters"), or_dash(cell(s, "initial_loss", 0, CellDigits::four)),
                     or_dash(cell(s, "final_loss", 0, CellDigits::four)), or_dash(cell(s, "linear_rate", 0, CellDigits::four)),
                     s.value("wall_time_s", 0.0));
}

void write_sweep_csv(const std::filesystem::path& path, const ExperimentConfig& config,
                     const std::vector<RunRecord>& records) {
  std::vector<std::string> header = {"run"};
  for (const auto& axis : config.sweep.axes) header.push_back(axis.key);
  header.emplace_back("seed");
  const auto columns = summary_columns(config.model.layers);
  header.insert(header.end(), columns.begin(), columns.end());
  // RFC 4180: a cell with a comma or quote is quoted (a run of a two-key sweep is named
  // "a=1,b=2/seed=0"), so pandas and Python's csv read the file as written.
  auto line = [](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size(); ++i) {
      std::string cell = cells[i];
      if (cell.find_first_of(",\"\n") != std::string::npos) {
        for (size_t at = 0; (at = cell.find('"', at)) != std::string::npos; at += 2) cell.insert(at, "\"");
        cell = "\"" + cell + "\"";
      }
      out += (i ? "," : "") + cell;
    }
    return out + "\n";
  };
  std::string text = line(header);
  for (const auto& record : records) {
    std::vector<std::string> row = {record.point.dir_name()};
    for (const auto& [key, value] : record.point.values) row.push_back(value);
    row.push_back(std::to_string(record.point.seed));
    for (const auto& column : columns) row.push_back(summary_cell(record.summary, column));
    text += line(row);
  }
  write_file_atomic(path, text);
}

std::string format_summary_table(const ExperimentConfig& config, const std::vector<RunRecord>& records) {
  std::vector<std::string> header;
  for (const auto& axis : config.sweep.axes) {
    const auto dot = axis.key.find('.');
    header.push_back(dot == std::string::npos ? axis.key : axis.key.substr(dot + 1));
  }
  std::vector<std::pair<std::string, std::string>> shown = {
      {"status", "status"}, {"iters", "iters"}, {"final_loss", "final loss"},
      {"linear_rate", "linear rate"}, {"cond_g1", "cond_g1 (init)"}, {"pl_ratio_median", "pl_ratio (median)"}};
  if (config.diagnostics.sharpness) shown.emplace_back("sharpness", "sharpness (init)");
  header.emplace_back("seed");
  for (const auto& [key, title] : shown) header.push_back(title);

  std::vector<std::vector<std::string>> rows;
  for (const auto& record : records) {
    std::vector<std::string> row;
    for (const auto& [key, value] : record.point.values) row.push_back(value);
    row.push_back(std::to_string(record.point.seed));
    for (const auto& [key, title] : shown) row.push_back(or_dash(summary_cell(record.summary, key, CellDigits::four)));
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

// ---------------------------------------------------------------------------------------
// report.md
namespace {
namespace fs = std::filesystem;

/// One run of a report, read back from its files.
struct ReportRun {
  fs::path dir;                     // relative to the report directory
  std::vector<std::string> values;  // the swept values, in axis order
  std::string seed;
  nlohmann::json summary;
};

/// The runs of a report and the swept keys they differ in.
struct ReportInput {
  std::vector<std::string> axes;
  std::vector<bool> zipped;  // per axis: moves with the other zipped axes (sweep.zip)
  std::vector<ReportRun> runs;
};

nlohmann::json read_json(const fs::path& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw IoError(fmt::format("{}: not valid JSON: {}", path.string(), e.what()));
  }
}

/// The runs of a sweep directory, found from its config.yaml (every point of the sweep that
/// has finished, in sweep order), or the one run of a run directory.
ReportInput read_runs(const fs::path& dir) {
  if (!fs::exists(dir / "config.yaml") || !(fs::exists(dir / "runs") || fs::exists(dir / "summary.json")))
    throw IoError(fmt::format("{}: neither a sweep directory (config.yaml, runs/) nor a run directory "
                              "(config.yaml, summary.json) of `resgd run`", dir.string()));
  const ExperimentConfig config = load_config_file((dir / "config.yaml").string());
  ReportInput input;
  if (config.sweep.empty()) {
    input.runs.push_back({".", {}, std::to_string(config.seed), read_json(dir / "summary.json")});
    return input;
  }
  for (const auto& axis : config.sweep.axes) {
    input.axes.push_back(axis.key);
    input.zipped.push_back(axis.zipped);
  }
  for (const auto& point : expand_sweep(config)) {
    const fs::path run_dir = fs::path("runs") / point.dir_name();
    if (!fs::exists(dir / run_dir / "summary.json")) continue;  // not run yet (interrupted sweep)
    std::vector<std::string> values;
    for (const auto& [key, value] : point.values) values.push_back(value);
    input.runs.push_back({run_dir, values, std::to_string(point.seed), read_json(dir / run_dir / "summary.json")});
  }
  if (input.runs.empty()) throw IoError(fmt::format("{}: no finished run under runs/", dir.string()));
  return input;
}

/// A summary.json number, nullopt when absent; for a per-block list, block `block` (from 0).
/// JSON has no inf or NaN, so the run wrote null for both: `null_is_inf` reads it as inf
/// (condition numbers: a rank-deficient G), otherwise null is "no value" (a rate that could
/// not be fitted, a tolerance never reached).
std::optional<double> summary_number(const nlohmann::json& summary, const std::string& key,
                                     std::optional<size_t> block = std::nullopt, bool null_is_inf = false) {
  if (!summary.contains(key)) return std::nullopt;
  const nlohmann::json* value = &summary.at(key);
  if (block) {
    if (!value->is_array() || *block >= value->size()) return std::nullopt;
    value = &value->at(*block);
  }
  if (value->is_null()) return null_is_inf ? std::optional<double>(INFINITY) : std::nullopt;
  return value->is_number() ? std::optional<double>(value->get<double>()) : std::nullopt;
}

/// A reported quantity: its column title and how to read it from a summary.
struct Metric {
  std::string title;
  std::function<std::optional<double>(const nlohmann::json&)> read;
};

/// `within_sequence`: some run has per-token targets, so a within_sequence_loss.
std::vector<Metric> report_metrics(size_t blocks, bool sharpness, bool within_sequence) {
  std::vector<Metric> metrics = {
      {"iters to tol", [](const nlohmann::json& s) { return summary_number(s, "iters_to_tol"); }},
      {"final loss", [](const nlohmann::json& s) { return summary_number(s, "final_loss"); }},
      {"linear rate", [](const nlohmann::json& s) { return summary_number(s, "linear_rate"); }}};
  for (size_t l = 0; l < blocks; ++l)
    for (const char* key : {"cond_g", "cond_g_final"})
      metrics.push_back({fmt::format("cond_g{} {}", l + 1, key == std::string("cond_g") ? "init" : "end"),
                         [key = std::string(key), l](const nlohmann::json& s) { return summary_number(s, key, l, true); }});
  if (sharpness) {  // opt-in (diagnostics.sharpness): columns only where some run has it
    for (const auto& [key, title] : {std::pair{"sharpness", "sharpness init"}, {"sharpness_max", "sharpness max"},
                                     {"sharpness_final", "sharpness end"}})
      metrics.push_back({title, [key = std::string(key)](const nlohmann::json& s) { return summary_number(s, key); }});
    // How far the loss rose first: 1 for a run inside the edge of stability, the height of
    // the catapult above it.
    metrics.push_back({"loss peak / init", [](const nlohmann::json& s) -> std::optional<double> {
                         const auto peak = summary_number(s, "loss_max"), start = summary_number(s, "initial_loss");
                         if (!peak || !start || !(*start > 0)) return std::nullopt;
                         return *peak / *start;
                       }});
  }
  if (within_sequence)  // about 1 where the loss stalls because the tokens of a sequence look alike
    metrics.push_back({"final / within-seq loss", [](const nlohmann::json& s) -> std::optional<double> {
                         const auto final_loss = summary_number(s, "final_loss");
                         const auto floor = summary_number(s, "within_sequence_loss");
                         if (!final_loss || !floor || !(*floor > 0)) return std::nullopt;
                         return *final_loss / *floor;
                       }});
  return metrics;
}

/// Whether some run measured the sharpness (diagnostics.sharpness on): its summary has
/// sharpness_max, null or not, and its metrics.csv a sharpness column.
bool has_sharpness(const std::vector<ReportRun>& runs) {
  return std::any_of(runs.begin(), runs.end(), [](const ReportRun& run) { return run.summary.contains("sharpness_max"); });
}

/// A power law y ~ x^slope: fit_line of ln y on ln x over the pairs where both are finite
/// and positive (`points`, as given); nullopt below three such pairs or with a single x.
struct LogLogFit {
  std::vector<std::pair<double, double>> points;
  LineFit line;
};

std::optional<LogLogFit> log_log_fit(const std::vector<std::pair<std::optional<double>, std::optional<double>>>& pairs) {
  LogLogFit fit;
  std::vector<double> xs, ys;
  for (const auto& [x, y] : pairs) {
    if (!x || !y || !(*x > 0) || !(*y > 0) || !std::isfinite(*x) || !std::isfinite(*y)) continue;
    fit.points.emplace_back(*x, *y);
    xs.push_back(std::log(*x));
    ys.push_back(std::log(*y));
  }
  if (xs.size() < 3) return std::nullopt;
  const auto line = fit_line(xs, ys);
  if (!line) return std::nullopt;
  fit.line = *line;
  return fit;
}

/// Mean and range over the runs of a setting; `count` of `total` runs had a value.
struct Spread {
  double mean = NAN, min = NAN, max = NAN;
  size_t count = 0, total = 0;
};

Spread spread_of(const std::vector<std::optional<double>>& values) {
  Spread s;
  s.total = values.size();
  double sum = 0;
  for (const auto& v : values) {
    if (!v) continue;
    sum += *v;
    s.min = s.count ? std::min(s.min, *v) : *v;
    s.max = s.count ? std::max(s.max, *v) : *v;
    ++s.count;
  }
  if (s.count) s.mean = sum / static_cast<double>(s.count);
  return s;
}

std::string g4(double value) { return fmt::format("{:.4g}", value); }

/// "mean [min, max]", a lone value as itself, " (k/n)" when only k of n runs had one.
std::string format_spread(const Spread& s) {
  if (s.count == 0) return "-";
  std::string out = s.count == 1 ? g4(s.mean) : fmt::format("{} [{}, {}]", g4(s.mean), g4(s.min), g4(s.max));
  if (s.count < s.total) out += fmt::format(" ({}/{})", s.count, s.total);
  return out;
}

std::string markdown_row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const auto& cell : cells) out += " " + cell + " |";
  return out + "\n";
}

std::string markdown_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string out = markdown_row(header);
  out += markdown_row(std::vector<std::string>(header.size(), "---"));
  for (const auto& row : rows) out += markdown_row(row);
  return out;
}

/// The last part of each dotted key, unless two axes share it.
std::vector<std::string> short_names(const std::vector<std::string>& axes) {
  std::vector<std::string> out;
  for (const auto& key : axes) out.push_back(key.substr(key.rfind('.') + 1));
  for (size_t i = 0; i < out.size(); ++i)
    if (std::count(out.begin(), out.end(), out[i]) > 1) return axes;
  return out;
}

/// "name=value, name=value" over the axes, leaving out those in `skip`.
std::string setting_label(const std::vector<std::string>& names, const std::vector<std::string>& values,
                          const std::vector<bool>& skip = {}) {
  std::string out;
  for (size_t a = 0; a < names.size(); ++a)
    if (a >= skip.size() || !skip[a]) out += (out.empty() ? "" : ", ") + names[a] + "=" + values[a];
  return out;
}

std::optional<double> parse_number(const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

/// How many runs of setting `group` ended with `status`, and how many runs it has.
std::pair<size_t, size_t> status_count(const std::vector<ReportRun>& runs, const std::vector<size_t>& group_of,
                                       size_t group, const std::string& status) {
  size_t hits = 0, total = 0;
  for (size_t r = 0; r < runs.size(); ++r)
    if (group_of[r] == group) {
      ++total;
      hits += runs[r].summary.value("status", "") == status;
    }
  return {hits, total};
}

/// Where train.lr is a swept axis of its own: for each setting of the other axes, the
/// largest swept step size at which every run converged and the smallest at which a run
/// diverged (DESIGN.md's "largest stable step size"); "" for other sweeps.
std::string step_size_section(const ReportInput& input, const std::vector<std::string>& names,
                              const std::vector<std::vector<std::string>>& settings,
                              const std::vector<size_t>& group_of) {
  const auto lr_at = std::find(input.axes.begin(), input.axes.end(), "train.lr");
  if (lr_at == input.axes.end()) return "";
  const auto lr_axis = static_cast<size_t>(lr_at - input.axes.begin());
  if (input.zipped[lr_axis]) return "";  // moved with another key: no grid of step sizes
  struct Edges {
    std::vector<std::string> others;  // the values of the other axes
    std::optional<double> converging, diverging;
    std::vector<std::optional<double>> stable_steps;  // 2 / sharpness at init, per run
  };
  std::vector<Edges> lines;
  for (size_t g = 0; g < settings.size(); ++g) {
    const auto lr = parse_number(settings[g][lr_axis]);
    if (!lr) return "";
    std::vector<std::string> others = settings[g];
    others.erase(others.begin() + static_cast<long>(lr_axis));
    auto line = std::find_if(lines.begin(), lines.end(), [&](const Edges& e) { return e.others == others; });
    if (line == lines.end()) line = lines.insert(lines.end(), Edges{others, std::nullopt, std::nullopt, {}});
    const auto [converged, runs] = status_count(input.runs, group_of, g, "converged");
    if (converged == runs) line->converging = std::max(line->converging.value_or(*lr), *lr);
    if (status_count(input.runs, group_of, g, "diverged").first > 0) line->diverging = std::min(line->diverging.value_or(*lr), *lr);
    for (size_t r = 0; r < input.runs.size(); ++r) {
      const auto sharpness = summary_number(input.runs[r].summary, "sharpness");
      if (group_of[r] == g && sharpness && *sharpness > 0) line->stable_steps.push_back(2 / *sharpness);
    }
  }
  const bool with_sharpness = std::any_of(lines.begin(), lines.end(), [](const Edges& e) { return !e.stable_steps.empty(); });
  std::vector<std::string> header;
  for (size_t a = 0; a < names.size(); ++a)
    if (a != lr_axis) header.push_back(names[a]);
  header.emplace_back("largest lr, every run converged");
  header.emplace_back("smallest lr, a run diverged");
  if (with_sharpness) header.emplace_back("2 / sharpness at init");
  std::vector<std::vector<std::string>> rows;
  for (const auto& line : lines) {
    std::vector<std::string> row = line.others;
    row.push_back(line.converging ? g4(*line.converging) : "-");
    row.push_back(line.diverging ? g4(*line.diverging) : "-");
    if (with_sharpness) row.push_back(format_spread(spread_of(line.stable_steps)));
    rows.push_back(std::move(row));
  }
  std::string text =
      "## Step sizes\n\nFor each setting of the other swept keys, the largest swept `train.lr` at which every run "
      "converged and the smallest at which a run diverged (`-`: none). The largest stable step lies between them at "
      "the grid's resolution where the first is the smaller.";
  if (with_sharpness)
    text += " `2 / sharpness at init`: the largest step at which GD is stable on the quadratic model of the loss "
            "at initialization (mean [min, max] over the setting's runs). A run well above it starts beyond the edge "
            "of stability: its loss grows first, until the sharpness has fallen below 2 / lr (a catapult), or it "
            "diverges (`loss peak / init` in the tables above).";
  return text + "\n\n" + markdown_table(header, rows) + "\n";
}

}  // namespace

fs::path write_report(const fs::path& dir, std::ostream& log) {
  const ReportInput input = read_runs(dir);
  const auto& runs = input.runs;
  const auto names = short_names(input.axes);

  // Settings in sweep order; the seeds of a setting are aggregated.
  std::vector<std::vector<std::string>> settings;
  std::vector<size_t> group_of;
  for (const auto& run : runs) {
    auto it = std::find(settings.begin(), settings.end(), run.values);
    if (it == settings.end()) it = settings.insert(settings.end(), run.values);
    group_of.push_back(static_cast<size_t>(it - settings.begin()));
  }
  size_t blocks = 0;
  for (const auto& run : runs)
    if (run.summary.contains("cond_g") && run.summary["cond_g"].is_array()) blocks = std::max(blocks, run.summary["cond_g"].size());
  const bool sharpness = has_sharpness(runs);
  const bool within_sequence = std::any_of(runs.begin(), runs.end(), [](const ReportRun& run) {
    return summary_number(run.summary, "within_sequence_loss").has_value();
  });
  const auto metrics = report_metrics(blocks, sharpness, within_sequence);

  auto spread_in = [&](size_t group, const Metric& metric) {
    std::vector<std::optional<double>> values;
    for (size_t r = 0; r < runs.size(); ++r)
      if (group_of[r] == group) values.push_back(metric.read(runs[r].summary));
    return spread_of(values);
  };
  auto share = [&](size_t group, const std::string& status) {
    const auto [hits, total] = status_count(runs, group_of, group, status);
    return fmt::format("{}/{}", hits, total);
  };

  std::vector<std::string> header = names;
  for (const char* title : {"runs", "converged", "diverged"}) header.emplace_back(title);
  for (const auto& metric : metrics) header.push_back(metric.title);
  std::vector<std::vector<std::string>> rows;
  for (size_t g = 0; g < settings.size(); ++g) {
    std::vector<std::string> row = settings[g];
    row.push_back(std::to_string(std::count(group_of.begin(), group_of.end(), g)));
    row.push_back(share(g, "converged"));
    row.push_back(share(g, "diverged"));
    for (const auto& metric : metrics) row.push_back(format_spread(spread_in(g, metric)));
    rows.push_back(std::move(row));
  }

  std::vector<std::string> run_header = {"run", "seed", "status", "iters"};
  for (const auto& metric : metrics) run_header.push_back(metric.title);
  std::vector<std::vector<std::string>> run_rows;
  for (const auto& run : runs) {
    std::vector<std::string> row = {run.dir.string(), run.seed, run.summary.value("status", "?"),
                                    run.summary.contains("iters") ? run.summary["iters"].dump() : "-"};
    for (const auto& metric : metrics) {
      const auto v = metric.read(run.summary);
      row.push_back(v ? g4(*v) : "-");
    }
    run_rows.push_back(std::move(row));
  }

  // Each metric against each numeric swept value, one line per setting of the other keys.
  std::vector<MetricPlot> metric_plots;
  for (size_t a = 0; a < input.axes.size(); ++a) {
    if (!std::all_of(settings.begin(), settings.end(), [&](const auto& s) { return parse_number(s[a]).has_value(); }))
      continue;
    // The series are the settings of the other axes; the zipped partners of `a` move with it.
    std::vector<bool> along(input.axes.size(), false);
    std::string partners;
    for (size_t b = 0; b < along.size(); ++b) {
      along[b] = b == a || (input.zipped[a] && input.zipped[b]);
      if (along[b] && b != a) partners += (partners.empty() ? " (with " : ", ") + names[b];
    }
    const std::string x_label = names[a] + (partners.empty() ? "" : partners + ")");
    for (const auto& [index, stem, log_y] : {std::tuple<size_t, const char*, bool>{1, "final_loss", true},
                                             {2, "linear_rate", false}, {3, "cond_g1_init", true}}) {
      if (index >= metrics.size()) continue;
      MetricPlot plot{fmt::format("{}_vs_{}", stem, names[a]), x_label, metrics[index].title, log_y, {}, false, ""};
      for (size_t g = 0; g < settings.size(); ++g) {
        std::string label = setting_label(names, settings[g], along);
        if (label.empty()) label = metrics[index].title;
        auto it = std::find_if(plot.series.begin(), plot.series.end(), [&](const auto& s) { return s.label == label; });
        if (it == plot.series.end()) it = plot.series.insert(plot.series.end(), MetricSeries{label, {}});
        const Spread s = spread_in(g, metrics[index]);
        it->points.push_back({*parse_number(settings[g][a]), s.mean, s.min, s.max});
      }
      for (auto& series : plot.series) std::sort(series.points.begin(), series.points.end());
      metric_plots.push_back(std::move(plot));
    }
  }

  // DESIGN.md's claim 2: the rate is governed by the smallest singular value of the
  // attention output. Each quantity that bounds or measures the rate against sigma_min_g1
  // at initialization, over all runs.
  std::string fits_text;
  {
    const std::vector<std::pair<std::string, std::function<std::optional<double>(const nlohmann::json&)>>> quantities = {
        {"1 - linear rate",
         [](const nlohmann::json& s) {
           const auto rate = summary_number(s, "linear_rate");
           return rate ? std::optional<double>(1.0 - *rate) : std::nullopt;
         }},
        {"pl_ratio (median)", [](const nlohmann::json& s) { return summary_number(s, "pl_ratio_median"); }},
        {"sigma_min_phi (init)", [](const nlohmann::json& s) { return summary_number(s, "sigma_min_phi"); }},
        {"ntk_lambda_min (init)", [](const nlohmann::json& s) { return summary_number(s, "ntk_lambda_min"); }}};
    std::vector<std::vector<std::string>> fit_rows;
    MetricPlot points{"rate_vs_sigma_min_g1", "sigma_min_g1 at initialization", "value", true, {}, true,
                      "rate and its bounds against sigma_min_g1, one point per run"};
    for (const auto& [title, read] : quantities) {
      std::vector<std::pair<std::optional<double>, std::optional<double>>> pairs;
      for (const auto& run : runs) pairs.emplace_back(summary_number(run.summary, "sigma_min_g", 0), read(run.summary));
      const auto fit = log_log_fit(pairs);
      if (!fit) continue;
      fit_rows.push_back({title, std::to_string(fit->points.size()), fmt::format("{:.3f}", fit->line.slope),
                          fmt::format("{:.4f}", fit->line.correlation)});
      MetricSeries series{fmt::format("{} (slope {:.2f})", title, fit->line.slope), {}};
      for (const auto& [x, y] : fit->points) series.points.push_back({x, y, y, y});  // the fitted points
      std::sort(series.points.begin(), series.points.end());
      points.series.push_back(std::move(series));
    }
    if (!points.series.empty()) metric_plots.push_back(std::move(points));
    if (!fit_rows.empty())
      fits_text = "## Against sigma_min_g1\n\nA power law y ~ sigma_min_g1^slope fitted by least squares of ln y on "
                  "ln sigma_min_g1 (block 1, at initialization) over the runs where both are finite and positive; "
                  "the correlation is that of the logarithms. The rate is 1 - linear rate, so a run that stalls "
                  "(rate 1) or diverges drops out. Runs that also differ in step size, depth or data mix into the "
                  "same fit: it speaks for claim 2 where the sweep moves sigma_min alone, as "
                  "experiments/scaled_residual.yaml does.\n\n" +
                  markdown_table({"quantity", "runs", "slope", "correlation"}, fit_rows) + "\n";
  }

  std::string plots_text;
  if (const auto gnuplot = find_gnuplot()) {
    std::vector<PlotRun> plot_runs;
    for (size_t r = 0; r < runs.size(); ++r) {
      std::string label = setting_label(names, runs[r].values);
      // The lr only the sharpness plot needs (lr x sharpness), read only for it.
      const double lr = sharpness ? load_config_file((dir / runs[r].dir / "config.yaml").string()).train.lr : 0.0;
      plot_runs.push_back({runs[r].dir, label.empty() ? "seed " + runs[r].seed : label, group_of[r],
                           runs[r].summary.value("status", "") == "diverged", lr});
    }
    const PlotResult plots = draw_plots(*gnuplot, dir, plot_runs, metric_plots);
    plots_text += "PNG and SVG files in plots/, each with the gnuplot script that drew it "
                  "(redraw with `gnuplot plots/NAME.gp` from this directory). Lines are coloured by swept "
                  "setting; non-finite values (cond inf where G is rank-deficient, a diverged loss) are left out.\n\n";
    for (const auto& name : plots.drawn) plots_text += fmt::format("### {0}\n\n![{0}](plots/{0}.png)\n\n", name);
    for (const auto& note : plots.notes) plots_text += "- " + note + "\n";
    for (const auto& failure : plots.failed) {
      plots_text += "- " + failure + "\n";
      log << "resgd report: " << failure << "\n";
    }
  } else {
    plots_text += "Plots skipped: gnuplot was not found on PATH (install gnuplot-nox, then rerun `resgd report`).\n";
    log << "resgd report: plots skipped: gnuplot was not found on PATH\n";
  }

  const std::string name = runs.front().summary.value("name", dir.filename().string());
  std::string text = fmt::format("# Report: {}\n\n", name);
  text += fmt::format("{} run{} in {}", runs.size(), runs.size() == 1 ? "" : "s", fs::absolute(dir).lexically_normal().string());
  if (!input.axes.empty()) {
    std::string axes, zipped;
    for (size_t a = 0; a < input.axes.size(); ++a) {
      std::string& list = input.zipped[a] ? zipped : axes;
      list += (list.empty() ? "`" : input.zipped[a] ? " with `" : ", `") + input.axes[a] + "`";
    }
    if (!zipped.empty()) axes = zipped + " (zipped)" + (axes.empty() ? "" : ", " + axes);
    text += fmt::format(": {} swept setting{} of {}", settings.size(), settings.size() == 1 ? "" : "s", axes);
  }
  text += ". Read from each run's summary.json.\n\n"
          "Each cell: mean over the setting's seeds, then [min, max]; `(k/n)`: only k of the n runs have a value "
          "(iterations to tolerance count the runs that reached it; a rate needs two usable losses). "
          "`cond_g<l>`: sigma_max / sigma_min of the attention output matrix G of block l, at initialization and at "
          "the last iteration; inf where G is rank-deficient (summary.json writes null for it)."
          + std::string(within_sequence ? " `final / within-seq loss`: the final loss over `within_sequence_loss`, "
                                          "the least loss of a prediction that is the same for every token of a "
                                          "sequence, which is all a model can give whose attention maps the tokens "
                                          "of a sequence to one vector: about 1 where the loss stalls for that reason."
                                        : "") +
          "\n\n";
  text += "## By swept setting\n\n" + markdown_table(header, rows) + "\n";
  text += "## Runs\n\n" + markdown_table(run_header, run_rows) + "\n";
  text += step_size_section(input, names, settings, group_of);
  text += fits_text;
  text += "## Plots\n\n" + plots_text;
  const fs::path path = dir / "report.md";
  write_file_atomic(path, text);
  return path;
}

}  // namespace resgd
