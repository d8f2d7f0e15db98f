// summary.json, sweep.csv and the run line (summary.h).
#include "resgd/run/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "resgd/core/csv.h"
#include "resgd/core/files.h"
#include "resgd/core/version.h"
#include "resgd/science/device.h"
#include "resgd/science/diagnostics.h"

namespace resgd {
namespace {

/// JSON number, or null for NaN/inf (JSON has neither).
nlohmann::json number_or_null(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

nlohmann::json number_or_null(const std::optional<double>& value) {
  return value ? number_or_null(*value) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json summarize(const ExperimentConfig& config, const TrainResult& result, const Dataset& data,
                         const RunFacts& facts) {
  nlohmann::json summary;
  summary["name"] = config.name;
  summary["status"] = to_string(result.status);
  summary["initial_loss"] = number_or_null(result.initial_loss);
  summary["final_loss"] = number_or_null(result.final_loss);
  // The largest logged loss: the initial one unless the loss rose on the way (a run started
  // beyond the edge of stability catapults; a diverging one blows up).
  double loss_max = -std::numeric_limits<double>::infinity();
  for (double loss : result.logged_losses)
    if (std::isfinite(loss)) loss_max = std::max(loss_max, loss);
  summary["loss_max"] = number_or_null(loss_max);
  // Where a model whose tokens all look alike must stop; pooled targets have no tokens.
  summary["within_sequence_loss"] = config.model.readout == Readout::tokens
                                        ? number_or_null(within_sequence_loss(data.Y, config.train.loss).item<double>())
                                        : nlohmann::json(nullptr);
  // The plateau's length: the first logged iteration at or below half the within-sequence
  // loss, where a model that had mapped each sequence to one vector cannot be.
  std::optional<int64_t> half_within;
  const nlohmann::json& within = summary["within_sequence_loss"];
  if (within.is_number())
    for (size_t i = 0; i < result.logged_losses.size() && !half_within; ++i)
      if (result.logged_losses[i] <= 0.5 * within.get<double>()) half_within = result.logged_iters[i];
  summary["iters_to_half_within_sequence"] = half_within ? nlohmann::json(*half_within) : nlohmann::json(nullptr);
  summary["iters"] = result.iters;
  summary["iters_to_tol"] = result.iters_to_tol ? nlohmann::json(*result.iters_to_tol) : nlohmann::json(nullptr);
  // The fitted rate always; whether it describes the run (a stalled or diverged run has
  // a "rate" too, near 1 or far above it) is converges_linearly's to say.
  const LinearConvergence linear = linear_convergence(result.logged_iters, result.logged_losses, result.iters_to_tol,
                                                      result.status == Status::diverged);
  summary["linear_rate"] = number_or_null(linear.rate);
  summary["linear_fit_correlation"] = number_or_null(linear.correlation);
  summary["converges_linearly"] = linear.linear;
  // The spectra of G at the first and the last diagnosed iteration (the last one whose
  // loss was finite, for a run that diverged), one entry per block.
  const Diagnosis* first = result.diagnosed.empty() ? nullptr : &result.diagnosed.front().second;
  const Diagnosis* last = result.diagnosed.empty() ? nullptr : &result.diagnosed.back().second;
  for (const auto& [key, field] : {std::pair{"sigma_min_g", &BlockDiagnosis::sigma_min_g},
                                   {"sigma_max_g", &BlockDiagnosis::sigma_max_g},
                                   {"cond_g", &BlockDiagnosis::cond_g},
                                   {"rank1_res", &BlockDiagnosis::rank1_res}}) {
    for (const auto& [suffix, diagnosis] : {std::pair{"", first}, {"_final", last}}) {
      nlohmann::json list = nlohmann::json::array();
      if (diagnosis)
        for (const BlockDiagnosis& block : diagnosis->blocks) list.push_back(number_or_null(block.*field));
      summary[std::string(key) + suffix] = list;
    }
  }
  summary["diagnosed_final_iter"] =
      result.diagnosed.empty() ? nlohmann::json(nullptr) : nlohmann::json(result.diagnosed.back().first);
  // What bounds the rate and the step size, at initialization; null where not computed
  // (the NTK and the sharpness are opt-in) or not finite.
  const bool from_start = first && result.diagnosed.front().first == 0;
  summary["sigma_min_phi"] = from_start ? number_or_null(first->sigma_min_phi) : nlohmann::json(nullptr);
  summary["ntk_lambda_min"] = from_start ? number_or_null(first->ntk_lambda_min) : nlohmann::json(nullptr);
  summary["sigma_min_phi_final"] = last ? number_or_null(last->sigma_min_phi) : nlohmann::json(nullptr);
  summary["ntk_lambda_min_final"] = last ? number_or_null(last->ntk_lambda_min) : nlohmann::json(nullptr);
  summary["sharpness"] = from_start ? number_or_null(first->sharpness) : nlohmann::json(nullptr);
  // Over every diagnosed iteration, the finite values (pl_ratio is 0/0 = NaN at an exact
  // fit, every value NaN once a run diverges).
  std::vector<double> pl, sharpness;
  for (const auto& [iter, diagnosis] : result.diagnosed) {
    if (std::isfinite(diagnosis.pl_ratio)) pl.push_back(diagnosis.pl_ratio);
    if (diagnosis.sharpness && std::isfinite(*diagnosis.sharpness)) sharpness.push_back(*diagnosis.sharpness);
  }
  summary["pl_ratio_min"] =
      pl.empty() ? nlohmann::json(nullptr) : number_or_null(*std::min_element(pl.begin(), pl.end()));
  summary["pl_ratio_median"] = number_or_null(median_of_finite(pl));
  if (config.diagnostics.sharpness) {
    summary["sharpness_max"] = sharpness.empty()
                                   ? nlohmann::json(nullptr)
                                   : number_or_null(*std::max_element(sharpness.begin(), sharpness.end()));
    summary["sharpness_final"] = last ? number_or_null(last->sharpness) : nlohmann::json(nullptr);
  }
  // How far the weights moved (relative), and where GD leaves its linearization.
  summary["travel_attention"] = number_or_null(result.travel_attention);
  summary["travel_ffn"] = number_or_null(result.travel_ffn);
  if (config.diagnostics.linearized) {
    double gap = 0, last_ratio = NAN;
    std::optional<int64_t> departs;
    for (size_t i = 0; i < result.logged_loss_lin.size() && i < result.logged_losses.size(); ++i) {
      const double loss = result.logged_losses[i], lin = result.logged_loss_lin[i];
      if (!std::isfinite(loss) || !std::isfinite(lin)) continue;
      gap = std::max(gap, std::abs(loss - lin));
      if (!departs && std::abs(loss - lin) > 0.1 * loss) departs = result.logged_iters[i];
      last_ratio = lin > 0 ? loss / lin : NAN;
    }
    // The gap's largest value is at the first steps; the ratio at the end is the whole
    // trajectory's: GD kept the linearized rate where it is near 1.
    summary["lin_ratio_final"] = number_or_null(last_ratio);
    summary["lin_rate"] = number_or_null(
        linear_convergence(result.logged_iters, result.logged_loss_lin, result.iters_to_tol, false).rate);
    summary["lin_gap_max"] =
        result.initial_loss > 0 ? number_or_null(gap / result.initial_loss) : nlohmann::json(nullptr);
    summary["lin_departure_iter"] = departs ? nlohmann::json(*departs) : nlohmann::json(nullptr);
    summary["ntk_lambda_max"] = number_or_null(result.ntk_lambda_max);
  }
  summary["lr"] = facts.lr;
  summary["lr_edge"] = facts.lr_edge ? number_or_null(*facts.lr_edge) : nlohmann::json(nullptr);
  summary["wall_time_s"] = result.wall_time_s;
  summary["steps_per_s"] = result.steps_per_s;
  summary["device"] = facts.device;
  summary["dtype"] = to_string(config.dtype);
  summary["seed"] = config.seed;
  summary["gradients"] = to_string(config.train.gradients);
  summary["compute_backend"] = to_string(config.compute.backend);
  summary["libtorch_version"] = libtorch_version();
  summary["resgd_version"] = resgd_version();
  summary["resgd_commit"] = resgd_commit();
  summary["config_hash"] = config_hash(config);
  summary["data_hash"] = fmt::format("{:016x}", facts.data_hash);
  return summary;
}

namespace {

/// summary.json's per-block lists, as sweep.csv's columns <list><l> carry them.
const char* const kBlockLists[] = {"sigma_min_g",       "sigma_max_g",       "cond_g",       "rank1_res",
                                   "sigma_min_g_final", "sigma_max_g_final", "cond_g_final", "rank1_res_final"};

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
    return digits == CellDigits::all ? format_number(value->get<double>())
                                     : fmt::format("{:.4g}", value->get<double>());
  return value->dump();
}

/// A table cell: "-" where the summary has no value.
std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

}  // namespace

std::vector<std::string> summary_columns(int64_t layers) {
  std::vector<std::string> columns = {"status",
                                      "initial_loss",
                                      "final_loss",
                                      "loss_max",
                                      "within_sequence_loss",
                                      "iters_to_half_within_sequence",
                                      "iters",
                                      "iters_to_tol",
                                      "linear_rate",
                                      "linear_fit_correlation",
                                      "converges_linearly"};
  for (const char* stem : kBlockLists)
    for (int64_t l = 1; l <= layers; ++l) columns.push_back(fmt::format("{}{}", stem, l));
  for (const char* key : {"sigma_min_phi",
                          "ntk_lambda_min",
                          "sigma_min_phi_final",
                          "ntk_lambda_min_final",
                          "sharpness",
                          "sharpness_max",
                          "sharpness_final",
                          "pl_ratio_min",
                          "pl_ratio_median",
                          "travel_attention",
                          "travel_ffn",
                          "lin_gap_max",
                          "lin_rate",
                          "lin_ratio_final",
                          "lin_departure_iter",
                          "ntk_lambda_max",
                          "lr",
                          "lr_edge",
                          "wall_time_s",
                          "steps_per_s"})
    columns.emplace_back(key);
  return columns;
}

std::optional<std::pair<std::string, int64_t>> block_column(const std::string& column) {
  for (const char* stem : kBlockLists) {
    const std::string s = stem;
    if (column.size() > s.size() && column.compare(0, s.size(), s) == 0 &&
        std::all_of(column.begin() + static_cast<long>(s.size()), column.end(), ::isdigit))
      return std::make_pair(s, std::stoll(column.substr(s.size())));
  }
  return std::nullopt;
}

std::string summary_cell(const nlohmann::json& summary, const std::string& column, CellDigits digits) {
  if (const auto block = block_column(column)) return cell(summary, block->first, block->second, digits);
  return cell(summary, column, 0, digits);
}

std::vector<std::string> display_names(const std::vector<std::string>& keys) {
  std::vector<std::string> names;
  for (const auto& key : keys) {
    const auto dot = key.find('.');
    names.push_back(dot == std::string::npos ? key : key.substr(dot + 1));
  }
  for (const auto& name : names)
    if (std::count(names.begin(), names.end(), name) > 1) return keys;
  return names;
}

std::string display_value(const std::string& value) {
  return value == "true" ? "on" : value == "false" ? "off" : value;
}

std::optional<Status> run_status(const nlohmann::json& summary) {
  const auto status = summary.find("status");
  if (!summary.is_object() || status == summary.end() || !status->is_string()) return std::nullopt;
  return parse_enum<Status>(status->get<std::string>());
}

std::optional<double> rate_if_linear(const nlohmann::json& summary) {
  const auto rate = summary.find("linear_rate");
  if (rate == summary.end() || !rate->is_number()) return std::nullopt;
  const auto verdict = summary.find("converges_linearly");
  const bool linear = verdict != summary.end() && verdict->is_boolean()
                          ? verdict->get<bool>()
                          : run_status(summary) == Status::converged && rate->get<double>() < 1;
  return linear ? std::optional<double>(rate->get<double>()) : std::nullopt;
}

std::string format_run_line(const RunRecord& record, size_t index, size_t total) {
  const auto& s = record.summary;
  const std::string name = record.point.values.empty() && total == 1 ? record.dir.string() : record.point.dir_name();
  const auto rate = rate_if_linear(s);
  return fmt::format("[{}/{}] {}: {} after {} steps, loss {} -> {}, {}, {:.2f} s", index, total, name,
                     cell(s, "status"), cell(s, "iters"), or_dash(cell(s, "initial_loss", 0, CellDigits::four)),
                     or_dash(cell(s, "final_loss", 0, CellDigits::four)),
                     rate ? fmt::format("linear, rate {:.4g}", *rate) : std::string("not linear"),
                     s.value("wall_time_s", 0.0));
}

void write_sweep_csv(const std::filesystem::path& path, const std::vector<std::string>& keys,
                     const std::vector<SweepCsvRow>& rows) {
  std::vector<std::string> header = {"run"};
  header.insert(header.end(), keys.begin(), keys.end());
  header.emplace_back("seed");
  int64_t layers = 1;  // model.layers may be swept: as many block columns as the deepest run has
  for (const auto& row : rows)
    if (row.summary.contains("cond_g") && row.summary["cond_g"].is_array())
      layers = std::max(layers, static_cast<int64_t>(row.summary["cond_g"].size()));
  const auto columns = summary_columns(layers);
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
  for (const auto& row : rows) {
    std::vector<std::string> cells = {row.run};
    cells.insert(cells.end(), row.values.begin(), row.values.end());
    cells.push_back(std::to_string(row.seed));
    for (const auto& column : columns) cells.push_back(summary_cell(row.summary, column));
    text += line(cells);
  }
  write_file_atomic(path, text);
}

void write_sweep_csv(const std::filesystem::path& path, const ExperimentConfig& config,
                     const std::vector<RunRecord>& records) {
  std::vector<std::string> keys;
  for (const auto& axis : config.sweep.axes) keys.push_back(axis.key);
  std::vector<SweepCsvRow> rows;
  for (const auto& record : records) {
    SweepCsvRow row{
        (std::filesystem::path("runs") / record.point.dir_name()).string(), {}, record.point.seed, record.summary};
    for (const auto& [key, value] : record.point.values) row.values.push_back(value);
    rows.push_back(std::move(row));
  }
  write_sweep_csv(path, keys, rows);
}

}  // namespace resgd
