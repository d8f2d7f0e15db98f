// Runs read back from disk (collection.h).
#include "resgd/report/collection.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "resgd/core/files.h"

namespace resgd {
namespace fs = std::filesystem;
namespace {

nlohmann::json read_json(const fs::path& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw IoError(fmt::format("{}: not valid JSON: {}", path.string(), e.what()));
  }
}

/// A finished run directory: its config.yaml and summary.json.
FoundRun read_run(const fs::path& dir) {
  FoundRun run;
  run.dir = fs::absolute(dir).lexically_normal();
  run.config = load_config_file((dir / "config.yaml").string());
  run.summary = read_json(dir / "summary.json");
  if (!run.summary.is_object())
    throw IoError(fmt::format("{}: not a summary of a run", (dir / "summary.json").string()));
  return run;
}

/// Fills each run's values from `keys`. A residual gain is written true or false where it
/// is 1 or 0 (on or off); among other numbers (0.5, 1, 2) it is written as the number.
void fill_values(RunCollection& c) {
  for (auto& run : c.runs) {
    run.values.clear();
    for (const auto& key : c.keys) run.values.push_back(value_text(run.config, key));
  }
  auto on_off = [](const std::string& v) { return v == "true" || v == "false"; };
  for (size_t k = 0; k < c.keys.size(); ++k) {
    if (std::none_of(c.runs.begin(), c.runs.end(),
                     [&](const FoundRun& r) { return !on_off(r.values[k]) && parse_number(r.values[k]); }))
      continue;
    for (auto& run : c.runs)
      if (on_off(run.values[k])) run.values[k] = run.values[k] == "true" ? "1" : "0";
  }
}

/// A run or sweep directory (not a folder of them).
RunCollection collect_one(const fs::path& dir) {
  RunCollection c;
  const ExperimentConfig config = load_config_file((dir / "config.yaml").string());
  c.name = config.name;
  if (config.sweep.empty()) {
    if (!fs::exists(dir / "summary.json"))
      throw IoError(fmt::format("{}: the run has not finished (no summary.json); `resgd run --resume` finishes it",
                                dir.string()));
    c.runs.push_back(read_run(dir));
    return c;
  }
  for (const auto& axis : config.sweep.axes) {
    c.keys.push_back(axis.key);
    c.zipped.push_back(axis.zipped);
  }
  for (const auto& point : expand_sweep(config)) {
    const fs::path run_dir = dir / "runs" / point.dir_name();
    if (!fs::exists(run_dir / "summary.json")) {
      c.notes.push_back({fs::absolute(run_dir).lexically_normal(), "not finished (no summary.json)"});
      continue;
    }
    c.runs.push_back(read_run(run_dir));
  }
  fill_values(c);
  return c;
}

/// The runs of `parts` as one collection. Each key none of them sweeps must have one value
/// over all runs (`strict`: else ConfigError), or becomes a key of the collection.
RunCollection merge(const std::vector<std::pair<fs::path, RunCollection>>& parts, bool strict) {
  RunCollection merged;
  for (const auto& [dir, part] : parts) {
    if (merged.name.empty()) merged.name = part.name;
    for (size_t k = 0; k < part.keys.size(); ++k) {
      const auto at = std::find(merged.keys.begin(), merged.keys.end(), part.keys[k]);
      if (at == merged.keys.end()) {
        merged.keys.push_back(part.keys[k]);
        merged.zipped.push_back(part.zipped[k]);
      } else {  // zipped only where every directory that sweeps it zips it
        const auto i = static_cast<size_t>(at - merged.keys.begin());
        merged.zipped[i] = merged.zipped[i] && part.zipped[k];
      }
    }
    merged.notes.insert(merged.notes.end(), part.notes.begin(), part.notes.end());
  }
  // Every other key: one value over all runs, or (not strict) a key the runs differ in.
  for (const auto& key : known_keys()) {
    if (key == "seed" || is_bookkeeping_key(key) ||
        std::find(merged.keys.begin(), merged.keys.end(), key) != merged.keys.end())
      continue;
    std::optional<std::pair<fs::path, std::string>> first;
    for (const auto& [dir, part] : parts)
      for (const auto& run : part.runs) {
        const std::string value = value_text(run.config, key);
        if (!first) first.emplace(dir, value);
        if (value == first->second) continue;
        if (strict)
          throw ConfigError(fmt::format(
              "{} and {} differ in {} ({} and {}), which neither sweeps: only runs of one experiment that differ in "
              "swept keys can be merged (resgd report on a folder holding both puts any runs side by side)",
              first->first.string(), dir.string(), key, first->second, value));
        if (std::find(merged.keys.begin(), merged.keys.end(), key) == merged.keys.end()) {
          merged.keys.push_back(key);
          merged.zipped.push_back(false);
        }
      }
  }
  // A run found twice (the grids share a value) counts once.
  std::vector<std::pair<std::vector<std::string>, int64_t>> seen;
  for (const auto& [dir, part] : parts)
    for (const auto& run : part.runs) {
      std::vector<std::string> values;
      for (const auto& key : merged.keys) values.push_back(value_text(run.config, key));
      const std::pair identity{values, run.config.seed};
      if (std::find(seen.begin(), seen.end(), identity) != seen.end()) {
        merged.notes.push_back({run.dir, "the same settings and seed as a run before it; counted once"});
        continue;
      }
      seen.push_back(identity);
      merged.runs.push_back(run);
    }
  fill_values(merged);
  return merged;
}

bool is_run_or_sweep(const fs::path& dir) { return fs::exists(dir / "config.yaml"); }

}  // namespace

