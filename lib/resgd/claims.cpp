// Claims read from an experiment file and checked on its runs (claims.h).
#include "resgd/claims.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "resgd/collection.h"
#include "resgd/diagnostics.h"
#include "resgd/io.h"
#include "resgd/summary.h"

namespace resgd {
namespace {

/// Why a fit may leave a run out, where its rule says it may (fit.leave_out).
const char* const kLeaveOutReasons[] = {"diverged", "not_linear", "no_value"};

const char* const kDerived[] = {"final_over_initial", "final_over_within_sequence", "loss_max_over_initial",
                                "one_minus_rate", "one_minus_rate_per_lr"};

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

int read_count(const Expectation& e, const YAML::Node& node, const std::string& what) {
  try {
    const int n = node.as<int>();
    if (n >= 2) return n;
  } catch (const YAML::Exception&) {
  }
  fail(e, what + ": expected a whole number >= 2");
}

double read_number(const Expectation& e, const YAML::Node& node, const std::string& what) {
  try {
    return node.as<double>();
  } catch (const YAML::Exception&) {
  }
  fail(e, what + ": expected a number");
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
                        "one of final_over_initial, final_over_within_sequence, loss_max_over_initial, one_minus_rate, "
                        "one_minus_rate_per_lr",
                        metric));
  return metric;
}

/// `key`'s value at a point of the experiment's sweep: the point's own, or the file's.
std::string point_value(const ExperimentConfig& config, const SweepPoint& point, const std::string& key) {
  for (const auto& [k, v] : point.values)
    if (k == key) return v;
  return value_text(config, key);
}

bool same_value(const std::string& a, const std::string& b);

/// The points of the experiment's sweep that `where` selects.
std::vector<SweepPoint> points_of(const ExperimentConfig& config,
                                  const std::vector<std::pair<std::string, std::string>>& where) {
  std::vector<SweepPoint> out;
  for (const auto& point : expand_sweep(config))
    if (std::all_of(where.begin(), where.end(),
                    [&](const auto& kv) { return same_value(point_value(config, point, kv.first), kv.second); }))
      out.push_back(point);
  return out;
}

