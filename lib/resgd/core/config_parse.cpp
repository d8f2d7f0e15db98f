// Parsing: experiment files and YAML values read into an ExperimentConfig, each value type-checked where it stands.
#include "resgd/core/config.h"

#include "resgd/core/config_fields.h"
#include "resgd/core/config_internal.h"
#include "resgd/core/files.h"

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace resgd {

using namespace config_detail;

namespace {

Origin origin_of(const YAML::Node& node, const std::string& file) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return Origin{file, 0, 0};
  return Origin{file, mark.line + 1, mark.column + 1};
}

// ---------------------------------------------------------------------------------------
// Scalar parsing: one overload per field type. Each rejects anything but its own type.
std::string describe(const YAML::Node& node) {
  if (node.IsNull()) return "null";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a map";
  return "'" + node.Scalar() + "'";
}

void parse(const YAML::Node& node, std::string& out, const std::string& key, const Origin& at) {
  if (!node.IsScalar()) fail(at, fmt::format("{}: expected a string, got {}", key, describe(node)));
  out = node.Scalar();
  try {  // dump_yaml writes strings as JSON, which takes UTF-8 only (found by fuzz/config_fuzz)
    (void)nlohmann::json(out).dump();
  } catch (const nlohmann::json::exception&) {
    fail(at, fmt::format("{}: not valid UTF-8 text", key));
  }
}

void parse(const YAML::Node& node, int64_t& out, const std::string& key, const Origin& at) {
  try {
    if (node.IsScalar()) {
      out = node.as<int64_t>();
      return;
    }
  } catch (const YAML::Exception&) {
  }
  fail(at, fmt::format("{}: expected an integer, got {}", key, describe(node)));
}

void parse(const YAML::Node& node, double& out, const std::string& key, const Origin& at) {
  bool ok = false;
  try {
    if (node.IsScalar()) out = node.as<double>(), ok = true;
  } catch (const YAML::Exception&) {
  }
  if (!ok) fail(at, fmt::format("{}: expected a number, got {}", key, describe(node)));
  if (!std::isfinite(out)) fail(at, fmt::format("{}: must be a finite number, got {}", key, describe(node)));
}

void parse(const YAML::Node& node, bool& out, const std::string& key, const Origin& at) {
  try {
    if (node.IsScalar()) {
      out = node.as<bool>();
      return;
    }
  } catch (const YAML::Exception&) {
  }
  fail(at, fmt::format("{}: expected true or false, got {}", key, describe(node)));
}

void parse(const YAML::Node& node, Gain& out, const std::string& key, const Origin& at) {
  bool as_bool = false;
  try {
    if (node.IsScalar()) {
      as_bool = node.as<bool>();
      out.value = as_bool ? 1.0 : 0.0;
      return;
    }
  } catch (const YAML::Exception&) {
  }
  try {
    parse(node, out.value, key, at);
  } catch (const ConfigError&) {
    fail(at, fmt::format("{}: expected true, false or a number, got {}", key, describe(node)));
  }
}

template <class E, class = decltype(EnumNames<E>::names)>
void parse(const YAML::Node& node, E& out, const std::string& key, const Origin& at) {
  std::string name;
  parse(node, name, key, at);
  const auto value = parse_enum<E>(name);
  if (!value) {
    std::vector<std::string> names(std::begin(EnumNames<E>::names), std::end(EnumNames<E>::names));
    fail(at, fmt::format("{}: unknown value '{}'; expected one of: {}", key, name, join(names, ", ")));
  }
  out = *value;
}

template <class T>
void parse(const YAML::Node& node, std::optional<T>& out, const std::string& key, const Origin& at) {
  if (node.IsNull()) {
    out.reset();
    return;
  }
  T value{};
  parse(node, value, key, at);
  out = value;
}

}  // namespace

/// Sets the field at `path` from `node`. Returns false if there is no such field.
bool config_detail::set_field(ExperimentConfig& config, const std::string& path, const YAML::Node& node,
                              const Origin& at) {
  bool found = false;
  visit_fields(config, [&](const char* key, auto& field, const char*) {
    if (found || path != key) return;
    parse(node, field, path, at);
    found = true;
  });
  if (found) config.origins[path] = at;
  return found;
}

// ---------------------------------------------------------------------------------------
// Loading.

