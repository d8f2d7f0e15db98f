// Claims read from an experiment file and checked on its runs (claims.h).
#include "resgd/claims.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>

#include "resgd/collection.h"
#include "resgd/diagnostics.h"
#include "resgd/io.h"
#include "resgd/summary.h"

namespace resgd {
namespace {

const char* const kDerived[] = {"final_over_initial", "final_over_within_sequence", "loss_max_over_initial",
                                "one_minus_rate"};

/// Whether `metric` names a summary value or a derived one (blocks up to 64).
bool is_metric(const std::string& metric) {
  if (std::find(std::begin(kDerived), std::end(kDerived), metric) != std::end(kDerived)) return true;
  const auto columns = summary_columns(64);
  return std::find(columns.begin(), columns.end(), metric) != columns.end() || metric == "lr";
}

[[noreturn]] void fail(const Expectation& e, const std::string& what) {
  throw ConfigError(
      fmt::format("{}: claims.expect: {}{}", e.at.str(), e.claim.empty() ? "" : "'" + e.claim + "': ", what));
}

Bound read_bound(const Expectation& e, const YAML::Node& node, const std::string& what) {
  Bound b;
  if (node.IsScalar()) {
    b.equals = node.Scalar();
    return b;
  }
  if (!node.IsMap()) fail(e, what + ": expected a value or {min: A, max: B}");
  for (const auto& item : node) {
    const std::string key = item.first.Scalar();
    double value = 0;
    try {
      value = item.second.as<double>();
    } catch (const YAML::Exception&) {
      fail(e, fmt::format("{}.{}: expected a number", what, key));
    }
    if (key == "min")
      b.min = value;
    else if (key == "max")
      b.max = value;
    else
      fail(e, fmt::format("{}: unknown key '{}'; expected min, max", what, key));
  }
  return b;
}

std::vector<std::pair<std::string, std::string>> read_where(const Expectation& e, const YAML::Node& node,
                                                            const std::string& what) {
  if (!node.IsMap()) fail(e, what + ": expected a map of keys to values");
  const auto known = known_keys();
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& item : node) {
    const std::string key = item.first.Scalar();
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail(e, fmt::format("{}: unknown key '{}'", what, key));
    out.emplace_back(key, item.second.Scalar());
  }
  return out;
}

std::string require_metric(const Expectation& e, const std::string& metric) {
  if (!is_metric(metric))
    fail(e, fmt::format("unknown metric '{}'; a summary.json value (e.g. final_loss, cond_g1, pl_ratio_median) or "
                        "one of final_over_initial, final_over_within_sequence, loss_max_over_initial, one_minus_rate",
                        metric));
  return metric;
}

/// Two values as the configuration writes them alike: numbers (true and false as 1 and 0)
/// by value, other text as it is.
bool same_value(const std::string& a, const std::string& b) {
  const auto x = parse_number(a), y = parse_number(b);
  if (x && y) return *x == *y;
  return a == b;
}

/// The runs a claim speaks of.
std::vector<const FoundRun*> select(const RunCollection& runs,
                                    const std::vector<std::pair<std::string, std::string>>& where) {
  std::vector<const FoundRun*> out;
  for (const auto& run : runs.runs)
    if (std::all_of(where.begin(), where.end(),
                    [&](const auto& kv) { return same_value(value_text(run.config, kv.first), kv.second); }))
      out.push_back(&run);
  return out;
}

bool holds(const Bound& b, const MetricValue& v) {
  if (b.equals) {
    if (v.text) return *v.text == *b.equals;
    return v.number && same_value(format_number(*v.number), *b.equals);
  }
  if (!v.number || std::isnan(*v.number)) return false;
  return (!b.min || *v.number >= *b.min) && (!b.max || *v.number <= *b.max);
}

std::string shown_value(const MetricValue& v) {
  if (v.text) return *v.text;
  return v.number ? fmt::format("{:.4g}", *v.number) : "-";
}

std::optional<double> median(std::vector<double> values) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return std::isnan(v); }), values.end());
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

std::vector<double> numbers(const std::vector<const FoundRun*>& runs, const std::string& metric) {
  std::vector<double> out;
  for (const auto* run : runs)
    if (const auto v = metric_value(run->summary, metric).number) out.push_back(*v);
  return out;
}

