// The key table: the keys visit_fields lists, their reference (--explain), and the unknown-key error.
#include "resgd/core/config.h"

#include "resgd/core/config_fields.h"
#include "resgd/core/config_internal.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace resgd {

using namespace config_detail;

std::string Origin::str() const {
  if (line > 0) return fmt::format("{}:{}:{}", file, line, column);
  return file.empty() ? std::string("default") : file;
}

const std::vector<std::string>& config_detail::all_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    ExperimentConfig c;
    visit_fields(c, [&](const char* path, auto&, const char*) { out.emplace_back(path); });
    return out;
  }();
  return keys;
}

bool config_detail::is_field(const std::string& path) {
  const auto& keys = all_keys();
  return std::find(keys.begin(), keys.end(), path) != keys.end();
}

/// The names directly below `section` ("" for the top level), sweep included.
std::vector<std::string> config_detail::children_of(const std::string& section) {
  std::vector<std::string> out;
  const std::string prefix = section.empty() ? "" : section + ".";
  auto add = [&](const std::string& name) {
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  };
  for (const auto& key : all_keys()) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    add(key.substr(prefix.size(), key.find('.', prefix.size()) - prefix.size()));
  }
  if (section.empty()) add("sweep"), add("claims");
  return out;
}

bool config_detail::is_section(const std::string& path) {
  const std::string prefix = path + ".";
  for (const auto& key : all_keys())
    if (key.compare(0, prefix.size(), prefix) == 0) return true;
  return false;
}

std::string config_detail::join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

[[noreturn]] void config_detail::fail(const Origin& where, const std::string& what) {
  throw ConfigError(fmt::format("{}: {}", where.str(), what));
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

[[noreturn]] void config_detail::fail_unknown(const Origin& where, const std::string& section,
                                              const std::string& name) {
  const auto known = children_of(section);
  std::string hint;
  size_t best = 3;  // suggest only close matches: typos, not different words
  for (const auto& k : known) {
    const size_t dist = edit_distance(name, k);
    if (dist < best) best = dist, hint = fmt::format(" (did you mean '{}'?)", k);
  }
  fail(where, fmt::format("unknown key '{}'{}{}; known keys{}: {}", name,
                          section.empty() ? "" : " in section '" + section + "'", hint,
                          section.empty() ? "" : " of '" + section + "'", join(known, ", ")));
}

std::vector<std::string> known_keys() { return all_keys(); }

namespace {

std::string type_of(const std::string&) { return "text"; }
std::string type_of(int64_t) { return "integer"; }
std::string type_of(double) { return "number"; }
std::string type_of(bool) { return "true or false"; }
std::string type_of(const Gain&) { return "gain: true (1), false (0) or a number"; }
template <class E, class = decltype(EnumNames<E>::names)>
std::string type_of(E) {
  return fmt::format("one of {}", fmt::join(EnumNames<E>::names, ", "));
}
template <class T>
std::string type_of(const std::optional<T>& v) {
  return type_of(v.value_or(T{})) + " or null";
}

// The values validate() accepts, where the type alone does not say: numeric bounds as
// "> x" or ">= x" (a test probes each at its edge) and the rules that are not bounds.
const std::map<std::string, std::string>& allowed_values() {
  static const std::map<std::string, std::string> allowed = {
      {"name", "not empty, no '/'"},
      {"seed", ">= 0"},
      {"device", "cpu, cuda, cuda:N or auto"},
      {"data.num_samples", "> 0"},
      {"data.seq_len", "> 0 (8 for digits)"},
      {"data.dim", "> 0 (8 for digits)"},
      {"data.target", "random only unless data.kind is gaussian"},
      {"data.target_dim", "> 0 (10 or 1 for digits)"},
      {"data.target_std", ">= 0"},
      {"data.noise", ">= 0"},
      {"data.path", "needed for tensors; a relative path is read from the experiment file's folder"},
      {"model.layers", "> 0"},
      {"model.key_dim", "> 0"},
      {"model.ffn_width", "> 0"},
      {"model.attention.heads", "> 0, dividing d_k and d"},
      {"model.attention.temperature", "> 0"},
      {"model.init.W_Q", ">= 0"},
      {"model.init.W_K", ">= 0"},
      {"model.init.W_V", ">= 0"},
      {"model.init.W_1", ">= 0"},
      {"model.init.W_2", ">= 0"},
      {"train.lr", "> 0"},
      {"train.max_iters", ">= 0"},
      {"train.tolerance", ">= 0"},
      {"train.rel_tolerance", ">= 0"},
      {"train.divergence_factor", "> 1"},
      {"train.stall_window", ">= 0"},
      {"train.log_every", ">= 1"},
      {"train.checkpoint_every", ">= 0"},
      {"diagnostics.every", ">= 0"},
      {"diagnostics.ntk_every", ">= 0"},
      {"diagnostics.ntk_max_entries", "> 0"},
      {"diagnostics.sharpness_every", ">= 0"},
  };
  return allowed;
}

}  // namespace

std::vector<KeyInfo> key_infos() {
  std::vector<KeyInfo> out;
  const ExperimentConfig defaults;
  visit_fields(defaults, [&](const char* key, const auto& field, const char* meaning) {
    const auto allowed = allowed_values().find(key);
    out.push_back(
        {key, type_of(field), to_text(field), allowed == allowed_values().end() ? "" : allowed->second, meaning});
  });
  return out;
}

std::string explain_keys(const std::string& key) {
  std::string out;
  for (const auto& info : key_infos()) {
    if (!key.empty() && info.key != key) continue;
    out += fmt::format("{}\n  {}; default {}{}\n  {}\n", info.key, info.type, info.default_value,
                       info.allowed.empty() ? "" : "; allowed " + info.allowed, info.meaning);
  }
  const std::pair<const char*, const char*> sweep[] = {
      {"sweep.<key>", "a list of values of <key>; the runs are the product of the lists, the first slowest"},
      {"sweep.zip.<key>", "lists of one length that move together: their i-th values form one point"},
      {"sweep.seeds", "a list of seeds: every point once per seed (without it, seed)"}};
  for (const auto& [name, meaning] : sweep)
    if (key.empty() || key == name) out += fmt::format("{}\n  list; default none\n  {}\n", name, meaning);
  return out;
}

}  // namespace resgd