namespace {

/// One swept key's values, each type-checked where it stands (ranges are checked per point).
SweepAxis read_axis(const ExperimentConfig& config, const std::string& key, const YAML::Node& values,
                    const Origin& key_at, const std::string& file, bool zipped) {
  // compute.backend sets up the process once, before any run: not per point.
  auto sweepable_key = [](const std::string& k) { return k != "name" && k != "seed" && k != "compute.backend"; };
  if (!is_field(key) || !sweepable_key(key)) {
    std::vector<std::string> sweepable = {"seeds", "zip"};
    for (const auto& k : all_keys())
      if (sweepable_key(k)) sweepable.push_back(k);
    const char* why = key == "seed"              ? " (use 'seeds' to repeat runs)"
                      : key == "compute.backend" ? " (it sets up the process: compare the backends with two runs)"
                      : key.rfind("zip.", 0) == 0
                          ? " (zipped lists are set together: --set sweep.zip={KEY: [...], KEY: [...]})"
                          : "";
    fail(key_at, fmt::format("sweep: '{}' is not a key that can be swept{}; sweepable keys: {}", key, why,
                             join(sweepable, ", ")));
  }
  if (!values.IsSequence() || values.size() == 0)
    fail(origin_of(values, file),
         fmt::format("sweep.{}{}: expected a non-empty list, got {}", zipped ? "zip." : "", key, describe(values)));
  SweepAxis axis{key, {}, {}, zipped};
  for (const auto& value : values) {
    const Origin at = origin_of(value, file);
    ExperimentConfig probe = config;
    set_field(probe, key, value, at);
    // A quoted scalar ('[x', "true") stays quoted, so config_for_point reads back the same string.
    axis.values.push_back(value.IsNull()       ? "null"
                          : value.Tag() == "!" ? quote_if_needed(value.Scalar())
                                               : value.Scalar());
    axis.origins.push_back(at);
  }
  return axis;
}

/// Adds an axis, or replaces an earlier axis of the same key where it stands (a --set over
/// the file's keeps the file's order of axes, and so its run directories' names).
void put_axis(SweepConfig& sweep, SweepAxis axis) {
  const auto same =
      std::find_if(sweep.axes.begin(), sweep.axes.end(), [&](const SweepAxis& a) { return a.key == axis.key; });
  if (same != sweep.axes.end())
    *same = std::move(axis);
  else
    sweep.axes.push_back(std::move(axis));
}

/// sweep.zip: keys whose lists are read in step (the i-th values form one point), e.g. a
/// depth with the step size that suits it. It replaces any earlier zip as a whole; an empty
/// one (--set sweep.zip={}) drops it.
void load_zip(ExperimentConfig& config, const YAML::Node& node, std::set<std::string>& seen, const std::string& file) {
  if (!node.IsMap())
    fail(origin_of(node, file), fmt::format("sweep.zip: expected a map of dotted keys to lists of one length, "
                                            "moved together, got {}",
                                            describe(node)));
  std::vector<SweepAxis> zip;
  std::string first;
  size_t length = 0;
  for (const auto& item : node) {
    const Origin key_at = origin_of(item.first, file);
    const std::string key = item.first.Scalar();
    if (key == "seeds" || key == "zip")
      fail(key_at, fmt::format("sweep.zip: '{}' cannot be zipped; it belongs directly under sweep", key));
    if (!seen.insert(key).second) fail(key_at, fmt::format("duplicate key 'sweep.{}' (in and beside sweep.zip)", key));
    SweepAxis axis = read_axis(config, key, item.second, key_at, file, /*zipped=*/true);
    if (first.empty()) {
      first = key;
      length = axis.values.size();
    } else if (axis.values.size() != length) {
      fail(origin_of(item.second, file),
           fmt::format("sweep.zip.{}: {} value{}, but sweep.zip.{} has {}; zipped lists are read in step, so they "
                       "must be of one length",
                       key, axis.values.size(), axis.values.size() == 1 ? "" : "s", first, length));
    }
    zip.push_back(std::move(axis));
  }
  // The zip takes the place of the one it replaces (--set sweep.zip=...), and of any axis
  // of its keys, so that the file's order of axes, and its directories' names, stay.
  auto& axes = config.sweep.axes;
  auto replaced = [&](const SweepAxis& a) {
    return a.zipped || std::any_of(zip.begin(), zip.end(), [&](const SweepAxis& z) { return z.key == a.key; });
  };
  const auto place = std::find_if(axes.begin(), axes.end(), replaced) - axes.begin();  // none removed before it
  axes.erase(std::remove_if(axes.begin(), axes.end(), replaced), axes.end());
  axes.insert(axes.begin() + place, std::make_move_iterator(zip.begin()), std::make_move_iterator(zip.end()));
}

}  // namespace

