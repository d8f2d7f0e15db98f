// Experiment runner: data, model, GD, and the run directory.
#include "resgd/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "resgd/bench.h"
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

/// The directories create_directories would make for `dir`, outermost first (none where
/// it exists), made one by one: on a failure the caller removes exactly these.
std::vector<fs::path> create_directories_tracked(const fs::path& dir) {
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = dir; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.insert(missing.begin(), p);
    if (p == p.parent_path()) break;
  }
  std::vector<fs::path> created;
  for (const auto& p : missing) {
    if (!fs::create_directory(p, ec) && ec) {
      for (auto it = created.rbegin(); it != created.rend(); ++it) fs::remove(*it, ec);
      throw IoError(fmt::format("{}: cannot create output directory: {}", p.string(), ec.message()));
    }
    created.push_back(p);
  }
  return created;
}

/// Whether `dir` holds nothing but a lock file.
bool holds_nothing(const fs::path& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().filename() != DirectoryLock::kFileName) return false;
  return true;
}

/// The files a run writes into its directory, for removing a failed one's.
const char* const kRunFiles[] = {"config.yaml", "metrics.csv", "summary.json", "checkpoint.pt",
                                 "tensors/init.pt", "tensors/final.pt", "tensors"};

/// Removes what a failed run wrote into `dir` (empty directories left by it included),
/// then `dir` itself where it holds nothing else and `remove_dir`. A user's own files stay.
void remove_failed_run(const fs::path& dir, bool remove_dir) {
  std::error_code ec;
  for (const char* name : kRunFiles) {
    const fs::path path = dir / name;
    if (fs::is_directory(path, ec)) fs::remove(path, ec);  // only if empty
    else fs::remove(path, ec);
  }
  if (remove_dir && holds_nothing(dir)) fs::remove_all(dir, ec);
}

/// The checkpoint file: the iteration, the training time so far, theta_t, theta_0 and the
/// fingerprint of the data they were trained on.
void save_checkpoint(const fs::path& path, const TrainCheckpoint& c, const std::vector<std::string>& names,
                     uint64_t data_hash) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"iter", torch::tensor(c.iter, torch::kInt64)},
      {"elapsed_s", torch::tensor(c.elapsed_s, torch::kFloat64)},
      {"data_hash", torch::tensor(static_cast<int64_t>(data_hash), torch::kInt64)}};
  for (size_t i = 0; i < names.size(); ++i) {
    tensors.emplace_back("params." + names[i], c.params[i]);
    tensors.emplace_back("theta_0." + names[i], c.theta_0[i]);
  }
  save_tensors(path, tensors);
}

/// A checkpoint, checked against the run it continues: an iteration within [0, max_iters],
/// the data it was trained on, and every parameter's shape.
TrainCheckpoint load_checkpoint(const fs::path& path, ResidualTransformerImpl& model, const ExperimentConfig& config,
                                uint64_t data_hash, torch::Device device) {
  const auto tensors = load_tensors(path);
  auto get = [&](const std::string& key, c10::IntArrayRef shape) {
    const auto it = tensors.find(key);
    if (it == tensors.end()) throw IoError(fmt::format("{}: checkpoint lacks '{}'", path.string(), key));
    if (it->second.sizes() != shape)
      throw IoError(fmt::format("{}: checkpoint's '{}' has shape {}, the run needs {}", path.string(), key,
                                c10::str(it->second.sizes()), c10::str(shape)));
    return it->second;
  };
  TrainCheckpoint c;
  c.iter = get("iter", {}).item<int64_t>();
  c.elapsed_s = get("elapsed_s", {}).item<double>();
  if (c.iter < 0 || c.iter > config.train.max_iters)
    throw IoError(fmt::format("{}: checkpoint at iteration {}, outside this run's 0..train.max_iters = {}; it "
                              "belongs to another run",
                              path.string(), c.iter, config.train.max_iters));
  if (tensors.count("data_hash") && static_cast<uint64_t>(get("data_hash", {}).item<int64_t>()) != data_hash)
    throw IoError(fmt::format("{}: the data changed since this checkpoint (fingerprint {:016x}, now {:016x}); "
                              "resuming would mix two data sets: start a new run",
                              path.string(), static_cast<uint64_t>(get("data_hash", {}).item<int64_t>()), data_hash));
  for (const auto& item : model.named_parameters()) {
    c.params.push_back(get("params." + item.key(), item.value().sizes()).to(device));
    c.theta_0.push_back(get("theta_0." + item.key(), item.value().sizes()).to(device));
  }
  return c;
}

