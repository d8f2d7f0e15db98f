// The dump: the resolved configuration as YAML, one value's text, and the configuration's hash.
#include "resgd/core/config.h"

#include "resgd/core/config_fields.h"
#include "resgd/core/config_internal.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace resgd {

using namespace config_detail;

// Dump: every key, nested by section, numbers in their shortest exact form.
std::string config_detail::quote_if_needed(const std::string& s) {
  static const std::set<std::string> keywords = {"null", "~", "true", "false", "yes", "no", "on", "off", "y", "n", ""};
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  bool plain = !keywords.count(lower) && !std::isdigit(static_cast<unsigned char>(s[0])) && s[0] != '-' && s[0] != '.';
  for (char ch : s) plain = plain && (std::isalnum(static_cast<unsigned char>(ch)) || std::strchr("_-./:", ch));
  if (plain) return s;
  return nlohmann::json(s).dump();  // a JSON string is a valid YAML double-quoted scalar
}

std::string config_detail::to_text(const std::string& v) { return quote_if_needed(v); }
std::string config_detail::to_text(int64_t v) { return std::to_string(v); }
std::string config_detail::to_text(double v) { return fmt::format("{}", v); }
std::string config_detail::to_text(bool v) { return v ? "true" : "false"; }
// A gain of 1 or 0 is the residual on or off, as experiment files write it.
std::string config_detail::to_text(const Gain& v) {
  return v.value == 1.0 ? "true" : v.value == 0.0 ? "false" : fmt::format("{}", v.value);
}

namespace {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
  return parts;
}

}  // namespace

std::string dump_yaml(const ExperimentConfig& config, bool include_sweep) {
  std::string out;
  std::vector<std::string> open;  // the sections of the previous key
  visit_fields(config, [&](const char* key, const auto& field, const char*) {
    auto parts = split_path(key);
    size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common]) ++common;
    for (size_t i = common; i + 1 < parts.size(); ++i) out += std::string(2 * i, ' ') + parts[i] + ":\n";
    out += std::string(2 * (parts.size() - 1), ' ') + parts.back() + ": " + to_text(field) + "\n";
    open.assign(parts.begin(), parts.end() - 1);
  });
  if (include_sweep && !config.sweep.empty()) {
    out += "sweep:\n";
    bool zip_written = false;
    for (const auto& axis : config.sweep.axes) {
      if (!axis.zipped) {
        out += fmt::format("  {}: [{}]\n", axis.key, join(axis.values, ", "));
      } else if (!std::exchange(zip_written, true)) {
        out += "  zip:\n";
        for (const auto& partner : config.sweep.axes)
          if (partner.zipped) out += fmt::format("    {}: [{}]\n", partner.key, join(partner.values, ", "));
      }
    }
    if (!config.sweep.seeds.empty()) out += fmt::format("  seeds: [{}]\n", fmt::join(config.sweep.seeds, ", "));
  }
  return out;
}

std::string value_text(const ExperimentConfig& config, const std::string& key) {
  std::optional<std::string> text;
  visit_fields(config, [&](const char* path, const auto& field, const char*) {
    if (!text && key == path) text = to_text(field);
  });
  if (!text) throw std::logic_error("value_text: no key '" + key + "'");
  return *text;
}

std::string config_hash(const ExperimentConfig& config) {
  uint64_t hash = 14695981039346656037ULL;  // FNV-1a, 64 bit
  for (unsigned char ch : dump_yaml(config, false)) hash = (hash ^ ch) * 1099511628211ULL;
  return fmt::format("{:016x}", hash);
}

}  // namespace resgd
