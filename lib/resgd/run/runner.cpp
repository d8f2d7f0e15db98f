// Experiment runner: data, model, GD, and the run directory (runner.h).
#include "resgd/run/runner.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "resgd/core/csv.h"
#include "resgd/run/summary.h"
#include "resgd/science/data.h"
#include "resgd/science/device.h"
#include "resgd/science/diagnostics.h"
#include "resgd/science/model.h"
#include "resgd/science/spectra.h"
#include "resgd/science/step_size.h"
#include "resgd/science/tensor_io.h"
#include "resgd/science/training.h"

namespace resgd {
namespace fs = std::filesystem;

namespace {

std::vector<std::pair<std::string, torch::Tensor>> named_tensors(ResidualTransformerImpl& model, const Dataset& data) {
  std::vector<std::pair<std::string, torch::Tensor>> out = {{"X", data.X}, {"Y", data.Y}};
  for (const auto& item : model.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

/// rmdir of each of `dirs` (innermost last in the list) that is empty: never a file in it.
void remove_empty_directories(const std::vector<fs::path>& dirs) {
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) ::rmdir(it->c_str());
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
    const bool made = fs::create_directory(p, ec);
    if (!made && ec) {
      remove_empty_directories(created);
      throw IoError(fmt::format("{}: cannot create output directory: {}", p.string(), ec.message()));
    }
    if (made) created.push_back(p);  // not one another process made at the same moment
  }
  return created;
}

/// Takes the lock on `dir` into `lock`; where another process holds it, removes only the
/// directories this one created that are still empty (the holder's lock file keeps `dir`
/// itself) and rethrows: a refused process touches nothing it did not create.
void lock_or_leave(std::optional<DirectoryLock>& lock, const fs::path& dir, const std::vector<fs::path>& created) {
  try {
    lock.emplace(dir);
  } catch (...) {
    remove_empty_directories(created);
    throw;
  }
}

/// Whether `dir` holds nothing but a lock file.
bool holds_nothing(const fs::path& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().filename() != DirectoryLock::kFileName) return false;
  return true;
}

/// The files a run writes into its directory, for removing a failed one's.
const char* const kRunFiles[] = {"config.yaml",
                                 "metrics.csv",
                                 "summary.json",
                                 "checkpoint.pt",
                                 "tensors/init.pt",
                                 "tensors/final.pt",
                                 "tensors/init_spectra.pt",
                                 "tensors",
                                 "ntk_spectrum"};

/// Removes what a failed run wrote into `dir` (empty directories left by it included),
/// then `dir` itself where it holds nothing else and `remove_dir`. A user's own files stay.
void remove_failed_run(const fs::path& dir, bool remove_dir) {
  std::error_code ec;
  if (fs::is_directory(dir / "ntk_spectrum", ec))  // one file per NTK measurement, all ours
    for (const auto& entry : fs::directory_iterator(dir / "ntk_spectrum", ec))
      if (entry.path().extension() == ".csv") fs::remove(entry.path(), ec);
  for (const char* name : kRunFiles) {
    const fs::path path = dir / name;
    if (fs::is_directory(path, ec))
      fs::remove(path, ec);  // only if empty
    else
      fs::remove(path, ec);
  }
  if (remove_dir && holds_nothing(dir)) fs::remove_all(dir, ec);
}

/// ntk_spectrum/<iter>.csv: index (1 = the smallest eigenvalue), eigenvalue, energy. A resumed
/// run measures the same iterations again and writes the same files over them.
void write_ntk_spectrum(const fs::path& dir, int64_t iter, const NtkSpectrum& spectrum) {
  std::string text = "index,eigenvalue,energy\n";
  for (size_t i = 0; i < spectrum.eigenvalues.size(); ++i)
    text += fmt::format("{},{},{}\n", i + 1, format_number(spectrum.eigenvalues[i]), format_number(spectrum.energy[i]));
  fs::create_directories(dir / "ntk_spectrum");
  write_file_atomic(dir / "ntk_spectrum" / fmt::format("{}.csv", iter), text);
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
    throw IoError(
        fmt::format("{}: checkpoint at iteration {}, outside this run's 0..train.max_iters = {}; it "
                    "belongs to another run",
                    path.string(), c.iter, config.train.max_iters));
  if (tensors.count("data_hash") && static_cast<uint64_t>(get("data_hash", {}).item<int64_t>()) != data_hash)
    throw IoError(
        fmt::format("{}: the data changed since this checkpoint (fingerprint {:016x}, now {:016x}); "
                    "resuming would mix two data sets: start a new run",
                    path.string(), static_cast<uint64_t>(get("data_hash", {}).item<int64_t>()), data_hash));
  for (const auto& item : model.named_parameters()) {
    c.params.push_back(get("params." + item.key(), item.value().sizes()).to(device));
    c.theta_0.push_back(get("theta_0." + item.key(), item.value().sizes()).to(device));
  }
  return c;
}

/// The whole of `text` as a number (nan and inf as format_number writes them), or none.
/// Stricter than collection.h's parse_number, which also reads true/false and leading
/// blanks: a metrics.csv cell is only what format_number writes.
std::optional<double> metrics_number(const std::string& text) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return value;
}