/// Keeps the metrics.csv rows of iterations before `iter` (rewritten atomically, lines
/// unchanged) and returns them parsed, for the resumed run's summary.
std::vector<IterationRow> truncate_metrics(const fs::path& path, int64_t iter, size_t diagnostic_count) {
  const std::string content = read_file(path);
  const CsvTable table = parse_csv(content, path.string());
  if (table.columns.size() != 4 + diagnostic_count)
    throw IoError(fmt::format("{}: has {} columns, the configuration {}; cannot resume", path.string(),
                              table.columns.size(), 4 + diagnostic_count));
  std::vector<IterationRow> rows;
  std::string kept = content.substr(0, content.find('\n') + 1);  // the header line
  for (const auto& cells : table.rows) {
    if (cells.size() != table.columns.size() || std::stoll(cells[0]) >= iter) break;  // a cut-off last line too
    IterationRow row;
    row.iter = std::stoll(cells[0]);
    row.loss = std::stod(cells[1]);
    row.grad_norm = std::stod(cells[2]);
    row.elapsed_s = std::stod(cells[3]);
    if (diagnostic_count > 0 && !cells[4].empty())
      for (size_t i = 4; i < cells.size(); ++i) row.diagnostics.push_back(std::stod(cells[i]));
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) line += (i ? "," : "") + cells[i];
    kept += line + "\n";
    rows.push_back(std::move(row));
  }
  write_file_atomic(path, kept);
  return rows;
}

/// A finished run's summary when resuming (status other than interrupted), else null.
nlohmann::json finished_summary(const fs::path& dir) {
  const fs::path path = dir / "summary.json";
  if (!fs::exists(path)) return nullptr;
  auto summary = nlohmann::json::parse(read_file(path), nullptr, /*allow_exceptions=*/false);
  if (summary.is_discarded() || summary.value("status", "") == "interrupted") return nullptr;
  return summary;
}

/// Resuming into `dir` is allowed only for the configuration that wrote it. A config.yaml
/// written before a key existed reads back with that key's default, the same configuration,
/// so the text is compared once more after a read and a dump.
void require_same_config(const fs::path& dir, const std::string& yaml) {
  const fs::path path = dir / "config.yaml";
  if (!fs::exists(path)) return;
  const std::string written = read_file(path);
  bool same = written == yaml;
  try {
    same = same || dump_yaml(load_config_text(written, path.string())) == yaml;
  } catch (const ConfigError&) {  // unreadable now: not the same configuration
  }
  if (!same)
    throw IoError(fmt::format("{}: was written by a different configuration; resume with the same experiment "
                              "and --set values, or choose another --out",
                              path.string()));
}

/// A finished run resumed: returned as it is, once its configuration and data are those
/// of this command.
void require_same_data(const fs::path& dir, const nlohmann::json& summary, uint64_t data_hash) {
  const auto written = summary.find("data_hash");
  if (written == summary.end() || !written->is_string() || written->get<std::string>() == fmt::format("{:016x}", data_hash))
    return;
  throw IoError(fmt::format("{}: the data changed since this run finished (fingerprint {}, now {:016x}); choose "
                            "another --out for a run on the new data",
                            (dir / "summary.json").string(), written->get<std::string>(), data_hash));
}

/// Refuses to resume in a directory that `resgd run` did not write, touching nothing: it
/// must hold a config.yaml that reads as an experiment (or be empty).
void require_ours(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw IoError(fmt::format("{}: is not a directory; --resume continues a run or sweep directory", dir.string()));
  if (holds_nothing(dir)) return;
  const fs::path config = dir / "config.yaml";
  auto not_ours = [&](const std::string& why) {
    return IoError(fmt::format("{}: not a run or sweep directory of `resgd run` ({}); --resume continues only "
                               "those, and nothing here was changed",
                               dir.string(), why));
  };
  if (!fs::exists(config, ec)) throw not_ours("no config.yaml");
  try {
    load_config_file(config.string());
  } catch (const ConfigError& e) {
    throw not_ours(fmt::format("its config.yaml is not an experiment: {}", e.what()));
  }
}

}  // namespace

fs::path create_default_output_dir(const ExperimentConfig& config) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &local);
  const fs::path base = fs::path("results") / (config.name + "-" + stamp);
  std::error_code ec;
  fs::create_directories(base.parent_path(), ec);
  if (ec) throw IoError(fmt::format("{}: cannot create output directory: {}", base.parent_path().string(), ec.message()));
  for (int k = 1;; ++k) {
    const fs::path dir = k == 1 ? base : fs::path(fmt::format("{}-{}", base.string(), k));
    if (fs::create_directory(dir, ec)) return dir;  // false: it exists, claimed by someone else
    if (ec) throw IoError(fmt::format("{}: cannot create output directory: {}", dir.string(), ec.message()));
  }
}