void config_detail::load_sweep(ExperimentConfig& config, const YAML::Node& node, const std::string& file) {
  if (!node.IsMap()) fail(origin_of(node, file), "sweep: expected a map of dotted keys to lists of values");
  std::set<std::string> seen;
  for (const auto& item : node) {
    const Origin key_at = origin_of(item.first, file);
    const std::string key = item.first.Scalar();
    if (key == "zip") {
      load_zip(config, item.second, seen, file);
      continue;
    }
    if (!seen.insert(key).second) fail(key_at, fmt::format("duplicate key 'sweep.{}'", key));
    const YAML::Node& values = item.second;
    for (const auto& axis : config.sweep.axes)  // a --set over a file whose zip holds the key
      if (axis.key == key && axis.zipped && values.IsSequence() && values.size() > 0)
        fail(key_at, fmt::format("sweep.{}: is zipped in sweep.zip ({}), and a list of its own would drop the "
                                 "pairing; set the zip as a whole, e.g. --set 'sweep.zip={}'",
                                 key, axis.origins.front().str(),
                                 zip_with(config.sweep, key, values[0].IsScalar() ? values[0].Scalar() : "...")));
    if (key == "seeds") {
      if (!values.IsSequence() || values.size() == 0)
        fail(origin_of(values, file), fmt::format("sweep.seeds: expected a non-empty list, got {}", describe(values)));
      config.sweep.seeds.clear();
      for (const auto& value : values) {
        int64_t seed = 0;
        parse(value, seed, "sweep.seeds", origin_of(value, file));
        if (seed < 0) fail(origin_of(value, file), "sweep.seeds: seeds must be >= 0");
        if (std::count(config.sweep.seeds.begin(), config.sweep.seeds.end(), seed))
          fail(origin_of(value, file), fmt::format("sweep.seeds: seed {} is listed twice; each run needs a directory "
                                                   "of its own",
                                                   seed));
        config.sweep.seeds.push_back(seed);
      }
      continue;
    }
    put_axis(config.sweep, read_axis(config, key, values, key_at, file, /*zipped=*/false));
  }
}

namespace {

/// The `claims:` section: `expect:` kept item by item as YAML text (claims.cpp reads it),
/// `quick:` as key=value assignments, `figure:` a plot's name.
void load_claims(ExperimentConfig& config, const YAML::Node& node, const std::string& file) {
  if (!node.IsMap())
    fail(origin_of(node, file),
         fmt::format("claims: expected a map with keys expect, quick, figure, got {}", describe(node)));
  for (const auto& item : node) {
    const Origin key_at = origin_of(item.first, file);
    const std::string name = item.first.IsScalar() ? item.first.Scalar() : "";
    const YAML::Node& value = item.second;
    if (name == "expect") {
      if (!value.IsSequence())
        fail(origin_of(value, file), fmt::format("claims.expect: expected a list of claims, got {}", describe(value)));
      for (const auto& entry : value) {
        YAML::Emitter out;
        out << YAML::Flow << entry;
        config.claims.expect.push_back({out.c_str(), origin_of(entry, file)});
      }
    } else if (name == "quick") {
      if (!value.IsMap())
        fail(origin_of(value, file),
             fmt::format("claims.quick: expected a map of keys to values, got {}", describe(value)));
      config.claims.quick.clear();
      config.claims.quick_at = origin_of(value, file).str();
      for (const auto& setting : value) {
        YAML::Emitter out;
        out << YAML::Flow << setting.second;
        config.claims.quick.push_back(setting.first.Scalar() + "=" + out.c_str());
      }
    } else if (name == "figure") {
      parse(value, config.claims.figure, "claims.figure", origin_of(value, file));
    } else {
      fail(key_at, fmt::format("claims: unknown key '{}'; known keys: expect, quick, figure", name));
    }
  }
}

/// Loads one map of the file. `keys_at` holds every key the file has set so far, by its
/// full dotted path, with where: a key may be spelled nested (`model: {residual: {ffn:
/// ..}}`) or dotted (`model.residual.ffn: ..`), and either spelling twice is a duplicate.
void load_map(ExperimentConfig& config, const YAML::Node& map, const std::string& section, const std::string& file,
              std::map<std::string, Origin>& keys_at) {
  std::set<std::string> seen;  // this map's own names: one twice is a duplicate, section or key
  for (const auto& item : map) {
    const Origin key_at = origin_of(item.first, file);
    if (!item.first.IsScalar()) fail(key_at, "keys must be plain names");
    const std::string name = item.first.Scalar();
    const std::string path = section.empty() ? name : section + "." + name;
    if (!seen.insert(name).second) fail(key_at, fmt::format("duplicate key '{}'", path));
    if (is_field(path)) {
      const auto [first, fresh] = keys_at.emplace(path, key_at);
      if (!fresh) fail(key_at, fmt::format("duplicate key '{}' (also set at {})", path, first->second.str()));
    }
    if (path == "sweep") {
      load_sweep(config, item.second, file);
    } else if (path == "claims") {
      load_claims(config, item.second, file);
    } else if (is_field(path)) {
      set_field(config, path, item.second, origin_of(item.second, file));
    } else if (is_section(path)) {
      if (!item.second.IsMap())
        fail(origin_of(item.second, file), fmt::format("'{}' is a section: expected a map with keys {}, got {}", path,
                                                       join(children_of(path), ", "), describe(item.second)));
      load_map(config, item.second, path, file, keys_at);
    } else {
      fail_unknown(key_at, section, name);
    }
  }
}

/// Where a second YAML document starts, if there is one. Parses at most two documents:
/// yaml-cpp 0.7's LoadAll can loop forever on garbage (found by fuzz/config_fuzz).
std::optional<YAML::Mark> second_document(const std::string& yaml_text) {
  struct DocumentStarts : YAML::EventHandler {
    std::vector<YAML::Mark> starts;
    void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  } handler;
  std::istringstream in(yaml_text);
  YAML::Parser parser(in);
  if (!parser.HandleNextDocument(handler) || !parser.HandleNextDocument(handler) || handler.starts.size() < 2)
    return std::nullopt;
  return handler.starts[1];
}

/// A data.path written in an experiment file is relative to that file's folder: made
/// absolute here, so that the run reads the same file from any working directory. A path
/// given by --set, or absolute, stays as it is (--set is relative to the working directory).
void resolve_data_path(ExperimentConfig& config) {
  const auto origin = config.origins.find("data.path");
  if (!config.data.path || config.data.path->empty() || origin == config.origins.end() || origin->second.line == 0)
    return;
  const std::filesystem::path path = *config.data.path, file = origin->second.file;
  std::error_code ec;
  if (path.is_absolute() || !std::filesystem::is_regular_file(file, ec)) return;  // not from a file on disk
  config.data.path = std::filesystem::absolute(file.parent_path() / path, ec).lexically_normal().string();
}

}  // namespace