/// Refuses a metric that no run the claim speaks of can have: a block past every run's
/// model.layers, or a diagnostic that every one of them leaves off. Such a rule could
/// otherwise only read "no value". (A `where` that selects no run is left to check(),
/// which says so.)
void require_written(const Expectation& e, const std::string& metric, const ExperimentConfig& config,
                     const std::vector<SweepPoint>& points) {
  if (points.empty()) return;
  for (const char* stem : {"sigma_min_g", "sigma_max_g", "cond_g", "rank1_res_final", "rank1_res"}) {
    const std::string s = stem;
    if (metric.size() <= s.size() || metric.compare(0, s.size(), s) != 0 ||
        !std::all_of(metric.begin() + static_cast<long>(s.size()), metric.end(), ::isdigit))
      continue;
    const int64_t block = std::stoll(metric.substr(s.size()));
    int64_t layers = 0;
    for (const auto& point : points)
      layers = std::max<int64_t>(layers, std::stoll(point_value(config, point, "model.layers")));
    if (block > layers)
      fail(e, fmt::format("'{}' is block {}'s, but the runs it speaks of have {} block{} (model.layers)", metric, block,
                          layers, layers == 1 ? "" : "s"));
    return;
  }
  static const std::pair<const char*, const char*> kNeeds[] = {
      {"ntk_lambda_min", "diagnostics.ntk"},       {"sharpness", "diagnostics.sharpness"},
      {"sharpness_max", "diagnostics.sharpness"},  {"sharpness_final", "diagnostics.sharpness"},
      {"lin_gap_max", "diagnostics.linearized"},   {"lin_departure_iter", "diagnostics.linearized"},
      {"ntk_lambda_max", "diagnostics.linearized"}};
  for (const auto& [name, key] : kNeeds)
    if (metric == name && std::none_of(points.begin(), points.end(), [&, key = key](const SweepPoint& p) {
          return point_value(config, p, key) == "true";
        }))
      fail(e, fmt::format("'{}': no run it speaks of writes it ({} is off in every one)", metric, key));
  if ((metric == "within_sequence_loss" || metric == "final_over_within_sequence") &&
      std::all_of(points.begin(), points.end(),
                  [&](const SweepPoint& p) { return point_value(config, p, "model.readout") == "mean"; }))
    fail(e, fmt::format("'{}': no run it speaks of has one (the mean readout has no within-sequence loss)", metric));
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

/// How far `value` is inside `b` (negative: outside), for a bound with ends.
std::optional<double> margin(const Bound& b, double value) {
  std::optional<double> m;
  if (b.min) m = value - *b.min;
  if (b.max) m = m ? std::min(*m, *b.max - value) : *b.max - value;
  return m;
}

std::string with_margin(const std::string& what, double value, const Bound& b, int digits) {
  const auto m = margin(b, value);
  return fmt::format("{} {:.{}f} {}{}", what, value, digits, b.str(),
                     m ? fmt::format(" (margin {:.{}f})", *m, digits) : std::string());
}

/// ln y against ln x over the runs it speaks of. A run is left out where it diverged or
/// was interrupted, where y needs a linear rate it does not have (not_linear), or where x
/// or y is missing or not positive (no_value); the fit is shown only where no run was left
/// out for a reason its rule does not allow (fit.leave_out), at least min_distinct_x x
/// values over min_decades decades were used, and slope and correlation are in bounds.
Verdict check_fit(const Expectation& e, const std::vector<const FoundRun*>& runs) {
  const auto known = known_keys();
  const bool by_key = std::find(known.begin(), known.end(), e.x) != known.end();
  std::vector<double> xs, ys;
  std::map<std::string, std::vector<std::string>> left_out;  // reason -> the x of each run
  for (const auto* run : runs) {
    std::optional<double> x;
    if (by_key)
      x = parse_number(value_text(run->config, e.x));
    else
      x = metric_value(run->summary, e.x).number;
    const std::string x_text = x ? fmt::format("{:.4g}", *x) : "-";
    const std::string status = run->summary.value("status", "");
    const auto y = metric_value(run->summary, e.of).number;
    std::string reason;
    if (status == "diverged" || status == "interrupted")
      reason = status;
    else if (!y && (e.of == "one_minus_rate" || e.of == "one_minus_rate_per_lr"))
      reason = "not_linear";
    else if (!x || !y || !(*x > 0) || !(*y > 0) || !std::isfinite(*x) || !std::isfinite(*y))
      reason = "no_value";
    if (!reason.empty()) {
      left_out[reason].push_back(x_text);
      continue;
    }
    xs.push_back(std::log(*x));
    ys.push_back(std::log(*y));
  }
  std::vector<double> distinct = xs;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(
      std::unique(distinct.begin(), distinct.end(), [](double a, double b) { return std::abs(a - b) < 1e-9; }),
      distinct.end());
  const double decades = distinct.empty() ? 0.0 : (distinct.back() - distinct.front()) / std::log(10.0);
  std::vector<std::string> notes, refused;
  for (const auto& [reason, xs_left] : left_out) {
    const bool allowed = std::count(e.leave_out.begin(), e.leave_out.end(), reason) > 0;
    const std::string note = fmt::format("{} {} (x = {})", xs_left.size(), reason, fmt::join(xs_left, ", "));
    notes.push_back(note + (allowed ? ", left out as the rule allows" : ""));
    if (!allowed) refused.push_back(note);
  }
  const auto line = distinct.size() >= 2 ? fit_line(xs, ys) : std::nullopt;
  Verdict v;
  std::string head =
      fmt::format("{} runs used, at {} distinct x over {:.2f} decades", xs.size(), distinct.size(), decades);
  if (!notes.empty()) head += fmt::format("; left out: {}", fmt::join(notes, "; "));
  if (!line) {
    v.measured = fmt::format("{}: too few to fit {} against {}", head, e.of, e.x);
    return v;
  }
  const bool slope_holds = holds(e.bound, MetricValue{line->slope, std::nullopt});
  const bool correlation_holds = holds(e.correlation, MetricValue{line->correlation, std::nullopt});
  std::vector<std::string> why_not;
  if (!refused.empty()) why_not.push_back("runs inside the claimed range left out");
  if (static_cast<int>(distinct.size()) < e.min_distinct_x)
    why_not.push_back(fmt::format("fewer than {} distinct x", e.min_distinct_x));
  if (decades < e.min_decades) why_not.push_back(fmt::format("x spans less than {:g} decades", e.min_decades));
  if (!slope_holds) why_not.push_back("slope out of bounds");
  if (!correlation_holds) why_not.push_back("correlation out of bounds");
  v.shown = why_not.empty();
  v.measured = fmt::format("{} ~ {}^{:.3f}; {}; {}; {}{}", e.of, e.x, line->slope, head,
                           with_margin("slope", line->slope, e.bound, 3),
                           with_margin("correlation", line->correlation, e.correlation, 4),
                           why_not.empty() ? "" : fmt::format("; not shown: {}", fmt::join(why_not, ", ")));
  return v;
}

}  // namespace

