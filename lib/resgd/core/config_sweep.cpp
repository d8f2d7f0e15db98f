// The sweep: its grid, the run directories' names, its points and the configuration of each.
#include "resgd/core/config.h"

#include "resgd/core/config_internal.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace resgd {

using namespace config_detail;

SweepShape config_detail::sweep_shape(const SweepConfig& sweep) {
  SweepShape shape;
  std::optional<size_t> zip_dimension;
  for (const auto& axis : sweep.axes) {
    if (axis.zipped && zip_dimension) {
      shape.dimension_of.push_back(*zip_dimension);
      continue;
    }
    if (axis.zipped) zip_dimension = shape.extents.size();
    shape.dimension_of.push_back(shape.extents.size());
    shape.extents.push_back(axis.values.size());
  }
  for (size_t a = 0; a < sweep.axes.size(); ++a)  // load_zip refuses this in files and --set
    if (sweep.axes[a].values.size() != shape.extents[shape.dimension_of[a]])
      throw std::logic_error("sweep_shape: zipped lists of different lengths (sweep.zip." + sweep.axes[a].key + ")");
  return shape;
}

namespace {

/// A swept key or value as part of a run directory's name: characters other than letters,
/// digits and "._-" become '_'.
std::string directory_safe(std::string text) {
  for (char& ch : text)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && !std::strchr("._-", ch)) ch = '_';
  return text;
}

/// How a swept value names a run's directory: directory_safe of its text, but a data file
/// by its name alone (its folder is made absolute on loading).
std::string directory_value(const std::string& key, const std::string& value) {
  if (key != "data.path") return directory_safe(value);
  const std::string unquoted = value.size() >= 2 && value.front() == '"' ? value.substr(1, value.size() - 2) : value;
  return directory_safe(std::filesystem::path(unquoted).filename().string());
}

}  // namespace

/// Two points of a sweep with one directory name would train into one run directory. A
/// point's name joins key=value parts with ',', and directory_safe leaves neither ',' nor '='
/// in a part, so two points share a name exactly when they agree on every dimension of the
/// grid (after directory_safe): a Cartesian axis must list each value once, a zip each
/// tuple once.
void config_detail::require_distinct_run_directories(const SweepConfig& sweep) {
  const SweepShape shape = sweep_shape(sweep);
  for (size_t d = 0; d < shape.extents.size(); ++d) {
    std::vector<const SweepAxis*> axes;  // one Cartesian axis, or every zipped one
    for (size_t a = 0; a < sweep.axes.size(); ++a)
      if (shape.dimension_of[a] == d) axes.push_back(&sweep.axes[a]);
    std::map<std::string, size_t> first_of;  // the entry's directory names, joined by ',' -> first index
    for (size_t j = 0; j < shape.extents[d]; ++j) {
      std::string name;
      for (const SweepAxis* axis : axes) name += directory_value(axis->key, axis->values[j]) + ",";
      const auto [it, fresh] = first_of.emplace(name, j);
      if (fresh) continue;
      const SweepAxis& first = *axes.front();
      if (!first.zipped) {
        const std::string& a = first.values[it->second];
        const std::string& b = first.values[j];
        fail(first.origins[j],
             fmt::format("sweep.{}: {}; each run needs a directory of its own", first.key,
                         a == b ? fmt::format("{} is listed twice", a)
                                : fmt::format("{} and {} give one directory name (characters other than letters, "
                                              "digits and '._-' become '_')",
                                              a, b)));
      }
      std::string pairs;
      for (const SweepAxis* axis : axes) pairs += (pairs.empty() ? "" : ", ") + axis->key + "=" + axis->values[j];
      fail(first.origins[j], fmt::format("sweep.zip: entries {} and {} ({}) are one point; each run needs a "
                                         "directory of its own",
                                         it->second + 1, j + 1, pairs));
    }
  }
}