ExperimentConfig load_config_text(const std::string& yaml_text, const std::string& source) {
  // yaml-cpp stops reading at a NUL byte, which would silently drop the rest of the file.
  if (const size_t nul = yaml_text.find('\0'); nul != std::string::npos) {
    const size_t line_start = yaml_text.rfind('\n', nul);
    const auto line =
        static_cast<int>(std::count(yaml_text.begin(), yaml_text.begin() + static_cast<std::ptrdiff_t>(nul), '\n'));
    fail(Origin{source, line + 1, static_cast<int>(line_start == std::string::npos ? nul + 1 : nul - line_start)},
         "not a text file (NUL byte); an experiment file is YAML text");
  }
  YAML::Node root;
  std::optional<YAML::Mark> second;
  try {
    root = YAML::Load(yaml_text);
    second = second_document(yaml_text);
  } catch (const YAML::DeepRecursion& e) {  // yaml-cpp's guard against a stack overflow
    fail(Origin{source, e.mark.line + 1, e.mark.column + 1},
         "YAML nesting too deep for the parser; an experiment file nests at most 4 levels");
  } catch (const YAML::ParserException& e) {
    fail(Origin{source, e.mark.line + 1, e.mark.column + 1}, "YAML syntax error: " + e.msg);
  }
  if (second)
    fail(Origin{source, second->line + 1, second->column + 1},
         "a second YAML document ('---'); an experiment file holds one");
  ExperimentConfig config;
  if (root.IsNull()) return config;  // an empty file means all defaults
  if (!root.IsMap())
    fail(origin_of(root, source), fmt::format("an experiment file must be a map of sections (known keys: {}), got {}",
                                              join(children_of(""), ", "), describe(root)));
  std::map<std::string, Origin> keys_at;
  load_map(config, root, "", source, keys_at);
  fill_kind_defaults(config);
  validate(config);
  return config;
}

ExperimentConfig load_config_file(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);  // a regular file only: a FIFO would block the read forever
  } catch (const IoError& e) {
    throw ConfigError(fmt::format("{}; an experiment file is a YAML text file", e.what()));
  }
  ExperimentConfig config = load_config_text(text, path);
  resolve_data_path(config);
  for (auto& axis : config.sweep.axes) {  // swept data files too, relative to this file
    if (axis.key != "data.path") continue;
    for (size_t i = 0; i < axis.values.size(); ++i) {
      const YAML::Node value = YAML::Load(axis.values[i]);
      if (!value.IsScalar()) continue;  // null: no file
      ExperimentConfig point;
      point.data.path = value.Scalar();
      point.origins["data.path"] = axis.origins[i];
      resolve_data_path(point);
      axis.values[i] = quote_if_needed(*point.data.path);
    }
  }
  return config;
}

}  // namespace resgd