/// The columns of metrics.csv: every row's, loss_lin where the linearized trajectory is
/// followed, then the diagnostics'.
std::vector<std::string> metrics_columns(const ExperimentConfig& config) {
  std::vector<std::string> columns = {"iter", "loss", "grad_norm", "elapsed_s"};
  if (config.diagnostics.linearized) columns.emplace_back("loss_lin");
  const auto diagnostics = diagnostic_columns(config.model.layers, config.diagnostics);
  columns.insert(columns.end(), diagnostics.begin(), diagnostics.end());
  return columns;
}

/// Keeps the metrics.csv rows of iterations before `iter` (rewritten atomically, lines
/// unchanged) and returns them parsed, for the resumed run's result. Only a last line cut
/// off without its line break (a crash mid-write) is dropped; any other row that does not
/// read is an error naming its line, as resuming past it would lose every row after it.
std::vector<IterationRow> truncate_metrics(const fs::path& path, int64_t iter, const ExperimentConfig& config) {
  const std::string content = read_file(path);
  const std::vector<std::string> columns = metrics_columns(config);
  const size_t header_end = content.find('\n');
  if (header_end == std::string::npos || split_csv_line(content.substr(0, header_end)) != columns)
    throw IoError(fmt::format("{}: its header is not the {} columns of this configuration; cannot resume",
                              path.string(), columns.size()));
  const size_t diagnostic_count = diagnostic_columns(config.model.layers, config.diagnostics).size();
  const size_t first = columns.size() - diagnostic_count;  // the first diagnostic column
  std::vector<IterationRow> rows;
  std::string kept = content.substr(0, header_end + 1);
  size_t line_number = 1;
  for (size_t at = header_end + 1; at < content.size();) {
    const size_t end = content.find('\n', at);
    if (end == std::string::npos) break;  // the last line, cut off mid-write
    const std::string line = content.substr(at, end - at);
    at = end + 1;
    ++line_number;
    const auto bad = [&](const std::string& why) {
      return IoError(
          fmt::format("{}:{}: {}; cannot resume past it (the rows after it would be lost): repair or "
                      "remove the line, or start the run again",
                      path.string(), line_number, why));
    };
    const std::vector<std::string> cells = split_csv_line(line);
    if (cells.size() != columns.size())
      throw bad(fmt::format("has {} cells where the header has {}", cells.size(), columns.size()));
    std::vector<std::optional<double>> values;
    for (size_t i = 0; i < cells.size(); ++i) {
      if (cells[i].empty() && i >= first) {
        values.emplace_back();
        continue;
      }
      const auto value = metrics_number(cells[i]);
      if (!value) throw bad(fmt::format("its {} '{}' is not a number", columns[i], cells[i]));
      values.push_back(value);
    }
    IterationRow row;
    row.iter = static_cast<int64_t>(*values[0]);
    if (static_cast<double>(row.iter) != *values[0] || (!rows.empty() && row.iter <= rows.back().iter))
      throw bad(fmt::format("its iteration '{}' does not follow the row before it", cells[0]));
    if (row.iter >= iter) break;  // the checkpoint's run writes these again
    row.loss = *values[1];
    row.grad_norm = *values[2];
    row.elapsed_s = *values[3];
    if (config.diagnostics.linearized) row.loss_lin = values[4];
    if (diagnostic_count > 0 && values[first])
      row.diagnosis = from_cells({values.begin() + static_cast<std::ptrdiff_t>(first), values.end()},
                                 config.model.layers, config.diagnostics);
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
  if (summary.is_discarded() || run_status(summary) == Status::interrupted) return nullptr;
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
    throw IoError(
        fmt::format("{}: was written by a different configuration; resume with the same experiment "
                    "and --set values, or choose another --out",
                    path.string()));
}

/// A sweep resumed with a file that adds values or seeds: allowed where every other key is
/// as DIR/config.yaml has it and every point of the written sweep that has a run directory
/// is still a point of the new one; the new points then run, the finished ones are kept.
/// Otherwise IoError naming the key and both values, or the run the change would orphan.
void require_sweep_extends(const fs::path& dir, const ExperimentConfig& config) {
  const fs::path path = dir / "config.yaml";
  if (!fs::exists(path)) return;
  ExperimentConfig written;
  try {
    written = load_config_file(path.string());
  } catch (const ConfigError&) {
    require_same_config(dir, dump_yaml(config));  // unreadable now: only the same text resumes
    return;
  }
  if (dump_yaml(written) == dump_yaml(config)) return;
  auto swept = [](const ExperimentConfig& c, const std::string& key) {
    return std::any_of(c.sweep.axes.begin(), c.sweep.axes.end(), [&](const SweepAxis& a) { return a.key == key; });
  };
  for (const auto& key : known_keys()) {
    const bool seeds = !written.sweep.seeds.empty() || !config.sweep.seeds.empty();
    if (swept(written, key) || swept(config, key) || (key == "seed" && seeds)) continue;
    const std::string before = value_text(written, key), now = value_text(config, key);
    if (before != now)
      throw IoError(
          fmt::format("{}: {} is {} there and {} now; a resumed sweep may add values or seeds to its axes, "
                      "and change nothing else (choose another --out for a new sweep)",
                      path.string(), key, before, now));
  }
  const auto points = expand_sweep(config);
  for (const auto& point : expand_sweep(written)) {
    const std::string name = point.dir_name();
    if (std::none_of(points.begin(), points.end(), [&](const SweepPoint& p) { return p.dir_name() == name; }) &&
        fs::exists(dir / "runs" / name))
      throw IoError(
          fmt::format("{}: the run {} of the sweep written there is not a point of the new sweep; a "
                      "resumed sweep may add values or seeds, not drop or reorder them",
                      path.string(), (dir / "runs" / name).string()));
  }
}

/// A finished run resumed: returned as it is, once its configuration and data are those
/// of this command.
void require_same_data(const fs::path& dir, const nlohmann::json& summary, uint64_t data_hash) {
  const auto written = summary.find("data_hash");
  if (written == summary.end() || !written->is_string() ||
      written->get<std::string>() == fmt::format("{:016x}", data_hash))
    return;
  throw IoError(
      fmt::format("{}: the data changed since this run finished (fingerprint {}, now {:016x}); choose "
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
    return IoError(
        fmt::format("{}: not a run or sweep directory of `resgd run` ({}); --resume continues only "
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
  if (ec)
    throw IoError(fmt::format("{}: cannot create output directory: {}", base.parent_path().string(), ec.message()));
  for (int k = 1;; ++k) {
    const fs::path dir = k == 1 ? base : fs::path(fmt::format("{}-{}", base.string(), k));
    if (fs::create_directory(dir, ec)) return dir;  // false: it exists, claimed by someone else
    if (ec) throw IoError(fmt::format("{}: cannot create output directory: {}", dir.string(), ec.message()));
  }
}

namespace {

/// The singular values of each block's G at initialization, per sample (N, min(n, d)):
/// tensors/init_spectra.pt, which the report's plots draw.
void save_initial_spectra(const fs::path& path, const ForwardTrace& trace) {
  torch::NoGradGuard no_grad;
  std::vector<std::pair<std::string, torch::Tensor>> spectra;
  for (size_t l = 0; l < trace.blocks.size(); ++l)
    spectra.emplace_back(fmt::format("G{}", l + 1), singular_values(trace.blocks[l].G));
  save_tensors(path, spectra);
}

/// run_single in a directory that exists and that the caller has locked.
nlohmann::json train_into(const ExperimentConfig& config, const fs::path& dir, const RunOptions& options,
                          const SweepPoint& point, int runs_at_once) {
  const bool resuming = options.resume && fs::exists(dir / "config.yaml");
  if (resuming) require_same_config(dir, dump_yaml(config));  // finished or not
  const torch::Device device = resolve_device(config);
  const Dataset data = make_dataset(config, device, resolve_dtype(config.dtype));  // data errors before any file
  const uint64_t data_hash = data_fingerprint(data);
  if (resuming) {
    if (auto done = finished_summary(dir); !done.is_null()) {
      require_same_data(dir, done, data_hash);
      return done;
    }
  }
  ResidualTransformer model(model_options(config));
  model->to(device, resolve_dtype(config.dtype));
  // At theta_0, before a checkpoint's parameters are loaded: a resumed run takes its step.
  const StepSize step = step_size(*model, data, config, options.stop_requested);
  ExperimentConfig stepped = config;
  stepped.train.lr = step.lr;
  const auto names = model->parameter_names();
  const fs::path checkpoint_path = dir / "checkpoint.pt";
  std::optional<TrainCheckpoint> resume;
  if (resuming && fs::exists(checkpoint_path) && fs::exists(dir / "metrics.csv")) {
    resume = load_checkpoint(checkpoint_path, *model, config, data_hash, device);
    resume->rows = truncate_metrics(dir / "metrics.csv", resume->iter, config);
  }
  write_file_atomic(dir / "config.yaml", dump_yaml(config));
  save_tensors(dir / "tensors" / "init.pt", named_tensors(*model, data));

  const auto diagnostics = diagnostic_columns(config.model.layers, config.diagnostics);
  CsvWriter metrics(dir / "metrics.csv", metrics_columns(config), /*append=*/resume.has_value());
  TrainHooks hooks;
  hooks.on_row = [&](const IterationRow& row) {
    std::vector<std::optional<double>> cells = {static_cast<double>(row.iter), row.loss, row.grad_norm, row.elapsed_s};
    if (config.diagnostics.linearized) cells.push_back(row.loss_lin);
    const auto values = row.diagnosis ? to_cells(*row.diagnosis, config.diagnostics)
                                      : std::vector<std::optional<double>>(diagnostics.size());
    cells.insert(cells.end(), values.begin(), values.end());
    metrics.write_row(cells);
    if (row.diagnosis && row.diagnosis->ntk_spectrum) write_ntk_spectrum(dir, row.iter, *row.diagnosis->ntk_spectrum);
    if (options.on_row) options.on_row(point, row);
  };
  hooks.on_checkpoint = [&](const TrainCheckpoint& c) { save_checkpoint(checkpoint_path, c, names, data_hash); };
  hooks.on_initial_trace = [&](const ForwardTrace& trace) {
    save_initial_spectra(dir / "tensors" / "init_spectra.pt", trace);
  };
  hooks.stop_requested = options.stop_requested;
  const compute::Policy policy = compute::policy_for(config, runs_at_once);
  const TrainResult result = train(*model, data, stepped, policy, hooks, resume ? &*resume : nullptr);
  metrics.close();
  // With the configuration, so that final.pt alone rebuilds the model (docs/python.md).
  save_tensors(dir / "tensors" / "final.pt", named_tensors(*model, data), {{kConfigEntry, dump_yaml(config, false)}});
  if (result.status != Status::interrupted) fs::remove(checkpoint_path);  // finished: final.pt says it all
  const nlohmann::json summary = summarize(config, result, data, {device.str(), data_hash, step.lr, step.edge});
  write_file_atomic(dir / "summary.json", summary.dump(2) + "\n");  // last: the run is done
  return summary;
}

}  // namespace

nlohmann::json run_single(const ExperimentConfig& config, const fs::path& dir, const RunOptions& options,
                          const SweepPoint& point, int runs_at_once) {
  const bool fresh = !fs::exists(dir / "config.yaml");  // nothing of an earlier run to keep
  try {
    return train_into(config, dir, options, point, runs_at_once);
  } catch (...) {
    if (fresh) remove_failed_run(dir, /*remove_dir=*/false);  // no half-written run is left
    throw;
  }
}

std::vector<ExperimentConfig> sweep_point_configs(const ExperimentConfig& config) {
  return resolve_sweep(config, read_data_sizes);
}

namespace {

/// The one run of an experiment without a sweep, in `options.out` itself.
RunRecord run_alone(const ExperimentConfig& config, const RunOptions& options) {
  ExperimentConfig resolved = config;
  read_data_sizes(resolved);
  RunRecord record{SweepPoint{{}, config.seed}, options.out, {}};
  record.summary = run_single(resolved, options.out, options, record.point, /*runs_at_once=*/1);
  return record;
}

/// One point of a sweep in its runs/<point>/ directory, under that run's lock (one writer
/// per run, as per sweep: a cluster's tasks run the points of one sweep at once). A failed
/// run leaves nothing it created.
RunRecord run_sweep_point(const ExperimentConfig& point_config, const SweepPoint& point, const RunOptions& options,
                          int runs_at_once) {
  RunRecord record{point, options.out / "runs" / point.dir_name(), {}};
  const auto created = create_directories_tracked(record.dir);
  std::optional<DirectoryLock> run_lock;
  lock_or_leave(run_lock, record.dir, created);
  try {
    record.summary = run_single(point_config, record.dir, options, record.point, runs_at_once);
  } catch (...) {
    if (!created.empty()) remove_failed_run(record.dir, /*remove_dir=*/true);
    throw;
  }
  return record;
}

std::vector<RunRecord> run_all(const ExperimentConfig& config, const RunOptions& options) {
  if (config.sweep.empty()) {
    RunRecord record = run_alone(config, options);
    if (options.log) *options.log << format_run_line(record, 1, 1) << std::endl;
    return {record};
  }
  if (options.resume) require_sweep_extends(options.out, config);
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
  auto worker = [&] {
    for (size_t i; (i = next++) < points.size();) {
      if (failed || (options.stop_requested && options.stop_requested->load())) return;
      try {
        RunRecord record = run_sweep_point(point_configs[i], points[i], options, static_cast<int>(workers));
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
  std::vector<RunRecord> records;
  for (auto& slot : slots)
    if (slot) records.push_back(std::move(*slot));
  write_sweep_csv(options.out / "sweep.csv", config, records);
  return records;
}

}  // namespace

std::vector<RunRecord> run_experiment(const ExperimentConfig& config, const RunOptions& options) {
  const fs::path& out = options.out;
  std::error_code ec;
  const bool existed = fs::exists(out, ec) && !options.out_is_new;
  if (options.resume && !existed && !options.start_if_missing)
    throw IoError(
        fmt::format("{}: no such directory to resume; check the path, or pass --resume-or-start to "
                    "start a new run there",
                    out.string()));
  if (options.resume && existed) require_ours(out);  // touching nothing otherwise
  std::vector<fs::path> created = create_directories_tracked(out);
  if (options.out_is_new) created.push_back(out);
  std::optional<DirectoryLock> lock;
  lock_or_leave(lock, out, created);  // before anything is written, to the end
  try {
    if (!options.force && !options.resume && !holds_nothing(out))
      throw IoError(
          fmt::format("{}: output directory exists and is not empty; choose another --out, "
                      "or pass --force to write into it",
                      out.string()));
    auto records = run_all(config, options);
    if (options.finish) options.finish(records);  // the report, while the directory is still ours
    return records;
  } catch (...) {
    // A failed run removed its own files; what this command created and holds no
    // finished run goes too, so no empty or half-written directory is left.
    if (!created.empty() && fs::exists(out, ec)) {
      bool finished_inside = false;
      for (auto it = fs::recursive_directory_iterator(out, ec); !ec && it != fs::recursive_directory_iterator(); ++it)
        finished_inside = finished_inside || it->path().filename() == "summary.json";
      if (!finished_inside) fs::remove_all(out, ec);
      remove_empty_directories(created);
    } else if (fs::exists(out, ec) && holds_nothing(out)) {
      lock->remove_file();  // the user's empty directory, as it was
    }
    throw;
  }
}

RunRecord run_point(const ExperimentConfig& config, size_t index, const RunOptions& options) {
  const fs::path& out = options.out;
  if (!fs::exists(out / "config.yaml"))
    throw IoError(fmt::format("{}: no config.yaml; a point runs in a sweep directory that `resgd submit` prepared",
                              out.string()));
  require_same_config(out, dump_yaml(config));
  RunOptions point_options = options;
  point_options.resume = true;  // a requeued or resubmitted task continues where it stopped
  if (config.sweep.empty()) {
    if (index != 0) throw ConfigError(fmt::format("--point {}: the experiment has no sweep, only point 0", index));
    const DirectoryLock lock(out);
    return run_alone(config, point_options);
  }
  const auto points = expand_sweep(config);
  if (index >= points.size())
    throw ConfigError(
        fmt::format("--point {}: the sweep has {} points, 0 to {}", index, points.size(), points.size() - 1));
  ExperimentConfig point_config = config_for_point(config, points[index]);  // its own data only: others may fail
  read_data_sizes(point_config);
  return run_sweep_point(point_config, points[index], point_options, /*runs_at_once=*/1);
}

std::vector<size_t> prepare_sweep_directory(const ExperimentConfig& config, const fs::path& out, bool resume,
                                            std::optional<DirectoryLock>& lock) {
  std::error_code ec;
  if (resume) {
    if (!fs::exists(out, ec))
      throw IoError(fmt::format("{}: no such directory to resume; check the path", out.string()));
    require_ours(out);
  }
  lock_or_leave(lock, out, create_directories_tracked(out));
  if (!resume && !holds_nothing(out))
    throw IoError(
        fmt::format("{}: output directory exists and is not empty; choose another --out, or pass "
                    "--resume to queue the points of its sweep that have not finished",
                    out.string()));
  if (resume) {
    if (config.sweep.empty())
      require_same_config(out, dump_yaml(config));
    else
      require_sweep_extends(out, config);
  }
  if (fs::exists(out / "config.yaml") && read_file(out / "config.yaml") != dump_yaml(config))
    fs::remove(out / "sweep.csv", ec);  // a grown sweep's table is written again when its points are done
  write_file_atomic(out / "config.yaml", dump_yaml(config));
  std::vector<size_t> unfinished;
  if (config.sweep.empty()) {
    if (finished_summary(out).is_null()) unfinished.push_back(0);
    return unfinished;
  }
  const auto points = expand_sweep(config);
  for (size_t i = 0; i < points.size(); ++i)
    if (finished_summary(out / "runs" / points[i].dir_name()).is_null()) unfinished.push_back(i);
  return unfinished;
}

bool complete_sweep_table(const fs::path& out) {
  const fs::path table = out / "sweep.csv";
  if (fs::exists(table)) return true;
  if (!fs::exists(out / "config.yaml")) return false;
  const ExperimentConfig config = load_config_file((out / "config.yaml").string());
  if (config.sweep.empty()) return false;
  std::vector<RunRecord> records;
  for (const auto& point : expand_sweep(config)) {
    RunRecord record{point, out / "runs" / point.dir_name(), finished_summary(out / "runs" / point.dir_name())};
    if (record.summary.is_null()) return false;
    records.push_back(std::move(record));
  }
  write_sweep_csv(table, config, records);
  return true;
}

}  // namespace resgd