std::string explain_claims() {
  return R"(claims.expect: a list of claims, each checked on the experiment's runs by `resgd reproduce`.
  Every claim has `claim:` (its statement, as results.md prints it), an optional `where:`
  (a map of keys to values: the runs it speaks of; default all), an optional `for_each:
  KEY` (the rule is checked apart at each value of KEY among those runs, a ratio's `over`
  runs taken at the same value, and shown only where it holds at every one: "at each n",
  "for every width") and exactly one rule.

every: {METRIC: BOUND, ...}
  shown where every run it speaks of holds every bound.
median: {METRIC: BOUND, ...}
  shown where the median over its runs (NaN left out) holds each bound.
ratio: {of: METRIC, over: {KEY: VALUE, ...}, min: A, max: B}
  the median of METRIC over the claim's runs divided by its median over the runs `over`
  selects; shown where the ratio is within [A, B].
fit: {y: METRIC, x: KEY or METRIC, slope: BOUND, correlation: BOUND, min_distinct_x: N,
      min_decades: D, leave_out: [REASON, ...]}
  a least-squares line of ln y on ln x over the runs it speaks of. A run is left out where
  it diverged or was interrupted, where y is one_minus_rate and the run did not converge
  linearly (not_linear), or where x or y is missing or not positive (no_value). Shown only
  where the slope and the correlation are within their bounds (correlation is required),
  at least N distinct x values were used (default 4) spanning at least D decades
  (default 0), and every run left out was left out for a reason the rule lists in
  leave_out (diverged, not_linear, no_value); otherwise the runs left out inside the range
  the claim speaks of make it "not shown". The verdict reports the runs used and left out
  (with their x), the distinct x, the decades, and each bound's margin.

BOUND: a value the metric must equal (converged, true), or {min: A, max: B} (either end).

METRIC: a column of summary.json or sweep.csv (resgd metrics --explain), e.g. status,
  final_loss, cond_g1, rank1_res3, rank1_res_final3, pl_ratio_median, ntk_lambda_min; or
  one of final_over_initial (final_loss / initial_loss), final_over_within_sequence
  (final_loss / within_sequence_loss), loss_max_over_initial (loss_max / initial_loss),
  one_minus_rate (1 - linear_rate, only where the run converges linearly),
  one_minus_rate_per_lr (one_minus_rate / train.lr: rates of runs at different step sizes
  compared per unit step), converges_linearly.
  A metric no run the claim speaks of can have (block l past every run's model.layers, a
  diagnostic every one of them leaves off) is refused when the file is read, at the
  claim's line. cond_g<l> reads inf only where it was computed and sigma_min_g<l> is 0; a
  missing value holds no bound, so a rule on it is "not shown".
)";
}

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
    if (cell.empty()) {
      // JSON has no inf: a computed cond_g<l> of a rank-deficient G (its sigma_min_g<l>
      // written as 0) is null. Any other null, or a block the run lacks, is no value.
      if (key.rfind("cond_g", 0) == 0 && key.size() > 6 && std::isdigit(static_cast<unsigned char>(key[6])) &&
          summary_cell(summary, "sigma_min_g" + key.substr(6)) == "0")
        return INFINITY;
      return std::nullopt;
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
  } else if (metric == "one_minus_rate_per_lr") {  // rates compared across step sizes
    const auto rate = rate_if_linear(summary), lr = number("lr");
    if (rate && lr && *lr > 0) v.number = (1 - *rate) / *lr;
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
      } else if (key == "for_each") {
        const auto known = known_keys();
        if (!value.IsScalar() || std::find(known.begin(), known.end(), value.Scalar()) == known.end())
          fail(e, "for_each: expected a key (its rule then holds at each of its values)");
        e.for_each = value.Scalar();
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
        // A line through scattered points says nothing: every fit bounds its correlation.
        if (!value["correlation"])
          fail(e,
               "fit: every fit needs a correlation bound (correlation: {min: R} for a rising law, {max: -R} for "
               "a falling one)");
        e.correlation = read_bound(e, value["correlation"], "fit.correlation");
        if (value["min_distinct_x"]) e.min_distinct_x = read_count(e, value["min_distinct_x"], "fit.min_distinct_x");
        if (value["min_decades"]) e.min_decades = read_number(e, value["min_decades"], "fit.min_decades");
        if (value["leave_out"]) {
          if (!value["leave_out"].IsSequence()) fail(e, "fit.leave_out: expected a list of reasons");
          for (const auto& reason : value["leave_out"]) {
            const std::string r = reason.Scalar();
            if (std::find(std::begin(kLeaveOutReasons), std::end(kLeaveOutReasons), r) == std::end(kLeaveOutReasons))
              fail(e, fmt::format("fit.leave_out: unknown reason '{}'; expected diverged, not_linear, no_value", r));
            e.leave_out.push_back(r);
          }
        }
        for (const auto& option : value) {
          const std::string k = option.first.Scalar();
          if (k != "x" && k != "y" && k != "slope" && k != "correlation" && k != "min_distinct_x" &&
              k != "min_decades" && k != "leave_out")
            fail(e, fmt::format("fit: unknown key '{}'; expected x, y, slope, correlation, min_distinct_x, "
                                "min_decades, leave_out",
                                k));
        }
      } else {
        fail(e, fmt::format("unknown key '{}'; expected claim, where and one of every, median, ratio, fit", key));
      }
    }
    if (kinds != 1) fail(e, "expected exactly one of every, median, ratio, fit");
    // Each metric must be one that some run the claim speaks of writes.
    const auto points = points_of(config, e.where);
    for (const auto& [metric, bound] : e.metrics) require_written(e, metric, config, points);
    if (e.kind == Expectation::Kind::ratio) {
      auto both = points;
      for (const auto& p : points_of(config, e.over)) both.push_back(p);
      require_written(e, e.of, config, both);
    }
    if (e.kind == Expectation::Kind::fit) {
      require_written(e, e.of, config, points);
      if (is_metric(e.x)) require_written(e, e.x, config, points);
    }
    out.push_back(std::move(e));
  }
  return out;
}