std::string SweepPoint::dir_name() const {
  std::vector<std::string> parts;
  for (const auto& [key, value] : values) parts.push_back(directory_safe(key) + "=" + directory_value(key, value));
  const std::string seed_dir = fmt::format("seed={}", seed);
  return parts.empty() ? seed_dir : join(parts, ",") + "/" + seed_dir;
}

std::vector<SweepPoint> expand_sweep(const ExperimentConfig& config) {
  const auto& axes = config.sweep.axes;
  const auto [dimension_of, extents] = sweep_shape(config.sweep);
  // Every index tuple, the first dimension slowest.
  std::vector<std::vector<size_t>> tuples(1);
  for (size_t extent : extents) {
    std::vector<std::vector<size_t>> next;
    for (const auto& tuple : tuples)
      for (size_t i = 0; i < extent; ++i) {
        next.push_back(tuple);
        next.back().push_back(i);
      }
    tuples = std::move(next);
  }
  std::vector<SweepPoint> points;
  for (const auto& tuple : tuples) {
    SweepPoint p;
    for (size_t a = 0; a < axes.size(); ++a) p.values.emplace_back(axes[a].key, axes[a].values[tuple[dimension_of[a]]]);
    points.push_back(std::move(p));
  }
  const std::vector<int64_t> seeds =
      config.sweep.seeds.empty() ? std::vector<int64_t>{config.seed} : config.sweep.seeds;
  std::vector<SweepPoint> out;
  for (const auto& point : points)
    for (int64_t seed : seeds) {
      SweepPoint p = point;
      p.seed = seed;
      out.push_back(std::move(p));
    }
  return out;
}

Origin sweep_value_origin(const SweepConfig& sweep, const std::string& key, const std::string& value) {
  Origin at{"sweep"};
  for (const auto& axis : sweep.axes)
    for (size_t i = 0; i < axis.values.size(); ++i)
      if (axis.key == key && axis.values[i] == value) at = axis.origins[i];
  return at;
}

ExperimentConfig config_for_point(const ExperimentConfig& base, const SweepPoint& point) {
  ExperimentConfig config = base;
  config.sweep = SweepConfig{};
  for (const auto& [key, value] : point.values) {
    const Origin at = sweep_value_origin(base.sweep, key, value);
    YAML::Node node;
    try {
      node = YAML::Load(value);
    } catch (const YAML::Exception& e) {
      fail(at, fmt::format("sweep.{}: cannot read back the value '{}': {}", key, value, e.msg));
    }
    set_field(config, key, node, at);
  }
  config.seed = point.seed;
  fill_kind_defaults(config);
  validate(config);
  return config;
}

std::vector<ExperimentConfig> resolve_sweep(const ExperimentConfig& config,
                                            const std::function<void(ExperimentConfig&)>& complete) {
  std::vector<ExperimentConfig> out;
  const auto points = expand_sweep(config);
  std::map<std::string, size_t> first_of;  // a point's resolved configuration -> its index
  for (size_t i = 0; i < points.size(); ++i) {
    out.push_back(config_for_point(config, points[i]));
    if (complete) complete(out.back());
    const auto [it, fresh] = first_of.emplace(dump_yaml(out.back()), i);
    if (fresh) continue;
    // Values spelled apart that read the same (0.1 and 1e-1, true and 1.0): the sweep
    // would train one configuration twice and call the copies two settings.
    const SweepPoint& first = points[it->second];
    for (size_t k = 0; k < points[i].values.size(); ++k) {
      const auto& [key, value] = points[i].values[k];
      if (value == first.values[k].second) continue;
      throw ConfigError(
          fmt::format("{}: sweep.{}: {} gives the same configuration as {} (run {} and run {}); "
                      "each setting would train the same runs",
                      sweep_value_origin(config.sweep, key, value).str(), key, value, first.values[k].second,
                      first.dir_name(), points[i].dir_name()));
    }
    throw ConfigError(fmt::format("sweep: runs {} and {} have the same configuration", first.dir_name(),
                                  points[i].dir_name()));  // not reached: equal texts are refused on loading
  }
  return out;
}

}  // namespace resgd