namespace {

/// run_single in a directory that exists and that the caller has locked.
nlohmann::json train_into(const ExperimentConfig& config, const fs::path& dir, const RunOptions& options,
                          const SweepPoint& point) {
  const bool resuming = options.resume && fs::exists(dir / "config.yaml");
  if (resuming) require_same_config(dir, dump_yaml(config));  // finished or not
  const torch::Device device = resolve_device(config);
  const torch::Dtype dtype = resolve_dtype(config.dtype);
  const Dataset data = make_dataset(config, device, dtype);  // data errors come before any file
  const uint64_t data_hash = data_fingerprint(data);
  if (resuming) {
    if (auto done = finished_summary(dir); !done.is_null()) {
      require_same_data(dir, done, data_hash);
      return done;
    }
  }
  ResidualTransformer model(model_options(config));
  model->to(device, dtype);
  const auto diagnostics = diagnostic_columns(config.model.layers, config.diagnostics);
  const auto names = model->parameter_names();
  const fs::path checkpoint_path = dir / "checkpoint.pt";
  std::optional<TrainCheckpoint> resume;
  if (resuming && fs::exists(checkpoint_path) && fs::exists(dir / "metrics.csv")) {
    resume = load_checkpoint(checkpoint_path, *model, config, data_hash, device);
    resume->rows = truncate_metrics(dir / "metrics.csv", resume->iter, diagnostics.size());
  }
  write_file_atomic(dir / "config.yaml", dump_yaml(config));
  save_tensors(dir / "tensors" / "init.pt", named_tensors(*model, data));

  std::vector<std::string> columns = {"iter", "loss", "grad_norm", "elapsed_s"};
  columns.insert(columns.end(), diagnostics.begin(), diagnostics.end());
  CsvWriter metrics(dir / "metrics.csv", columns, /*append=*/resume.has_value());
  TrainHooks hooks;
  hooks.on_row = [&](const IterationRow& row) {
    std::vector<std::optional<double>> cells = {static_cast<double>(row.iter), row.loss, row.grad_norm, row.elapsed_s};
    for (size_t i = 0; i < diagnostics.size(); ++i)
      cells.push_back(row.diagnostics.empty() ? std::nullopt : std::optional<double>(row.diagnostics[i]));
    metrics.write_row(cells);
    if (options.on_row) options.on_row(point, row);
  };
  hooks.on_checkpoint = [&](const TrainCheckpoint& c) { save_checkpoint(checkpoint_path, c, names, data_hash); };
  hooks.stop_requested = options.stop_requested;
  const TrainResult result = train(*model, data, config, hooks, resume ? &*resume : nullptr);
  metrics.close();
  save_tensors(dir / "tensors" / "final.pt", named_tensors(*model, data));
  if (result.status != "interrupted") fs::remove(checkpoint_path);  // finished: final.pt says it all

  nlohmann::json summary;
  summary["name"] = config.name;
  summary["status"] = result.status;
  summary["initial_loss"] = number_or_null(result.initial_loss);
  summary["final_loss"] = number_or_null(result.final_loss);
  // The largest logged loss: the initial one unless the loss rose on the way (a run started
  // beyond the edge of stability catapults; a diverging one blows up).
  double loss_max = -std::numeric_limits<double>::infinity();
  for (double loss : result.logged_losses)
    if (std::isfinite(loss)) loss_max = std::max(loss_max, loss);
  summary["loss_max"] = number_or_null(loss_max);
  // Where a model whose tokens all look alike must stop; pooled targets have no tokens.
  summary["within_sequence_loss"] = config.model.readout == "tokens"
                                        ? number_or_null(within_sequence_loss(data.Y, config.train.loss).item<double>())
                                        : nlohmann::json(nullptr);
  summary["iters"] = result.iters;
  summary["iters_to_tol"] = result.iters_to_tol ? nlohmann::json(*result.iters_to_tol) : nlohmann::json(nullptr);
  summary["linear_rate"] = number_or_null(linear_rate(result.logged_iters, result.logged_losses, result.iters_to_tol));
  for (const char* stem : {"sigma_min_g", "sigma_max_g", "cond_g"}) {
    summary[stem] = block_list(diagnostics, result.initial_diagnostics, stem);
    summary[std::string(stem) + "_final"] = block_list(diagnostics, result.final_diagnostics, stem);
  }
  // The quantities the rate and the step size are bounded by, at initialization; null
  // where not computed (the NTK and the sharpness are opt-in) or not finite.
  for (const char* key : {"sigma_min_phi", "ntk_lambda_min", "sharpness"}) {
    const auto value = value_of(diagnostics, result.initial_diagnostics, key);
    summary[key] = value ? number_or_null(*value) : nlohmann::json(nullptr);
  }
  // Over every diagnosed iteration, the finite values (pl_ratio is 0/0 = NaN at an exact
  // fit, every value NaN once a run diverges).
  auto over_run = [&](const std::string& key) {
    std::vector<double> values;
    for (const auto& row : result.diagnosed)
      if (auto v = value_of(diagnostics, row, key); v && std::isfinite(*v)) values.push_back(*v);
    return values;
  };
  if (const auto pl = over_run("pl_ratio"); !result.diagnosed.empty()) {
    summary["pl_ratio_min"] = pl.empty() ? nlohmann::json(nullptr) : number_or_null(*std::min_element(pl.begin(), pl.end()));
    summary["pl_ratio_median"] = number_or_null(median_of_finite(pl));
  }
  if (config.diagnostics.sharpness) {
    const auto s = over_run("sharpness");
    summary["sharpness_max"] = s.empty() ? nlohmann::json(nullptr) : number_or_null(*std::max_element(s.begin(), s.end()));
    const auto last = value_of(diagnostics, result.final_diagnostics, "sharpness");
    summary["sharpness_final"] = last ? number_or_null(*last) : nlohmann::json(nullptr);
  }
  summary["wall_time_s"] = result.wall_time_s;
  summary["steps_per_s"] = result.steps_per_s;
  summary["device"] = device.str();
  summary["dtype"] = config.dtype;
  summary["seed"] = config.seed;
  summary["gradients"] = config.train.gradients;
  summary["libtorch_version"] = libtorch_version();
  summary["config_hash"] = config_hash(config);
  summary["data_hash"] = fmt::format("{:016x}", data_hash);
  write_file_atomic(dir / "summary.json", summary.dump(2) + "\n");  // last: the run is done
  return summary;
}

}  // namespace