/// The rule at each value of `for_each` among the claim's runs (a ratio's `over` runs at
/// the same value): shown where it holds at every one.
Verdict check_each(const Expectation& e, const RunCollection& collection) {
  std::vector<std::string> values;
  for (const auto* run : select(collection, e.where)) {
    const std::string value = value_text(run->config, e.for_each);
    if (std::none_of(values.begin(), values.end(), [&](const std::string& v) { return same_value(v, value); }))
      values.push_back(value);
  }
  std::sort(values.begin(), values.end(), [](const std::string& a, const std::string& b) {
    const auto x = parse_number(a), y = parse_number(b);
    return x && y ? *x < *y : a < b;
  });
  Verdict v;
  if (values.empty()) {
    v.measured = fmt::format("no run with {}", describe_where(e.where));
    return v;
  }
  v.shown = true;
  std::vector<std::string> parts;
  for (const auto& value : values) {
    Expectation one = e;
    one.for_each.clear();
    one.where.emplace_back(e.for_each, value);
    if (one.kind == Expectation::Kind::ratio) one.over.emplace_back(e.for_each, value);
    const Verdict at = check(one, collection);
    v.shown = v.shown && at.shown;
    parts.push_back(fmt::format("{}={}: {}{}", e.for_each, value, at.shown ? "" : "NOT SHOWN, ", at.measured));
  }
  v.measured = fmt::format("{}", fmt::join(parts, " | "));
  return v;
}

Verdict check(const Expectation& e, const RunCollection& collection) {
  if (!e.for_each.empty()) return check_each(e, collection);
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
        const auto values = numbers(runs, metric);
        const auto m = median(values);
        const MetricValue value{m, std::nullopt};
        const size_t missing = runs.size() - values.size();  // a median of some runs is not theirs all
        v.shown = v.shown && holds(bound, value) && missing == 0;
        parts.push_back(fmt::format(
            "median {} = {} over {} runs ({}){}", metric, shown_value(value), values.size(), bound.str(),
            missing ? fmt::format("; {} of {} runs have no value: not shown", missing, runs.size()) : std::string()));
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
      const size_t missing = runs.size() + below.size() - numbers(runs, e.of).size() - numbers(below, e.of).size();
      v.shown = holds(e.bound, MetricValue{r, std::nullopt}) && missing == 0;
      v.measured = fmt::format("median {} {:.4g} over {:.4g} = {:.4g} ({}){}", e.of, *top, *bottom, r, e.bound.str(),
                               missing ? fmt::format("; {} runs have no value: not shown", missing) : std::string());
      return v;
    }
    case Expectation::Kind::fit: return check_fit(e, runs);
  }
  return v;
}

}  // namespace resgd
