// Claims read from an experiment file and checked on its runs (claims.h).
#include "resgd/report/claims.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "resgd/core/csv.h"
#include "resgd/report/collection.h"
#include "resgd/run/summary.h"
#include "resgd/science/diagnostics.h"

namespace resgd {
namespace {

/// Why a fit may leave a run out, where its rule says it may (fit.leave_out).
const char* const kLeaveOutReasons[] = {"diverged", "stalled", "not_linear", "no_value"};

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
  if (const auto block = block_column(metric)) {
    int64_t layers = 0;
    for (const auto& point : points)
      layers = std::max<int64_t>(layers, std::stoll(point_value(config, point, "model.layers")));
    if (block->second > layers)
      fail(e, fmt::format("'{}' is block {}'s, but the runs it speaks of have {} block{} (model.layers)", metric,
                          block->second, layers, layers == 1 ? "" : "s"));
    return;
  }
  static const std::pair<const char*, const char*> kNeeds[] = {
      {"ntk_lambda_min", "diagnostics.ntk"},         {"sharpness", "diagnostics.sharpness"},
      {"sharpness_max", "diagnostics.sharpness"},    {"sharpness_final", "diagnostics.sharpness"},
      {"lin_gap_max", "diagnostics.linearized"},     {"lin_departure_iter", "diagnostics.linearized"},
      {"lin_ratio_final", "diagnostics.linearized"}, {"ntk_lambda_max", "diagnostics.linearized"}};
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

/// Least squares of y on [1, columns...]: the coefficients (intercept first) and the
/// multiple correlation R = sqrt(1 - SS_res / SS_tot); none where the columns are collinear.
std::optional<std::pair<std::vector<double>, double>> least_squares(const std::vector<std::vector<double>>& columns,
                                                                    const std::vector<double>& y) {
  const size_t k = columns.size() + 1, n = y.size();
  if (n < k + 1) return std::nullopt;
  auto regressor = [&](size_t j, size_t i) { return j == 0 ? 1.0 : columns[j - 1][i]; };
  std::vector<std::vector<double>> a(k, std::vector<double>(k + 1, 0.0));  // [X^T X | X^T y]
  for (size_t r = 0; r < k; ++r)
    for (size_t i = 0; i < n; ++i) {
      for (size_t c = 0; c < k; ++c) a[r][c] += regressor(r, i) * regressor(c, i);
      a[r][k] += regressor(r, i) * y[i];
    }
  for (size_t c = 0; c < k; ++c) {  // Gauss-Jordan with partial pivoting
    size_t pivot = c;
    for (size_t r = c + 1; r < k; ++r)
      if (std::abs(a[r][c]) > std::abs(a[pivot][c])) pivot = r;
    if (std::abs(a[pivot][c]) < 1e-12 * std::max(1.0, std::abs(a[0][0]))) return std::nullopt;
    std::swap(a[c], a[pivot]);
    for (size_t r = 0; r < k; ++r) {
      if (r == c) continue;
      const double f = a[r][c] / a[c][c];
      for (size_t q = c; q <= k; ++q) a[r][q] -= f * a[c][q];
    }
  }
  std::vector<double> b(k);
  for (size_t c = 0; c < k; ++c) b[c] = a[c][k] / a[c][c];
  double mean = 0, total = 0, residual = 0;
  for (double v : y) mean += v / static_cast<double>(n);
  for (size_t i = 0; i < n; ++i) {
    double fitted = 0;
    for (size_t j = 0; j < k; ++j) fitted += b[j] * regressor(j, i);
    residual += (y[i] - fitted) * (y[i] - fitted);
    total += (y[i] - mean) * (y[i] - mean);
  }
  if (!(total > 0)) return std::nullopt;
  return std::make_pair(b, std::sqrt(std::max(0.0, 1 - residual / total)));
}

/// The runs a fit uses, as ln x (one list per x) and ln y, and those it leaves out.
struct FitData {
  std::vector<std::vector<double>> xs;
  std::vector<double> ys;
  std::map<std::string, std::vector<std::string>> left_out;  // reason -> the first x of each run
};

FitData gather_fit(const Expectation& e, const std::vector<const FoundRun*>& runs) {
  const auto known = known_keys();
  const size_t k = e.x.size();
  FitData d;
  d.xs.resize(k);
  std::vector<bool> by_key(k);  // an x that is a configuration key, not a metric
  for (size_t j = 0; j < k; ++j) by_key[j] = std::find(known.begin(), known.end(), e.x[j]) != known.end();
  for (const auto* run : runs) {
    std::vector<std::optional<double>> x(k);
    for (size_t j = 0; j < k; ++j)
      x[j] = by_key[j] ? parse_number(value_text(run->config, e.x[j])) : metric_value(run->summary, e.x[j]).number;
    const std::string x_text = x[0] ? fmt::format("{:.4g}", *x[0]) : "-";
    const auto status = run_status(run->summary);
    const auto y = metric_value(run->summary, e.of).number;
    const bool usable = y && *y > 0 && std::isfinite(*y) &&
                        std::all_of(x.begin(), x.end(), [](const auto& v) { return v && *v > 0 && std::isfinite(*v); });
    std::string reason;
    if (status == Status::diverged || status == Status::stalled || status == Status::interrupted)
      reason = to_string(*status);
    else if (!y && (e.of == "one_minus_rate" || e.of == "one_minus_rate_per_lr"))
      reason = "not_linear";
    else if (!usable)
      reason = "no_value";
    if (!reason.empty()) {
      d.left_out[reason].push_back(x_text);
      continue;
    }
    for (size_t j = 0; j < k; ++j) d.xs[j].push_back(std::log(*x[j]));
    d.ys.push_back(std::log(*y));
  }
  return d;
}

/// How many distinct x tuples the used runs have.
size_t distinct_points(const FitData& d) {
  std::vector<std::vector<double>> points;
  for (size_t i = 0; i < d.ys.size(); ++i) {
    std::vector<double> point;
    for (const auto& x : d.xs) point.push_back(x[i]);
    if (std::none_of(points.begin(), points.end(), [&](const std::vector<double>& p) {
          for (size_t j = 0; j < p.size(); ++j)
            if (std::abs(p[j] - point[j]) >= 1e-9) return false;
          return true;
        }))
      points.push_back(point);
  }
  return points.size();
}

/// ln y against ln x (or several x at once) over the runs it speaks of. A run is left out
/// where it diverged or was interrupted, where y needs a linear rate it does not have
/// (not_linear), or where an x or y is missing or not positive (no_value); the fit is shown
/// only where no run was left out for a reason its rule does not allow (fit.leave_out), at
/// least min_distinct_x points were used with each x over min_decades decades, and every
/// slope and the correlation are in bounds. With one x the correlation is Pearson's (its
/// sign that of the slope); with several, the multiple correlation R, and each x's own
/// correlation with y is reported beside it: a knob that moves with another shows there.
Verdict check_fit(const Expectation& e, const std::vector<const FoundRun*>& runs) {
  const size_t k = e.x.size();
  const FitData data = gather_fit(e, runs);
  const auto& xs = data.xs;
  const auto& ys = data.ys;
  const size_t distinct = distinct_points(data);
  std::vector<double> decades(k, 0.0);
  for (size_t j = 0; j < k && !ys.empty(); ++j)
    decades[j] = (*std::max_element(xs[j].begin(), xs[j].end()) - *std::min_element(xs[j].begin(), xs[j].end())) /
                 std::log(10.0);
  std::vector<std::string> notes, refused;
  for (const auto& [reason, xs_left] : data.left_out) {
    const bool allowed = std::count(e.leave_out.begin(), e.leave_out.end(), reason) > 0;
    const std::string note =
        fmt::format("{} {} ({} = {})", xs_left.size(), reason, e.x.front(), fmt::join(xs_left, ", "));
    notes.push_back(note + (allowed ? ", left out as the rule allows" : ""));
    if (!allowed) refused.push_back(note);
  }
  std::vector<std::string> spans;
  for (size_t j = 0; j < k; ++j)
    spans.push_back(k == 1 ? fmt::format("{:.2f} decades", decades[j])
                           : fmt::format("{} over {:.2f} decades", e.x[j], decades[j]));
  std::string head = fmt::format("{} runs used, at {} distinct x over {}", ys.size(), distinct, fmt::join(spans, ", "));
  if (!notes.empty()) head += fmt::format("; left out: {}", fmt::join(notes, "; "));
  Verdict v;
  std::vector<double> slopes;
  double correlation = 0;
  if (k == 1) {
    if (const auto line = distinct >= 2 ? fit_line(xs[0], ys) : std::nullopt) {
      slopes = {line->slope};
      correlation = line->correlation;
    }
  } else if (const auto fit = least_squares(xs, ys)) {
    slopes.assign(fit->first.begin() + 1, fit->first.end());
    correlation = fit->second;
  }
  if (slopes.empty()) {
    v.measured = fmt::format("{}: too few, or too collinear, to fit {} against {}", head, e.of, fmt::join(e.x, ", "));
    return v;
  }
  std::vector<std::string> why_not, law, bounds;
  if (!refused.empty()) why_not.push_back("runs inside the claimed range left out");
  if (static_cast<int>(distinct) < e.min_distinct_x)
    why_not.push_back(fmt::format("fewer than {} distinct x", e.min_distinct_x));
  for (size_t j = 0; j < k; ++j) {
    law.push_back(fmt::format("{}^{:.3f}", e.x[j], slopes[j]));
    if (decades[j] < e.min_decades)
      why_not.push_back(fmt::format("{} spans less than {:g} decades", e.x[j], e.min_decades));
    const Bound& bound = j < e.slopes.size() ? e.slopes[j] : Bound{};
    bounds.push_back(with_margin(k == 1 ? "slope" : "exponent of " + e.x[j], slopes[j], bound, 3));
    if (!holds(bound, MetricValue{slopes[j], std::nullopt}))
      why_not.push_back(k == 1 ? "slope out of bounds" : "exponent of " + e.x[j] + " out of bounds");
  }
  if (!holds(e.correlation, MetricValue{correlation, std::nullopt})) why_not.push_back("correlation out of bounds");
  std::string alone;
  for (size_t j = 0; k > 1 && j < k; ++j)
    if (const auto line = fit_line(xs[j], ys))
      alone += fmt::format("{}{} alone {:.4f}", alone.empty() ? "; correlation of each x alone: " : ", ", e.x[j],
                           line->correlation);
  v.shown = why_not.empty();
  v.measured = fmt::format("{} ~ {}; {}; {}; {}{}{}", e.of, fmt::join(law, " "), head, fmt::join(bounds, "; "),
                           with_margin(k == 1 ? "correlation" : "R", correlation, e.correlation, 4), alone,
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
ratio: {of: METRIC, over: {KEY: VALUE, ...}, min: A, max: B, at_best: KEY}
  the median of METRIC over the claim's runs divided by its median over the runs `over`
  selects; shown where the ratio is within [A, B]. With at_best (say train.lr), each side
  is first narrowed to its own best value of KEY: the one whose median METRIC is least
  among the values at which every run has a value and none diverged or stalled (each arm
  at its best stable step size of a grid); the verdict names both and those refused.
fit: {y: METRIC, x: KEY or METRIC, slope: BOUND, correlation: BOUND, min_distinct_x: N,
      min_decades: D, leave_out: [REASON, ...]}
  a least-squares line of ln y on ln x over the runs it speaks of. x may also be a list of
  up to three (x: [sigma_min_g1, sigma_max_g1]): ln y is then fitted on every ln x at once,
  slope is a list of bounds, one per x, correlation bounds the multiple correlation R, and
  each x's own correlation with y is reported beside it (a knob that moves with another
  shows there; x that move together cannot be fitted apart and are not shown). A run is left out where
  it diverged, stalled or was interrupted, where y is one_minus_rate and the run did not converge
  linearly (not_linear), or where x or y is missing or not positive (no_value). Shown only
  where the slope and the correlation are within their bounds (correlation is required),
  at least N distinct x values were used (default 4) spanning at least D decades
  (default 0), and every run left out was left out for a reason the rule lists in
  leave_out (diverged, stalled, not_linear, no_value); otherwise the runs left out inside the range
  the claim speaks of make it "not shown". The verdict reports the runs used and left out
  (with their x), the distinct x, the decades, and each bound's margin.

BOUND: a value the metric must equal (converged, true), or {min: A, max: B} (either end).

METRIC: a column of summary.json or sweep.csv (resgd metrics --explain), e.g. status,
  final_loss, cond_g1, rank1_res3, rank1_res_final3, pl_ratio_median, ntk_lambda_min; or
  one of final_over_initial (final_loss / initial_loss), final_over_within_sequence
  (final_loss / within_sequence_loss), loss_max_over_initial (loss_max / initial_loss),
  one_minus_rate (1 - linear_rate, only where the run converges linearly),
  one_minus_rate_per_lr (one_minus_rate / lr, the step the run took, which with
  train.lr_edge is train.lr times the edge: rates of runs at different step sizes compared
  per unit step), converges_linearly.
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

bool is_summary_metric(const std::string& metric) { return is_metric(metric); }

MetricValue metric_value(const nlohmann::json& summary, const std::string& metric) {
  MetricValue v;
  auto number = [&](const std::string& key) -> std::optional<double> {
    const std::string cell = summary_cell(summary, key);
    if (cell.empty()) {
      // JSON has no inf: a computed cond_g<l> of a rank-deficient G (its sigma_min_g<l>
      // written as 0) is null. Any other null, or a block the run lacks, is no value.
      const auto block = block_column(key);
      if (block && (block->first == "cond_g" || block->first == "cond_g_final") &&
          summary_cell(summary, "sigma_min" + block->first.substr(4) + std::to_string(block->second)) == "0")
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

namespace {

/// A key of the configuration, or ConfigError naming what it is for.
std::string read_key(const Expectation& e, const YAML::Node& value, const std::string& what) {
  const auto known = known_keys();
  if (!value.IsScalar() || std::find(known.begin(), known.end(), value.Scalar()) == known.end()) fail(e, what);
  return value.Scalar();
}

/// Refuses an option of a rule's map that the rule does not know.
void require_options(const Expectation& e, const YAML::Node& value, const std::string& rule,
                     const std::vector<std::string>& options) {
  for (const auto& option : value) {
    const std::string k = option.first.Scalar();
    if (std::find(options.begin(), options.end(), k) == options.end())
      fail(e, fmt::format("{}: unknown key '{}'; expected {}", rule, k, fmt::join(options, ", ")));
  }
}

void read_ratio(Expectation& e, const YAML::Node& value) {
  e.kind = Expectation::Kind::ratio;
  if (!value.IsMap() || !value["of"] || !value["over"])
    fail(e, "ratio: expected {of: METRIC, over: {...}, min/max, at_best: KEY}");
  require_options(e, value, "ratio", {"of", "over", "min", "max", "at_best"});
  e.of = require_metric(e, value["of"].Scalar());
  e.over = read_where(e, value["over"], "ratio.over");
  if (value["at_best"])
    e.at_best = read_key(e, value["at_best"],
                         "ratio.at_best: expected a key (each side is then taken at its own best value of it)");
  YAML::Node bound;
  for (const char* end : {"min", "max"})
    if (value[end]) bound[end] = value[end];
  e.bound = read_bound(e, bound, "ratio");
}

void read_fit(Expectation& e, const YAML::Node& value) {
  e.kind = Expectation::Kind::fit;
  if (!value.IsMap() || !value["x"] || !value["y"])
    fail(e, "fit: expected {x: KEY or METRIC, y: METRIC, slope, correlation}");
  require_options(e, value, "fit", {"x", "y", "slope", "correlation", "min_distinct_x", "min_decades", "leave_out"});
  e.of = require_metric(e, value["y"].Scalar());
  const auto known = known_keys();
  const YAML::Node& x = value["x"];
  if (x.IsSequence() && (x.size() < 1 || x.size() > 3)) fail(e, "fit.x: expected one to three keys or metrics");
  if (x.IsSequence())
    for (const auto& one : x) e.x.push_back(one.Scalar());
  else
    e.x.push_back(x.Scalar());
  for (const auto& one : e.x)
    if (std::find(known.begin(), known.end(), one) == known.end()) require_metric(e, one);
  if (value["slope"]) {
    const YAML::Node& slope = value["slope"];
    if (slope.IsSequence()) {
      if (slope.size() != e.x.size()) fail(e, "fit.slope: one bound for each x, in their order");
      for (const auto& one : slope) e.slopes.push_back(read_bound(e, one, "fit.slope"));
    } else {
      e.slopes.push_back(read_bound(e, slope, "fit.slope"));
    }
    for (const Bound& b : e.slopes)
      if (b.equals) fail(e, "fit.slope: expected {min: A, max: B} for each x ({} where any exponent will do)");
  }
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
        fail(e, fmt::format("fit.leave_out: unknown reason '{}'; expected diverged, stalled, not_linear, no_value", r));
      e.leave_out.push_back(r);
    }
  }
}

/// One entry of claims.expect, read; its metrics are checked against the runs next.
Expectation read_expectation(const ClaimsConfig::Entry& entry) {
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
      e.for_each = read_key(e, value, "for_each: expected a key (its rule then holds at each of its values)");
    } else if (key == "every" || key == "median") {
      ++kinds;
      e.kind = key == "every" ? Expectation::Kind::every : Expectation::Kind::median;
      if (!value.IsMap()) fail(e, key + ": expected a map of metrics to bounds");
      for (const auto& m : value)
        e.metrics.emplace_back(require_metric(e, m.first.Scalar()),
                               read_bound(e, m.second, key + "." + m.first.Scalar()));
    } else if (key == "ratio") {
      ++kinds;
      read_ratio(e, value);
    } else if (key == "fit") {
      ++kinds;
      read_fit(e, value);
    } else {
      fail(e, fmt::format("unknown key '{}'; expected claim, where and one of every, median, ratio, fit", key));
    }
  }
  if (kinds != 1) fail(e, "expected exactly one of every, median, ratio, fit");
  return e;
}

}  // namespace

std::vector<Expectation> parse_expectations(const ExperimentConfig& config) {
  std::vector<Expectation> out;
  for (const auto& entry : config.claims.expect) {
    Expectation e = read_expectation(entry);
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
      for (const auto& x : e.x)
        if (is_metric(x)) require_written(e, x, config, points);
    }
    out.push_back(std::move(e));
  }
  return out;
}

namespace {

/// One side of an `at_best` ratio: the runs at the value of `key` whose median `metric` is
/// least, among the values at which every run has a value and none diverged, stalled or is unfinished.
struct Best {
  std::optional<std::string> value;
  std::vector<const FoundRun*> runs;
  std::string note;  // "best train.lr=0.12 of 0.03, 0.06, 0.12 (0.24 diverged)"
};

Best at_best(const std::vector<const FoundRun*>& runs, const std::string& key, const std::string& metric) {
  std::vector<std::pair<std::string, std::vector<const FoundRun*>>> groups;  // in the order of their values
  for (const auto* run : runs) {
    const std::string value = value_text(run->config, key);
    auto group = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return same_value(g.first, value); });
    if (group == groups.end()) group = groups.insert(groups.end(), {value, {}});
    group->second.push_back(run);
  }
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) {
    const auto x = parse_number(a.first), y = parse_number(b.first);
    return x && y ? *x < *y : a.first < b.first;
  });
  Best best;
  std::optional<double> least;
  std::vector<std::string> eligible, unstable_values, valueless;
  for (const auto& [value, members] : groups) {
    const bool unstable = std::any_of(members.begin(), members.end(), [](const FoundRun* run) {
      const auto status = run_status(run->summary);
      return status == Status::diverged || status == Status::stalled || status == Status::interrupted;
    });
    const auto values = numbers(members, metric);
    if (unstable || values.size() != members.size()) {
      (unstable ? unstable_values : valueless).push_back(value);
      continue;
    }
    eligible.push_back(value);
    const auto m = median(values);
    if (m && (!least || *m < *least)) {
      least = m;
      best.value = value;
      best.runs = members;
    }
  }
  std::vector<std::string> refused;
  if (!unstable_values.empty())
    refused.push_back(fmt::format("{} diverged, stalled or unfinished", fmt::join(unstable_values, ", ")));
  if (!valueless.empty()) refused.push_back(fmt::format("{} without a value", fmt::join(valueless, ", ")));
  best.note = fmt::format("{}{} of {}{}", best.value ? "best " : "no best ",
                          best.value ? fmt::format("{}={}", key, *best.value) : key,
                          eligible.empty() ? "none" : fmt::format("{}", fmt::join(eligible, ", ")),
                          refused.empty() ? "" : fmt::format(" ({})", fmt::join(refused, "; ")));
  return best;
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

}  // namespace

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
      std::string best_note;
      auto above = runs, below = select(collection, e.over);
      if (!e.at_best.empty()) {
        const Best top_best = at_best(above, e.at_best, e.of), bottom_best = at_best(below, e.at_best, e.of);
        if (!top_best.value || !bottom_best.value) {
          v.measured = fmt::format("no value of {} at which every run is stable: {} | over: {}", e.at_best,
                                   top_best.note, bottom_best.note);
          return v;
        }
        above = top_best.runs;
        below = bottom_best.runs;
        best_note = fmt::format("; {} | over: {}", top_best.note, bottom_best.note);
      }
      const auto top_values = numbers(above, e.of), bottom_values = numbers(below, e.of);
      const auto top = median(top_values), bottom = median(bottom_values);
      if (!top || !bottom || below.empty()) {
        v.measured =
            fmt::format("no value of {} for {} or for {}", e.of, describe_where(e.where), describe_where(e.over));
        return v;
      }
      const double r = *top / *bottom;
      const size_t missing = above.size() + below.size() - top_values.size() - bottom_values.size();
      v.shown = holds(e.bound, MetricValue{r, std::nullopt}) && missing == 0;
      v.measured = fmt::format("median {} {:.4g} over {:.4g} = {:.4g} ({}){}{}", e.of, *top, *bottom, r, e.bound.str(),
                               missing ? fmt::format("; {} runs have no value: not shown", missing) : "", best_note);
      return v;
    }
    case Expectation::Kind::fit: return check_fit(e, runs);
  }
  return v;
}

}  // namespace resgd