nlohmann::json run_single(const ExperimentConfig& config, const fs::path& dir, const RunOptions& options,
                          const SweepPoint& point) {
  const bool fresh = !fs::exists(dir / "config.yaml");  // nothing of an earlier run to keep
  try {
    return train_into(config, dir, options, point);
  } catch (...) {
    if (fresh) remove_failed_run(dir, /*remove_dir=*/false);  // no half-written run is left
    throw;
  }
}

std::vector<ExperimentConfig> sweep_point_configs(const ExperimentConfig& config) {
  std::vector<ExperimentConfig> out;
  const auto points = expand_sweep(config);
  std::map<std::string, size_t> first_of;  // a point's resolved configuration -> its index
  for (size_t i = 0; i < points.size(); ++i) {
    out.push_back(config_for_point(config, points[i]));
    read_data_sizes(out.back());
    const auto [it, fresh] = first_of.emplace(dump_yaml(out.back()), i);
    if (fresh) continue;
    // Values spelled apart that read the same (0.1 and 1e-1, true and 1.0): the sweep
    // would train one configuration twice and call the copies two settings.
    const SweepPoint& first = points[it->second];
    for (size_t k = 0; k < points[i].values.size(); ++k) {
      const auto& [key, value] = points[i].values[k];
      if (value == first.values[k].second) continue;
      throw ConfigError(fmt::format("{}: sweep.{}: {} gives the same configuration as {} (run {} and run {}); "
                                    "each setting would train the same runs",
                                    sweep_value_origin(config.sweep, key, value).str(), key, value, first.values[k].second, first.dir_name(),
                                    points[i].dir_name()));
    }
    throw ConfigError(fmt::format("sweep: runs {} and {} have the same configuration", first.dir_name(),
                                  points[i].dir_name()));  // not reached: equal texts are refused on loading
  }
  return out;
}