bool is_bookkeeping_key(const std::string& key) {
  return key == "name" || key == "device" || key == "compute.backend" || key == "train.checkpoint_every";
}

std::vector<fs::path> compared_directories(const fs::path& dir) {
  const fs::path record = dir / kCompareRecord;
  if (fs::exists(dir / "config.yaml") || !fs::exists(record)) return {};
  const auto json = nlohmann::json::parse(read_file(record), nullptr, /*allow_exceptions=*/false);
  std::vector<fs::path> dirs;
  if (!json.is_discarded() && json.contains("compared") && json["compared"].is_array())
    for (const auto& entry : json["compared"])
      if (entry.is_string()) dirs.emplace_back(entry.get<std::string>());
  if (dirs.empty()) throw IoError(fmt::format("{}: names no compared directory", record.string()));
  return dirs;
}

RunCollection collect_runs(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw IoError(fmt::format("{}: not a directory", dir.string()));
  if (const auto compared = compared_directories(dir); !compared.empty()) return merge_collections(compared);
  if (is_run_or_sweep(dir)) {
    RunCollection c = collect_one(dir);
    if (c.runs.empty()) throw IoError(fmt::format("{}: no finished run under runs/", dir.string()));
    return c;
  }
  // A folder of run and sweep directories, in name order.
  std::vector<fs::path> subdirs;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_directory()) subdirs.push_back(entry.path());
  std::sort(subdirs.begin(), subdirs.end());
  std::vector<std::pair<fs::path, RunCollection>> parts;
  std::vector<RunCollection::Note> unread;
  for (const auto& sub : subdirs) {
    const std::string name = sub.filename().string();
    if (name == "plots" || name.front() == '.') continue;  // the report's own, hidden ones
    if (!is_run_or_sweep(sub)) {
      unread.push_back({fs::absolute(sub).lexically_normal(), "not a run or sweep directory (no config.yaml)"});
      continue;
    }
    try {
      parts.emplace_back(fs::path(name), collect_one(sub));
    } catch (const std::exception& e) {  // IoError, ConfigError: named, and the rest reported
      unread.push_back({fs::absolute(sub).lexically_normal(), fmt::format("cannot be read: {}", e.what())});
    }
  }
  RunCollection c = merge(parts, /*strict=*/false);
  c.notes.insert(c.notes.begin(), unread.begin(), unread.end());
  if (c.runs.empty()) {
    std::string found;
    for (const auto& note : c.notes) found += fmt::format("; {}: {}", note.path.filename().string(), note.why);
    throw IoError(
        fmt::format("{}: neither a run or sweep directory of `resgd run` (no config.yaml) nor a folder "
                    "holding finished ones{}",
                    dir.string(), found));
  }
  return c;
}

RunCollection merge_collections(const std::vector<fs::path>& given) {
  std::vector<fs::path> dirs;  // a comparison stands for the directories it compared
  for (const auto& dir : given) {
    const auto compared = compared_directories(dir);
    for (const auto& one : compared.empty() ? std::vector<fs::path>{dir} : compared)
      if (std::find(dirs.begin(), dirs.end(), one) == dirs.end()) dirs.push_back(one);
  }
  std::vector<std::pair<fs::path, RunCollection>> parts;
  for (const auto& dir : dirs) {
    if (!is_run_or_sweep(dir))
      throw IoError(fmt::format("{}: not a run or sweep directory of `resgd run` (no config.yaml)", dir.string()));
    parts.emplace_back(dir, collect_one(dir));
  }
  RunCollection c = merge(parts, /*strict=*/true);
  if (c.runs.empty()) throw IoError("compare: no finished run in any of the directories");
  return c;
}

/// A value as a number: a gain written true or false is 1 or 0.
std::optional<double> parse_number(const std::string& text) {
  if (text == "true" || text == "false") return text == "true" ? 1.0 : 0.0;
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

}  // namespace resgd
