// Experiment runner: data, model, GD, and the run directory.
#include "resgd/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>

#include "resgd/data.h"
#include "resgd/diagnostics.h"
#include "resgd/io.h"
#include "resgd/model.h"
#include "resgd/report.h"
#include "resgd/system.h"
#include "resgd/training.h"

namespace resgd {
namespace fs = std::filesystem;

namespace {

std::vector<std::pair<std::string, torch::Tensor>> named_tensors(ResidualTransformerImpl& model,
                                                                 const Dataset& data) {
  std::vector<std::pair<std::string, torch::Tensor>> out = {{"X", data.X}, {"Y", data.Y}};
  for (const auto& item : model.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

/// JSON number, or null for NaN/inf (JSON has neither).
nlohmann::json number_or_null(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

/// The per-block list of one diagnostic ("cond_g" -> [cond_g1, cond_g2, ...]), or [] when
/// diagnostics were not computed.
nlohmann::json block_list(const std::vector<std::string>& columns, const std::vector<double>& values,
                          const std::string& stem) {
  nlohmann::json list = nlohmann::json::array();
  for (double value : per_block(columns, values, stem)) list.push_back(number_or_null(value));
  return list;
}

void prepare_output_dir(const fs::path& dir, bool force) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec) && !force)
    throw IoError(fmt::format("{}: output directory exists and is not empty; choose another --out, "
                              "or pass --force to write into it", dir.string()));
  fs::create_directories(dir, ec);
  if (ec) throw IoError(fmt::format("{}: cannot create output directory: {}", dir.string(), ec.message()));
}

}  // namespace

fs::path default_output_dir(const ExperimentConfig& config) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &local);
  return fs::path("results") / (config.name + "-" + stamp);
}

nlohmann::json run_single(const ExperimentConfig& config, const fs::path& dir, const RunOptions& options) {
  const torch::Device device = resolve_device(config);
  const torch::Dtype dtype = resolve_dtype(config.dtype);
  fs::create_directories(dir / "tensors");
  write_file_atomic(dir / "config.yaml", dump_yaml(config));

  const Dataset data = make_dataset(config, device, dtype);
  ResidualTransformer model(model_options(config));
  model->to(device, dtype);
  save_tensors(dir / "tensors" / "init.pt", named_tensors(*model, data));

  const auto diagnostics = diagnostic_columns(config.model.layers, config.diagnostics.ntk);
  std::vector<std::string> columns = {"iter", "loss", "grad_norm", "elapsed_s"};
  columns.insert(columns.end(), diagnostics.begin(), diagnostics.end());
  CsvWriter metrics(dir / "metrics.csv", columns);
  const TrainResult result = train(
      *model, data, config,
      [&](const IterationRow& row) {
        std::vector<std::optional<double>> cells = {static_cast<double>(row.iter), row.loss, row.grad_norm,
                                                    row.elapsed_s};
        for (size_t i = 0; i < diagnostics.size(); ++i)
          cells.push_back(row.diagnostics.empty() ? std::nullopt : std::optional<double>(row.diagnostics[i]));
        metrics.write_row(cells);
      },
      options.stop_requested);
  metrics.close();
  save_tensors(dir / "tensors" / "final.pt", named_tensors(*model, data));

  nlohmann::json summary;
  summary["name"] = config.name;
  summary["status"] = result.status;
  summary["initial_loss"] = number_or_null(result.initial_loss);
  summary["final_loss"] = number_or_null(result.final_loss);
  summary["iters"] = result.iters;
  summary["iters_to_tol"] = result.iters_to_tol ? nlohmann::json(*result.iters_to_tol) : nlohmann::json(nullptr);
  summary["linear_rate"] = number_or_null(linear_rate(result.logged_iters, result.logged_losses, result.iters_to_tol));
  for (const char* stem : {"sigma_min_g", "sigma_max_g", "cond_g"}) {
    summary[stem] = block_list(diagnostics, result.initial_diagnostics, stem);
    summary[std::string(stem) + "_final"] = block_list(diagnostics, result.final_diagnostics, stem);
  }
  if (!result.pl_ratios.empty()) {
    // pl_ratio is 0/0 = NaN at an exact fit: the statistics are over the finite values.
    double smallest = std::numeric_limits<double>::infinity();
    for (double v : result.pl_ratios)
      if (std::isfinite(v)) smallest = std::min(smallest, v);
    summary["pl_ratio_min"] = number_or_null(smallest);
    summary["pl_ratio_median"] = number_or_null(median_of_finite(result.pl_ratios));
  }
  summary["wall_time_s"] = result.wall_time_s;
  summary["steps_per_s"] = result.steps_per_s;
  summary["device"] = device.str();
  summary["dtype"] = config.dtype;
  summary["seed"] = config.seed;
  summary["gradients"] = config.train.gradients;
  summary["libtorch_version"] = libtorch_version();
  summary["config_hash"] = config_hash(config);
  write_file_atomic(dir / "summary.json", summary.dump(2) + "\n");
  return summary;
}

std::vector<RunRecord> run_experiment(const ExperimentConfig& config, const RunOptions& options) {
  prepare_output_dir(options.out, options.force);
  std::vector<RunRecord> records;
  if (config.sweep.empty()) {
    RunRecord record{SweepPoint{{}, config.seed}, options.out, {}};
    record.summary = run_single(config, options.out, options);
    if (options.log) *options.log << format_run_line(record, 1, 1) << std::endl;
    records.push_back(std::move(record));
    return records;
  }
  write_file_atomic(options.out / "config.yaml", dump_yaml(config));
  const auto points = expand_sweep(config);
  for (size_t i = 0; i < points.size(); ++i) {
    const ExperimentConfig point_config = config_for_point(config, points[i]);
    RunRecord record{points[i], options.out / "runs" / points[i].dir_name(), {}};
    record.summary = run_single(point_config, record.dir, options);
    if (options.log) *options.log << format_run_line(record, i + 1, points.size()) << std::endl;
    records.push_back(std::move(record));
    if (options.stop_requested && options.stop_requested->load()) break;
  }
  write_sweep_csv(options.out / "sweep.csv", config, records);
  return records;
}

}  // namespace resgd
