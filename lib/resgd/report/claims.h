// What an experiment claims, and whether its runs show it: the `claims.expect` list of an
// experiment file, read and checked by the code (never by hand), for `resgd reproduce`.
//
//   claims:
//     expect:
//       - claim: With the attention residual every run converges linearly
//         where: {model.residual.attention: true}      # the runs it speaks of (default: all)
//         every: {status: converged, converges_linearly: true}
//       - claim: Without it cond_g1 at initialization is at least 1000 times larger
//         where: {model.residual.attention: false}
//         ratio: {of: cond_g1, over: {model.residual.attention: true}, min: 1000}
//       - claim: pl_ratio rises with sigma_min_g1
//         fit: {y: pl_ratio_median, x: sigma_min_g1, slope: {min: 1}, correlation: {min: 0.99}}
//       - claim: ...
//         median: {final_over_within_sequence: {max: 1.5}}
//
// A bound is a value the metric must equal (converged, true) or {min: A, max: B}. A metric
// is a summary.json value (cond_g1 is block 1 of cond_g, inf only where computed with
// sigma_min_g1 = 0) or one of final_over_initial, final_over_within_sequence,
// loss_max_over_initial, one_minus_rate. `ratio` divides the median over `where` by the
// median over `over` (each side at its own best value of `at_best`, if given); `fit` fits
// ln y on ln x, x a swept key or a metric, and is shown only where no run was left out that
// its rule does not allow (explain_claims() says it all).
// A metric that no run of the experiment can have is refused when the file is read.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "resgd/core/config.h"
#include "resgd/report/collection.h"

namespace resgd {

/// What a value must be: equal to a text, or within [min, max] (either end open).
struct Bound {
  std::optional<std::string> equals;
  std::optional<double> min, max;
  std::string str() const;  // "= converged", ">= 1000", "in [0.3, 0.6]"
};

struct Expectation {
  enum class Kind { every, median, ratio, fit };
  std::string claim;
  Origin at;
  std::vector<std::pair<std::string, std::string>> where;  // key, YAML value: the runs it speaks of
  std::string for_each;                                    // a key: the rule holds at each of its values
  Kind kind = Kind::every;
  std::vector<std::pair<std::string, Bound>> metrics;     // every, median
  std::string of;                                         // ratio: the metric; fit: y
  std::vector<std::pair<std::string, std::string>> over;  // ratio: the runs of the denominator
  std::string at_best;                                    // ratio: a key; each side at its best value of it
  std::vector<std::string> x;                             // fit: one to three keys or metrics
  std::vector<Bound> slopes;                              // fit: each x's exponent (none: any)
  Bound bound;                                            // ratio: the ratio's
  Bound correlation;                                      // fit
  int min_distinct_x = 4;                                 // fit: fewer distinct x is too few to show a law
  double min_decades = 0;                                 // fit: the decades of x the used runs must span
  std::vector<std::string> leave_out;                     // fit: why a run may be left out (else: not shown)
};

/// The experiment's claims, read: ConfigError at the claim's line for an unknown kind, key or
/// metric, or a malformed bound.
std::vector<Expectation> parse_expectations(const ExperimentConfig& config);

/// One claim checked on runs: shown or not, and what was measured.
struct Verdict {
  bool shown = false;
  std::string measured;
};
Verdict check(const Expectation& expectation, const RunCollection& runs);

/// The claims language, as `resgd claims --explain` prints it (docs/reference.md).
std::string explain_claims();

/// A metric of a run's summary: a number, or a text (status, converges_linearly); none
/// where the run has no value.
struct MetricValue {
  std::optional<double> number;
  std::optional<std::string> text;
};
MetricValue metric_value(const nlohmann::json& summary, const std::string& metric);

/// Whether `metric` is a summary column or a derived metric that metric_value() knows.
bool is_summary_metric(const std::string& metric);

}  // namespace resgd