std::string describe_where(const std::vector<std::pair<std::string, std::string>>& where) {
  std::vector<std::string> parts;
  for (const auto& [key, value] : where) parts.push_back(key + "=" + value);
  return parts.empty() ? "all runs" : fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace

std::string Bound::str() const {
  if (equals) return "= " + *equals;
  if (min && max) return fmt::format("in [{:g}, {:g}]", *min, *max);
  if (min) return fmt::format(">= {:g}", *min);
  if (max) return fmt::format("<= {:g}", *max);
  return "any";
}

MetricValue metric_value(const nlohmann::json& summary, const std::string& metric) {
  MetricValue v;
  auto number = [&](const std::string& key) -> std::optional<double> {
    const std::string cell = summary_cell(summary, key);
    if (cell.empty()) {  // null: a condition number of a rank-deficient G is inf
      const bool present = summary.contains(key) || key.rfind("cond_g", 0) == 0;
      return present && key.rfind("cond_", 0) == 0 ? std::optional<double>(INFINITY) : std::nullopt;
    }
    try {
      return std::stod(cell);
    } catch (const std::exception&) {
      return std::nullopt;
    }
  };
  auto ratio = [&](const char* top, const char* bottom) -> std::optional<double> {
    const auto a = number(top), b = number(bottom);
    return a && b && *b > 0 ? std::optional<double>(*a / *b) : std::nullopt;
  };
  if (metric == "status")
    v.text = summary.value("status", "");
  else if (metric == "converges_linearly")
    v.text = rate_if_linear(summary) ? "true" : "false";
  else if (metric == "final_over_initial")
    v.number = ratio("final_loss", "initial_loss");
  else if (metric == "final_over_within_sequence")
    v.number = ratio("final_loss", "within_sequence_loss");
  else if (metric == "loss_max_over_initial")
    v.number = ratio("loss_max", "initial_loss");
  else if (metric == "one_minus_rate") {
    if (const auto rate = rate_if_linear(summary)) v.number = 1 - *rate;
  } else
    v.number = number(metric);
  return v;
}

std::vector<Expectation> parse_expectations(const ExperimentConfig& config) {
  std::vector<Expectation> out;
  for (const auto& entry : config.claims.expect) {
    Expectation e;
    e.at = entry.origin;
    const YAML::Node node = YAML::Load(entry.yaml);
    if (!node.IsMap()) fail(e, "expected a map with claim: and one of every, median, ratio, fit");
    if (!node["claim"] || !node["claim"].IsScalar()) fail(e, "each claim needs its statement (claim: ...)");
    e.claim = node["claim"].Scalar();
    int kinds = 0;
    for (const auto& item : node) {
      const std::string key = item.first.Scalar();
      const YAML::Node& value = item.second;
      if (key == "claim") continue;
      if (key == "where") {
        e.where = read_where(e, value, "where");
      } else if (key == "every" || key == "median") {
        ++kinds;
        e.kind = key == "every" ? Expectation::Kind::every : Expectation::Kind::median;
        if (!value.IsMap()) fail(e, key + ": expected a map of metrics to bounds");
        for (const auto& m : value)
          e.metrics.emplace_back(require_metric(e, m.first.Scalar()),
                                 read_bound(e, m.second, key + "." + m.first.Scalar()));
      } else if (key == "ratio") {
        ++kinds;
        e.kind = Expectation::Kind::ratio;
        if (!value.IsMap() || !value["of"] || !value["over"])
          fail(e, "ratio: expected {of: METRIC, over: {...}, min/max}");
        e.of = require_metric(e, value["of"].Scalar());
        e.over = read_where(e, value["over"], "ratio.over");
        YAML::Node bound;
        for (const char* end : {"min", "max"})
          if (value[end]) bound[end] = value[end];
        e.bound = read_bound(e, bound, "ratio");
      } else if (key == "fit") {
        ++kinds;
        e.kind = Expectation::Kind::fit;
        if (!value.IsMap() || !value["x"] || !value["y"])
          fail(e, "fit: expected {x: KEY or METRIC, y: METRIC, slope, correlation}");
        e.of = require_metric(e, value["y"].Scalar());
        e.x = value["x"].Scalar();
        const auto known = known_keys();
        if (std::find(known.begin(), known.end(), e.x) == known.end()) require_metric(e, e.x);
        if (value["slope"]) e.bound = read_bound(e, value["slope"], "fit.slope");
        if (value["correlation"]) e.correlation = read_bound(e, value["correlation"], "fit.correlation");
      } else {
        fail(e, fmt::format("unknown key '{}'; expected claim, where and one of every, median, ratio, fit", key));
      }
    }
    if (kinds != 1) fail(e, "expected exactly one of every, median, ratio, fit");
    out.push_back(std::move(e));
  }
  return out;
}

Verdict check(const Expectation& e, const RunCollection& collection) {
  const auto runs = select(collection, e.where);
  Verdict v;
  if (runs.empty()) {
    v.measured = fmt::format("no run with {}", describe_where(e.where));
    return v;
  }
  switch (e.kind) {
    case Expectation::Kind::every: {
      v.shown = true;
      std::vector<std::string> parts;
      for (const auto& [metric, bound] : e.metrics) {
        size_t hold = 0;
        std::vector<double> values;
        for (const auto* run : runs) {
          const MetricValue value = metric_value(run->summary, metric);
          hold += holds(bound, value);
          if (value.number) values.push_back(*value.number);
        }
        v.shown = v.shown && hold == runs.size();
        std::string range;
        if (!bound.equals && !values.empty())
          range = fmt::format(" (from {:.4g} to {:.4g})", *std::min_element(values.begin(), values.end()),
                              *std::max_element(values.begin(), values.end()));
        parts.push_back(fmt::format("{} {}: {}/{} runs{}", metric, bound.str(), hold, runs.size(), range));
      }
      v.measured = fmt::format("{}", fmt::join(parts, "; "));
      return v;
    }
    case Expectation::Kind::median: {
      v.shown = true;
      std::vector<std::string> parts;
      for (const auto& [metric, bound] : e.metrics) {
        const auto m = median(numbers(runs, metric));
        const MetricValue value{m, std::nullopt};
        v.shown = v.shown && holds(bound, value);
        parts.push_back(
            fmt::format("median {} = {} over {} runs ({})", metric, shown_value(value), runs.size(), bound.str()));
      }
      v.measured = fmt::format("{}", fmt::join(parts, "; "));
      return v;
    }
    case Expectation::Kind::ratio: {
      const auto below = select(collection, e.over);
      const auto top = median(numbers(runs, e.of)), bottom = median(numbers(below, e.of));
      if (!top || !bottom || below.empty()) {
        v.measured =
            fmt::format("no value of {} for {} or for {}", e.of, describe_where(e.where), describe_where(e.over));
        return v;
      }
      const double r = *top / *bottom;
      v.shown = holds(e.bound, MetricValue{r, std::nullopt});
      v.measured = fmt::format("median {} {:.4g} over {:.4g} = {:.4g} ({})", e.of, *top, *bottom, r, e.bound.str());
      return v;
    }
    case Expectation::Kind::fit: {
      const auto known = known_keys();
      const bool by_key = std::find(known.begin(), known.end(), e.x) != known.end();
      std::vector<double> xs, ys;
      for (const auto* run : runs) {
        const std::string status = run->summary.value("status", "");
        if (status != "converged" && status != "max_iters") continue;
        std::optional<double> x;
        if (by_key) {
          try {
            x = std::stod(value_text(run->config, e.x));
          } catch (const std::exception&) {
          }
        } else {
          x = metric_value(run->summary, e.x).number;
        }
        const auto y = metric_value(run->summary, e.of).number;
        if (!x || !y || !(*x > 0) || !(*y > 0) || !std::isfinite(*x) || !std::isfinite(*y)) continue;
        xs.push_back(std::log(*x));
        ys.push_back(std::log(*y));
      }
      const auto line = xs.size() >= 3 ? fit_line(xs, ys) : std::nullopt;
      if (!line) {
        v.measured = fmt::format("{} usable runs: too few to fit {} against {}", xs.size(), e.of, e.x);
        return v;
      }
      v.shown = holds(e.bound, MetricValue{line->slope, std::nullopt}) &&
                holds(e.correlation, MetricValue{line->correlation, std::nullopt});
      v.measured = fmt::format("{} ~ {}^{:.3f} over {} runs, correlation {:.4f} (slope {}, correlation {})", e.of, e.x,
                               line->slope, xs.size(), line->correlation, e.bound.str(), e.correlation.str());
      return v;
    }
  }
  return v;
}

}  // namespace resgd