namespace {

std::vector<RunRecord> run_all(const ExperimentConfig& config, const RunOptions& options) {
  std::vector<RunRecord> records;
  if (config.sweep.empty()) {
    ExperimentConfig resolved = config;
    read_data_sizes(resolved);
    set_gd_blas_threads(lone_gd_blas_threads(gd_step_flops(resolved)));  // a lone run, as --jobs 1
    RunRecord record{SweepPoint{{}, config.seed}, options.out, {}};
    record.summary = run_single(resolved, options.out, options, record.point);
    if (options.log) *options.log << format_run_line(record, 1, 1) << std::endl;
    records.push_back(std::move(record));
    write_report(options.out);  // report.md and plots/ of the run
    return records;
  }
  if (options.resume) require_same_config(options.out, dump_yaml(config));
  const auto points = expand_sweep(config);
  const auto point_configs = sweep_point_configs(config);  // before anything is written
  write_file_atomic(options.out / "config.yaml", dump_yaml(config));

  // --jobs K: K workers take the next point in order; each run is independent and
  // deterministic, so the results do not depend on K.
  std::vector<std::optional<RunRecord>> slots(points.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first_error;
  std::mutex mutex;  // guards the log, `done` and `first_error`
  size_t done = 0;
  const size_t workers = std::min(points.size(), static_cast<size_t>(std::max(options.jobs, 1)));
  // Runs side by side share OpenBLAS's one process-wide thread count: each keeps to one
  // thread. A lone run may spread large products over the cores (set per run below).
  set_gd_blas_threads(1);
  set_blas_threads(1);  // now, before any worker thread can be inside BLAS
  auto worker = [&] {
    for (size_t i; (i = next++) < points.size();) {
      if (failed || (options.stop_requested && options.stop_requested->load())) return;
      try {
        if (workers == 1) set_gd_blas_threads(lone_gd_blas_threads(gd_step_flops(point_configs[i])));
        RunRecord record{points[i], options.out / "runs" / points[i].dir_name(), {}};
        const auto created = create_directories_tracked(record.dir);
        try {
          const DirectoryLock run_lock(record.dir);  // one writer per run, as per sweep (a cluster's tasks)
          record.summary = run_single(point_configs[i], record.dir, options, record.point);
        } catch (...) {
          if (!created.empty()) remove_failed_run(record.dir, /*remove_dir=*/true);
          throw;
        }
        std::lock_guard<std::mutex> lock(mutex);
        if (options.log) *options.log << format_run_line(record, ++done, points.size()) << std::endl;
        slots[i] = std::move(record);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        // The error itself ends the command; this line says which run raised it.
        if (options.log) *options.log << fmt::format("run {} failed", points[i].dir_name()) << std::endl;
        if (!first_error) first_error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t w = 1; w < workers; ++w) pool.emplace_back(worker);
  worker();
  for (auto& thread : pool) thread.join();
  if (first_error) std::rethrow_exception(first_error);
  for (auto& slot : slots)
    if (slot) records.push_back(std::move(*slot));
  write_sweep_csv(options.out / "sweep.csv", config, records);
  write_report(options.out);  // report.md and plots/ of the whole sweep
  return records;
}

}  // namespace

std::vector<RunRecord> run_experiment(const ExperimentConfig& config, const RunOptions& options) {
  const fs::path& out = options.out;
  std::error_code ec;
  const bool existed = fs::exists(out, ec) && !options.out_is_new;
  if (options.resume && !existed && !options.start_if_missing)
    throw IoError(fmt::format("{}: no such directory to resume; check the path, or pass --resume-or-start to "
                              "start a new run there",
                              out.string()));
  if (options.resume && existed) require_ours(out);  // touching nothing otherwise
  std::vector<fs::path> created = create_directories_tracked(out);
  if (options.out_is_new) created.push_back(out);
  try {
    const DirectoryLock lock(out);  // before anything is written, to the end
    if (!options.force && !options.resume && !holds_nothing(out))
      throw IoError(fmt::format("{}: output directory exists and is not empty; choose another --out, "
                                "or pass --force to write into it",
                                out.string()));
    return run_all(config, options);
  } catch (...) {
    // A failed run removed its own files; what this command created and holds no
    // finished run goes too, so no empty or half-written directory is left.
    if (!created.empty() && fs::exists(out, ec)) {
      bool finished_inside = false;
      for (auto it = fs::recursive_directory_iterator(out, ec); !ec && it != fs::recursive_directory_iterator(); ++it)
        finished_inside = finished_inside || it->path().filename() == "summary.json";
      if (!finished_inside) fs::remove_all(out, ec);
      for (auto it = created.rbegin(); it != created.rend(); ++it)
        if (fs::exists(*it, ec) && fs::is_empty(*it, ec)) fs::remove(*it, ec);
    } else if (fs::exists(out, ec) && holds_nothing(out)) {
      fs::remove(out / DirectoryLock::kFileName, ec);  // the user's empty directory, as it was
    }
    throw;
  }
}

}  // namespace resgd
