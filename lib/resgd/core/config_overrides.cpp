// Overrides: `--set key=value` assignments applied to a loaded configuration, checked as the file is.
#include "resgd/core/config.h"

#include "resgd/core/config_internal.h"

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace resgd {

using namespace config_detail;

/// The sweep's zip as a --set value, `key`'s list replaced by `value` at every point: the
/// other zipped lists keep their pairing.
std::string config_detail::zip_with(const SweepConfig& sweep, const std::string& key, const std::string& value) {
  std::vector<std::string> entries;
  for (const auto& axis : sweep.axes) {
    if (!axis.zipped) continue;
    const std::vector<std::string> values =
        axis.key == key ? std::vector<std::string>(axis.values.size(), value) : axis.values;
    entries.push_back(fmt::format("{}: [{}]", axis.key, join(values, ", ")));
  }
  return "{" + join(entries, ", ") + "}";
}

namespace {

/// One key=value, with its type and key checks; the ranges and choices are left to
/// validate, so that the value may depend on overrides that follow it.
void set_from_assignment(ExperimentConfig& config, const std::string& assignment) {
  const Origin at{"--set " + assignment};
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) fail(at, "expected key=value, e.g. --set model.residual.attention=false");
  const std::string key = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::DeepRecursion&) {
    fail(at, "cannot parse the value as YAML: nesting too deep for the parser");
  } catch (const YAML::Exception& e) {
    fail(at, "cannot parse the value as YAML: " + e.msg);
  }
  if (key == "sweep") {
    // Dropping the file's sweep runs one point of it (with --set on the swept keys); axes
    // are set one by one, so a whole sweep here would be a second syntax for them.
    if (!value.IsNull() && !(value.IsMap() && value.size() == 0))
      fail(at,
           "only sweep={} (or sweep=null) is accepted whole: it drops the file's sweep; set an axis with "
           "--set sweep.KEY=[...], e.g. --set sweep.train.lr=[0.1,0.01]");
    config.sweep = SweepConfig{};
  } else if (key.rfind("sweep.", 0) == 0) {
    YAML::Node sweep;
    sweep[key.substr(6)] = value;
    load_sweep(config, sweep, at.file);
  } else if (is_section(key)) {
    fail(at, fmt::format("'{}' is a section, not a key: set one of its keys ({}), e.g. --set {}.{}=...", key,
                         join(children_of(key), ", "), key, children_of(key).front()));
  } else if (!set_field(config, key, value, at)) {
    const auto dot = key.rfind('.');
    const std::string section = dot == std::string::npos ? "" : key.substr(0, dot);
    if (!section.empty() && !is_section(section))
      fail(at, fmt::format("unknown section '{}'; known keys: {}", section, join(children_of(""), ", ")));
    fail_unknown(at, section, dot == std::string::npos ? key : key.substr(dot + 1));
  }
}

}  // namespace

void apply_overrides(ExperimentConfig& config, const std::vector<std::string>& assignments) {
  // A key set twice to different values, or set beside a sweep that sets it for every
  // run, would leave one of the values unused without a word: both are refused.
  std::map<std::string, std::pair<std::string, std::string>> set_to;  // key -> (value, assignment)
  for (const auto& assignment : assignments) {
    set_from_assignment(config, assignment);
    const std::string key = assignment.substr(0, assignment.find('='));
    if (!is_field(key)) continue;  // sweep.*, sweep: checked below
    const std::string value = value_text(config, key);
    const auto [first, fresh] = set_to.emplace(key, std::pair{value, assignment});
    if (!fresh && first->second.first != value)
      fail(Origin{"--set " + assignment},
           fmt::format("{} is also set by --set {}, to another value; set it once", key, first->second.second));
  }
  for (const auto& [key, setting] : set_to) {
    if (key == "seed" && !config.sweep.seeds.empty())
      fail(Origin{"--set " + setting.second},
           fmt::format("seed is swept by sweep.seeds: [{}], which sets every run's seed, so this value would vanish; "
                       "to run it alone use --set sweep.seeds=[{}]",
                       fmt::join(config.sweep.seeds, ", "), setting.first));
    for (const auto& axis : config.sweep.axes) {
      if (axis.key != key) continue;
      // A zipped key's value moves with its partners: the advice keeps the pairing.
      const std::string alone = axis.zipped
                                    ? fmt::format("--set 'sweep.zip={}' (each of the zip's points at this value)",
                                                  zip_with(config.sweep, key, setting.first))
                                    : fmt::format("--set sweep.{}=[{}]", key, setting.first);
      fail(
          Origin{"--set " + setting.second},
          fmt::format("{} is swept by {} (sweep.{}{}: [{}]), which sets it for every run, so this value would "
                      "vanish; to run it alone use {}, or drop the sweep with --set sweep={{}}",
                      key, axis.origins.front().str(), axis.zipped ? "zip." : "", key, join(axis.values, ", "), alone));
    }
  }
  fill_kind_defaults(config);
  validate(config);
}

void apply_override(ExperimentConfig& config, const std::string& assignment) { apply_overrides(config, {assignment}); }

}  // namespace resgd
