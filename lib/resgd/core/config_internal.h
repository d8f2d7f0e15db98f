// What the config_*.cpp files share (not API): key queries, errors, field setting, value texts, the sweep's grid.
#pragma once

#include "resgd/core/config.h"

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace resgd::config_detail {

// config_keys.cpp: the keys visit_fields lists (config_fields.h), and the errors.
const std::vector<std::string>& all_keys();
bool is_field(const std::string& path);
std::vector<std::string> children_of(const std::string& section);
bool is_section(const std::string& path);
std::string join(const std::vector<std::string>& items, const std::string& sep);
[[noreturn]] void fail(const Origin& where, const std::string& what);
[[noreturn]] void fail_unknown(const Origin& where, const std::string& section, const std::string& name);

// config_parse.cpp: one field, or the sweep section, from YAML.
bool set_field(ExperimentConfig& config, const std::string& path, const YAML::Node& node, const Origin& at);
void load_sweep(ExperimentConfig& config, const YAML::Node& node, const std::string& file);

// config_validate.cpp: run before every validate.
void fill_kind_defaults(ExperimentConfig& config);

// config_overrides.cpp: the zip as advice in an error.
std::string zip_with(const SweepConfig& sweep, const std::string& key, const std::string& value);

// config_sweep.cpp: the grid, and its run directories.
/// The dimensions of a sweep's grid: each Cartesian axis is one, the zipped axes share one.
struct SweepShape {
  std::vector<size_t> dimension_of;  // per axis
  std::vector<size_t> extents;       // per dimension, in order of first appearance
};
SweepShape sweep_shape(const SweepConfig& sweep);
void require_distinct_run_directories(const SweepConfig& sweep);

// config_dump.cpp: a value as dump_yaml writes it.
std::string quote_if_needed(const std::string& s);
std::string to_text(const std::string& v);
std::string to_text(int64_t v);
std::string to_text(double v);
std::string to_text(bool v);
std::string to_text(const Gain& v);
template <class E, class = decltype(EnumNames<E>::names)>
std::string to_text(E v) {
  return to_string(v);
}
template <class T>
std::string to_text(const std::optional<T>& v) {
  return v ? to_text(*v) : std::string("null");
}

}  // namespace resgd::config_detail
