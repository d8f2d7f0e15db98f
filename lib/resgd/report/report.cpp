// The printed table and report.md (plots are drawn by plots.cpp).
#include "resgd/report/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <tuple>

#include "resgd/core/csv.h"
#include "resgd/core/files.h"
#include "resgd/report/collection.h"
#include "resgd/report/plots.h"
#include "resgd/run/summary.h"
#include "resgd/science/diagnostics.h"

namespace resgd {
namespace {

/// A table cell: "-" where the summary has no value.
std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

}  // namespace

std::string format_summary_table(const ExperimentConfig& config, const std::vector<RunRecord>& records) {
  std::vector<std::string> keys;
  for (const auto& axis : config.sweep.axes) keys.push_back(axis.key);
  std::vector<std::string> header = display_names(keys);
  header.emplace_back("seed");
  for (const char* title : {"status", "iters", "final loss", "1 - rate", "cond_g1 (init)", "pl_ratio (median)"})
    header.emplace_back(title);
  if (config.diagnostics.sharpness) header.emplace_back("sharpness (init)");

  std::vector<std::vector<std::string>> rows;
  for (const auto& record : records) {
    const auto& s = record.summary;
    std::vector<std::string> row;
    for (const auto& [key, value] : record.point.values) row.push_back(display_value(value));
    row.push_back(std::to_string(record.point.seed));
    for (const char* key : {"status", "iters", "final_loss"})
      row.push_back(or_dash(summary_cell(s, key, CellDigits::four)));
    const auto rate = rate_if_linear(s);  // 1 - rate: 0.0297 reads better than 0.9703
    row.push_back(rate ? fmt::format("{:.4g}", 1 - *rate) : "-");
    for (const char* key : {"cond_g1", "pl_ratio_median"})
      row.push_back(or_dash(summary_cell(s, key, CellDigits::four)));
    if (config.diagnostics.sharpness) row.push_back(or_dash(summary_cell(s, "sharpness", CellDigits::four)));
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) out += fmt::format("{}{:<{}}", c ? "  " : "", cells[c], width[c]);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(header);
  std::vector<std::string> rule;
  for (size_t w : width) rule.emplace_back(w, '-');
  out += line(rule);
  for (const auto& row : rows) out += line(row);
  return out;
}

// ---------------------------------------------------------------------------------------
// report.md
namespace {
namespace fs = std::filesystem;

/// A summary.json number, nullopt when absent; for a per-block list, block `block` (from 0).
/// JSON has no inf or NaN, so the run wrote null for both: `null_is_inf` reads it as inf
/// (condition numbers: a rank-deficient G), otherwise null is "no value" (a tolerance never
/// reached, a diagnostic not switched on).
std::optional<double> summary_number(const nlohmann::json& summary, const std::string& key,
                                     std::optional<size_t> block = std::nullopt, bool null_is_inf = false) {
  if (!summary.contains(key)) return std::nullopt;
  const nlohmann::json* value = &summary.at(key);
  if (block) {
    if (!value->is_array() || *block >= value->size()) return std::nullopt;
    value = &value->at(*block);
  }
  if (value->is_null()) return null_is_inf ? std::optional<double>(INFINITY) : std::nullopt;
  return value->is_number() ? std::optional<double>(value->get<double>()) : std::nullopt;
}

/// 1 - linear_rate where the run converged linearly: 0.0297 reads better than 0.9703.
std::optional<double> one_minus_rate(const nlohmann::json& summary) {
  const auto rate = rate_if_linear(summary);
  return rate ? std::optional<double>(1 - *rate) : std::nullopt;
}

/// Whether a run's numbers enter the means, fits and axis ranges: it finished without
/// diverging (a diverged run's loss of 1e20 and "rate" of 1e9 would set them all).
bool usable(const FoundRun& run) {
  const auto status = run_status(run.summary);
  return status == Status::converged || status == Status::max_iters;
}

/// A reported quantity: its column title and how to read it from a summary.
struct Metric {
  std::string title;
  std::function<std::optional<double>(const nlohmann::json&)> read;
};

/// `within_sequence`: some run has per-token targets, so a within_sequence_loss.
std::vector<Metric> report_metrics(size_t blocks, bool sharpness, bool within_sequence) {
  std::vector<Metric> metrics = {
      {"iters to tol", [](const nlohmann::json& s) { return summary_number(s, "iters_to_tol"); }},
      {"final loss", [](const nlohmann::json& s) { return summary_number(s, "final_loss"); }},
      {"1 - rate", one_minus_rate}};
  for (size_t l = 0; l < blocks; ++l)
    for (const char* key : {"cond_g", "cond_g_final"})
      metrics.push_back(
          {fmt::format("cond_g{} {}", l + 1, key == std::string("cond_g") ? "init" : "end"),
           [key = std::string(key), l](const nlohmann::json& s) { return summary_number(s, key, l, true); }});
  if (sharpness) {  // opt-in (diagnostics.sharpness): columns only where some run has it
    for (const auto& [key, title] : {std::pair{"sharpness", "sharpness init"},
                                     {"sharpness_max", "sharpness max"},
                                     {"sharpness_final", "sharpness end"}})
      metrics.push_back({title, [key = std::string(key)](const nlohmann::json& s) { return summary_number(s, key); }});
    // How far the loss rose first: 1 for a run inside the edge of stability, the height of
    // the catapult above it.
    metrics.push_back({"loss peak / init", [](const nlohmann::json& s) -> std::optional<double> {
                         const auto peak = summary_number(s, "loss_max"), start = summary_number(s, "initial_loss");
                         if (!peak || !start || !(*start > 0)) return std::nullopt;
                         return *peak / *start;
                       }});
  }
  if (within_sequence)  // about 1 where the loss stalls because the tokens of a sequence look alike
    metrics.push_back({"final / within-seq loss", [](const nlohmann::json& s) -> std::optional<double> {
                         const auto final_loss = summary_number(s, "final_loss");
                         const auto floor = summary_number(s, "within_sequence_loss");
                         if (!final_loss || !floor || !(*floor > 0)) return std::nullopt;
                         return *final_loss / *floor;
                       }});
  return metrics;
}

const Metric& metric_titled(const std::vector<Metric>& metrics, const std::string& title) {
  return *std::find_if(metrics.begin(), metrics.end(), [&](const Metric& m) { return m.title == title; });
}

/// A power law y ~ x^slope: fit_line of ln y on ln x over the pairs where both are finite
/// and positive (`points`, as given); nullopt below three such pairs or with a single x.
struct LogLogFit {
  std::vector<std::pair<double, double>> points;
  LineFit line;
};

std::optional<LogLogFit> log_log_fit(
    const std::vector<std::pair<std::optional<double>, std::optional<double>>>& pairs) {
  LogLogFit fit;
  std::vector<double> xs, ys;
  for (const auto& [x, y] : pairs) {
    if (!x || !y || !(*x > 0) || !(*y > 0) || !std::isfinite(*x) || !std::isfinite(*y)) continue;
    fit.points.emplace_back(*x, *y);
    xs.push_back(std::log(*x));
    ys.push_back(std::log(*y));
  }
  if (xs.size() < 3) return std::nullopt;
  const auto line = fit_line(xs, ys);
  if (!line) return std::nullopt;
  fit.line = *line;
  return fit;
}

/// Mean and range over the runs of a setting; `count` of `total` runs had a value.
struct Spread {
  double mean = NAN, min = NAN, max = NAN;
  size_t count = 0, total = 0;
};

Spread spread_of(const std::vector<std::optional<double>>& values) {
  Spread s;
  s.total = values.size();
  double sum = 0;
  for (const auto& v : values) {
    if (!v) continue;
    sum += *v;
    s.min = s.count ? std::min(s.min, *v) : *v;
    s.max = s.count ? std::max(s.max, *v) : *v;
    ++s.count;
  }
  if (s.count) s.mean = sum / static_cast<double>(s.count);
  return s;
}

std::string g4(double value) { return fmt::format("{:.4g}", value); }

/// "mean [min, max]", a lone value as itself, " (k/n)" when only k of n runs had one.
std::string format_spread(const Spread& s) {
  if (s.count == 0) return "-";
  std::string out = s.count == 1 ? g4(s.mean) : fmt::format("{} [{}, {}]", g4(s.mean), g4(s.min), g4(s.max));
  if (s.count < s.total) out += fmt::format(" ({}/{})", s.count, s.total);
  return out;
}

std::string markdown_row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const auto& cell : cells) out += " " + cell + " |";
  return out + "\n";
}

std::string markdown_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string out = markdown_row(header);
  out += markdown_row(std::vector<std::string>(header.size(), "---"));
  for (const auto& row : rows) out += markdown_row(row);
  return out;
}

/// "name=value, name=value" over the keys, leaving out those in `skip`.
std::string setting_label(const std::vector<std::string>& names, const std::vector<std::string>& values,
                          const std::vector<bool>& skip = {}) {
  std::string out;
  for (size_t a = 0; a < names.size(); ++a)
    if (a >= skip.size() || !skip[a]) out += (out.empty() ? "" : ", ") + names[a] + "=" + display_value(values[a]);
  return out;
}

/// The runs of a collection grouped by setting (their values of the keys), in order.
struct Settings {
  std::vector<std::vector<std::string>> values;  // per setting
  std::vector<size_t> of_run;                    // per run: its setting
  std::vector<size_t> runs_of(size_t setting) const {
    std::vector<size_t> out;
    for (size_t r = 0; r < of_run.size(); ++r)
      if (of_run[r] == setting) out.push_back(r);
    return out;
  }
};

Settings group_settings(const RunCollection& c) {
  Settings s;
  for (const auto& run : c.runs) {
    auto it = std::find(s.values.begin(), s.values.end(), run.values);
    if (it == s.values.end()) it = s.values.insert(s.values.end(), run.values);
    s.of_run.push_back(static_cast<size_t>(it - s.values.begin()));
  }
  return s;
}

/// How many runs of `setting` ended with `status`.
size_t status_count(const RunCollection& c, const Settings& settings, size_t setting, Status status) {
  size_t hits = 0;
  for (size_t r : settings.runs_of(setting)) hits += run_status(c.runs[r].summary) == status;
  return hits;
}

/// Where train.lr is a key of its own: for each setting of the other keys, the largest
/// lr at which every run converged and the smallest at which a run diverged, and with the
/// sharpness the edge 2 / sharpness at initialization; "" for other collections.
std::string step_size_section(const RunCollection& c, const std::vector<std::string>& names, const Settings& settings) {
  const auto lr_at = std::find(c.keys.begin(), c.keys.end(), "train.lr");
  if (lr_at == c.keys.end()) return "";
  const auto lr_key = static_cast<size_t>(lr_at - c.keys.begin());
  if (c.zipped[lr_key]) return "";  // moved with another key: no grid of step sizes
  struct Arm {
    std::vector<std::string> others;  // the values of the other keys
    std::optional<double> converging, diverging;
    std::vector<std::optional<double>> stable_steps;  // 2 / sharpness at init, per run
  };
  std::vector<Arm> arms;
  for (size_t g = 0; g < settings.values.size(); ++g) {
    const auto lr = parse_number(settings.values[g][lr_key]);
    if (!lr) return "";
    std::vector<std::string> others = settings.values[g];
    others.erase(others.begin() + static_cast<long>(lr_key));
    auto arm = std::find_if(arms.begin(), arms.end(), [&](const Arm& a) { return a.others == others; });
    if (arm == arms.end()) arm = arms.insert(arms.end(), Arm{others, std::nullopt, std::nullopt, {}});
    if (status_count(c, settings, g, Status::converged) == settings.runs_of(g).size())
      arm->converging = std::max(arm->converging.value_or(*lr), *lr);
    if (status_count(c, settings, g, Status::diverged) > 0)
      arm->diverging = std::min(arm->diverging.value_or(*lr), *lr);
    for (size_t r : settings.runs_of(g)) {
      const auto sharpness = summary_number(c.runs[r].summary, "sharpness");
      if (sharpness && *sharpness > 0) arm->stable_steps.push_back(2 / *sharpness);
    }
  }
  const bool with_sharpness =
      std::any_of(arms.begin(), arms.end(), [](const Arm& a) { return !a.stable_steps.empty(); });
  std::vector<std::string> header;
  for (size_t k = 0; k < names.size(); ++k)
    if (k != lr_key) header.push_back(names[k]);
  header.emplace_back("largest lr, every run converged");
  header.emplace_back("smallest lr, a run diverged");
  if (with_sharpness) header.emplace_back("2 / sharpness at init");
  std::vector<std::vector<std::string>> rows;
  for (const auto& arm : arms) {
    std::vector<std::string> row;
    for (const auto& value : arm.others) row.push_back(display_value(value));
    row.push_back(arm.converging ? g4(*arm.converging) : "-");
    row.push_back(arm.diverging ? g4(*arm.diverging) : "-");
    if (with_sharpness) row.push_back(format_spread(spread_of(arm.stable_steps)));
    rows.push_back(std::move(row));
  }
  std::string text =
      "## Step sizes\n\nFor each setting of the other keys, the largest `train.lr` at which every run converged and "
      "the smallest at which a run diverged (`-`: none). The largest stable step lies between them, at the grid's "
      "resolution, where the first is the smaller.";
  if (with_sharpness)
    text +=
        " `2 / sharpness at init`: the largest step at which GD is stable on the quadratic model of the loss "
        "at initialization (mean [min, max] over the setting's runs). A run well above it starts beyond the edge "
        "of stability: its loss grows first, until the sharpness has fallen below 2 / lr (a catapult), or it "
        "diverges (`loss peak / init` in the tables above).";
  return text + "\n\n" + markdown_table(header, rows) + "\n";
}

/// Each metric against each numeric key, one series per setting of the other keys: the
/// usable runs' mean and range, and where a run diverged.
std::vector<MetricPlot> metric_plots(const RunCollection& c, const std::vector<std::string>& names,
                                     const Settings& settings, const std::vector<Metric>& metrics) {
  std::vector<MetricPlot> plots;
  for (size_t k = 0; k < c.keys.size(); ++k) {
    // A numeric key; not one of on and off alone (residual on against off is no curve).
    const bool numeric = std::all_of(settings.values.begin(), settings.values.end(),
                                     [&](const auto& s) { return parse_number(s[k]).has_value(); });
    const bool on_off = std::all_of(settings.values.begin(), settings.values.end(),
                                    [&](const auto& s) { return s[k] == "true" || s[k] == "false"; });
    if (!numeric || on_off) continue;
    // The series are the settings of the other keys; the zipped partners of `k` move with it.
    std::vector<bool> along(c.keys.size(), false);
    std::string partners;
    for (size_t b = 0; b < along.size(); ++b) {
      along[b] = b == k || (c.zipped[k] && c.zipped[b]);
      if (along[b] && b != k) partners += (partners.empty() ? " (with " : ", ") + names[b];
    }
    const std::string x_label = names[k] + (partners.empty() ? "" : partners + ")");
    for (const auto& [title, stem, log_y] :
         {std::tuple<const char*, const char*, bool>{"final loss", "final_loss", true},
          {"1 - rate", "one_minus_rate", true},
          {"cond_g1 init", "cond_g1_init", true}}) {
      if (std::none_of(metrics.begin(), metrics.end(), [&](const Metric& m) { return m.title == title; })) continue;
      const Metric& metric = metric_titled(metrics, title);
      MetricPlot plot{fmt::format("{}_vs_{}", stem, names[k]), x_label, title, log_y, {}, false, ""};
      for (size_t g = 0; g < settings.values.size(); ++g) {
        std::string label = setting_label(names, settings.values[g], along);
        if (label.empty()) label = title;
        auto series =
            std::find_if(plot.series.begin(), plot.series.end(), [&](const auto& s) { return s.label == label; });
        if (series == plot.series.end()) series = plot.series.insert(plot.series.end(), MetricSeries{label, {}, {}});
        const double x = *parse_number(settings.values[g][k]);
        std::vector<std::optional<double>> values;
        for (size_t r : settings.runs_of(g)) {
          if (usable(c.runs[r])) values.push_back(metric.read(c.runs[r].summary));
          if (run_status(c.runs[r].summary) == Status::diverged) series->diverged_at.push_back(x);
        }
        const Spread s = spread_of(values);
        if (s.count > 0) series->points.push_back({x, s.mean, s.min, s.max});
      }
      for (auto& series : plot.series) {
        std::sort(series.points.begin(), series.points.end());
        std::sort(series.diverged_at.begin(), series.diverged_at.end());
        series.diverged_at.erase(std::unique(series.diverged_at.begin(), series.diverged_at.end()),
                                 series.diverged_at.end());
      }
      plots.push_back(std::move(plot));
    }
  }
  return plots;
}

/// Whether the usable runs took different steps (train.lr swept, or set from each run's
/// curvature by train.lr_edge): their rates are then compared per unit step.
bool steps_differ(const RunCollection& c) {
  std::optional<double> first;
  for (const auto& run : c.runs) {
    if (!usable(run)) continue;
    const auto lr = summary_number(run.summary, "lr");
    if (!lr) continue;
    if (first && *first != *lr) return true;
    first = lr;
  }
  return false;
}

/// Claim 2 of docs/design.md: the rate is governed by the smallest singular value of the
/// attention output. Each quantity that bounds or measures the rate against sigma_min_g1
/// at initialization, over the usable runs: a table, and a plot added to `plots`. Where the
/// runs took different steps the rate is (1 - rate) / lr; the rate is also fitted within
/// each value of each swept key, so that a knob's own trend shows beside the pooled one.
std::string fits_section(const RunCollection& c, std::vector<MetricPlot>& plots) {
  using Read = std::function<std::optional<double>(const nlohmann::json&)>;
  const bool per_step = steps_differ(c);
  const Read rate = per_step ? Read([](const nlohmann::json& s) -> std::optional<double> {
    const auto r = one_minus_rate(s), lr = summary_number(s, "lr");
    return r && lr && *lr > 0 ? std::optional<double>(*r / *lr) : std::nullopt;
  })
                             : Read(one_minus_rate);
  const std::string rate_title = per_step ? "(1 - rate) / lr" : "1 - rate";
  const std::vector<std::pair<std::string, Read>> quantities = {
      {rate_title, rate},
      {"pl_ratio (median)", [](const nlohmann::json& s) { return summary_number(s, "pl_ratio_median"); }},
      {"sigma_min_phi (init)", [](const nlohmann::json& s) { return summary_number(s, "sigma_min_phi"); }},
      {"ntk_lambda_min (init)", [](const nlohmann::json& s) { return summary_number(s, "ntk_lambda_min"); }}};
  std::vector<std::vector<std::string>> rows;
  MetricPlot points{"rate_vs_sigma_min_g1",
                    "sigma_min_g1 at initialization",
                    "value",
                    true,
                    {},
                    true,
                    "rate and its bounds against sigma_min_g1, one point per run"};
  // One row per fit: over every usable run where `key` is empty, else within key = value.
  auto fit_row = [&](const std::string& title, const Read& read, const std::string& key, const std::string& value,
                     bool plotted) {
    std::vector<std::pair<std::optional<double>, std::optional<double>>> pairs;
    for (size_t r = 0; r < c.runs.size(); ++r) {
      const auto& run = c.runs[r];
      const size_t k = static_cast<size_t>(std::find(c.keys.begin(), c.keys.end(), key) - c.keys.begin());
      if (usable(run) && (key.empty() || run.values[k] == value))
        pairs.emplace_back(summary_number(run.summary, "sigma_min_g", 0), read(run.summary));
    }
    const auto fit = log_log_fit(pairs);
    if (!fit || fit->points.size() < 3) return;
    rows.push_back(
        {key.empty() ? title : fmt::format("{}, {}={}", title, display_names({key}).front(), display_value(value)),
         std::to_string(fit->points.size()), fmt::format("{:.3f}", fit->line.slope),
         fmt::format("{:.4f}", fit->line.correlation)});
    if (!plotted) return;
    MetricSeries series{fmt::format("{} (slope {:.2f})", title, fit->line.slope), {}, {}};
    for (const auto& [x, y] : fit->points) series.points.push_back({x, y, y, y});  // the fitted points
    std::sort(series.points.begin(), series.points.end());
    points.series.push_back(std::move(series));
  };
  for (const auto& [title, read] : quantities) fit_row(title, read, "", "", true);
  if (rows.empty()) return "";
  for (const auto& key : c.keys) {
    std::vector<std::string> values;
    for (const auto& run : c.runs) {
      const std::string v =
          run.values[static_cast<size_t>(std::find(c.keys.begin(), c.keys.end(), key) - c.keys.begin())];
      if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
    }
    if (values.size() < 2 || values.size() > 8) continue;
    for (const auto& value : values) fit_row(rate_title, rate, key, value, false);
  }
  if (!points.series.empty()) plots.push_back(std::move(points));
  return "## Against sigma_min_g1\n\nA power law y ~ sigma_min_g1^slope fitted by least squares of ln y on "
         "ln sigma_min_g1 (block 1, at initialization) over the runs that finished without diverging, where both "
         "are finite and positive; the correlation is that of the logarithms. The rate counts the runs that "
         "converged linearly" +
         std::string(per_step ? "; they took different steps (train.lr swept or set from the curvature), so it is "
                                "(1 - rate) / lr, the rate per unit step"
                              : "") +
         ". Below the pooled fits, the rate is fitted within each value of each swept key (3 runs or more): "
         "the trend of sigma_min_g1 with that key held.\n\n" +
         markdown_table({"quantity", "runs", "slope", "correlation"}, rows) + "\n";
}

/// Whether key `k` is a scale worth power-law fits: numeric (not on and off), three or
/// more values spanning more than a decade (widths, step sizes, init scales). A zipped key
/// counts: its partners move with it (a width with its output scale).
bool is_scale_key(const Settings& settings, size_t k) {
  std::vector<double> xs;
  for (const auto& values : settings.values) {
    if (values[k] == "true" || values[k] == "false") return false;
    const auto x = parse_number(values[k]);
    if (!x || !(*x > 0)) return false;
    if (std::find(xs.begin(), xs.end(), *x) == xs.end()) xs.push_back(*x);
  }
  return xs.size() >= 3 && *std::max_element(xs.begin(), xs.end()) > 10 * *std::min_element(xs.begin(), xs.end());
}

/// For each scale key: what the theory ties to it (the linearization's gap, how far the
/// weights move, the rate, the NTK's spectrum) fitted as powers of it over the usable runs,
/// a table and a log-log plot added to `plots`.
std::string power_laws_section(const RunCollection& c, const std::vector<std::string>& names, const Settings& settings,
                               std::vector<MetricPlot>& plots) {
  auto number = [](const char* key) {
    return [key = std::string(key)](const nlohmann::json& s) { return summary_number(s, key); };
  };
  const std::vector<std::pair<std::string, std::function<std::optional<double>(const nlohmann::json&)>>> quantities = {
      {"lin_gap_max", number("lin_gap_max")},       {"travel_attention", number("travel_attention")},
      {"travel_ffn", number("travel_ffn")},         {"1 - rate", one_minus_rate},
      {"ntk_lambda_min", number("ntk_lambda_min")}, {"ntk_lambda_max", number("ntk_lambda_max")}};
  std::string text;
  for (size_t k = 0; k < c.keys.size(); ++k) {
    if (!is_scale_key(settings, k)) continue;
    std::vector<std::vector<std::string>> rows;
    MetricPlot plot{"power_laws_vs_" + names[k],
                    names[k],
                    "value",
                    true,
                    {},
                    true,
                    "quantities against " + names[k] + ", one point per run (log-log)"};
    for (const auto& [title, read] : quantities) {
      std::vector<std::pair<std::optional<double>, std::optional<double>>> pairs;
      for (const auto& run : c.runs)
        if (usable(run)) pairs.emplace_back(parse_number(run.values[k]), read(run.summary));
      const auto fit = log_log_fit(pairs);
      if (!fit) continue;
      rows.push_back({title, std::to_string(fit->points.size()), fmt::format("{:.3f}", fit->line.slope),
                      fmt::format("{:.4f}", fit->line.correlation)});
      MetricSeries series{fmt::format("{} (slope {:.2f})", title, fit->line.slope), {}, {}};
      for (const auto& [x, y] : fit->points) series.points.push_back({x, y, y, y});
      std::sort(series.points.begin(), series.points.end());
      plot.series.push_back(std::move(series));
    }
    if (rows.empty()) continue;
    plots.push_back(std::move(plot));
    text += fmt::format(
        "## Power laws in {0}\n\nEach quantity fitted as y ~ {0}^slope by least squares of ln y on ln {0} over the "
        "runs that finished without diverging (correlation of the logarithms). `lin_gap_max`: the largest "
        "|loss - loss_lin| over the initial loss, loss_lin being GD on the model linearized at initialization; "
        "`travel_attention`, `travel_ffn`: ||theta_T - theta_0|| / ||theta_0|| over the attention's and the FFN's "
        "weights; `1 - rate`: the runs that converged linearly; `ntk_lambda_min`, `ntk_lambda_max`: the extreme "
        "eigenvalues of the NTK Gram matrix at initialization.\n\n",
        c.keys[k]);
    text += markdown_table({"quantity", "runs", "slope", "correlation"}, rows) + "\n";
  }
  return text;
}

/// The runs whose loss is drawn beside loss_lin: where a scale key exists, those at its
/// smallest and largest value, else every run; the first seed only.
std::vector<size_t> linearized_runs(const RunCollection& c, const Settings& settings) {
  std::vector<size_t> out;
  if (std::none_of(c.runs.begin(), c.runs.end(), [](const FoundRun& r) { return r.summary.contains("lin_gap_max"); }))
    return out;
  int64_t first_seed = c.runs.front().config.seed;
  for (const auto& run : c.runs) first_seed = std::min(first_seed, run.config.seed);
  std::optional<size_t> scale;
  for (size_t k = 0; k < c.keys.size() && !scale; ++k)
    if (is_scale_key(settings, k)) scale = k;
  double lo = INFINITY, hi = -INFINITY;
  if (scale)
    for (const auto& run : c.runs) {
      const double x = *parse_number(run.values[*scale]);
      lo = std::min(lo, x), hi = std::max(hi, x);
    }
  for (size_t r = 0; r < c.runs.size(); ++r) {
    if (c.runs[r].config.seed != first_seed || !c.runs[r].summary.contains("lin_gap_max")) continue;
    const double x = scale ? *parse_number(c.runs[r].values[*scale]) : 0;
    if (!scale || x == lo || x == hi) out.push_back(r);
  }
  return out;
}

/// The runs as plots.h draws them: directories relative to `report_dir`, a colour per
/// setting and a dash per seed.
std::vector<PlotRun> plot_runs(const RunCollection& c, const fs::path& report_dir, const std::vector<size_t>& group_of,
                               const std::vector<std::string>& labels) {
  std::vector<int64_t> seeds;
  for (const auto& run : c.runs) seeds.push_back(run.config.seed);
  std::sort(seeds.begin(), seeds.end());
  seeds.erase(std::unique(seeds.begin(), seeds.end()), seeds.end());
  const fs::path base = fs::absolute(report_dir).lexically_normal();
  std::vector<PlotRun> out;
  for (size_t r = 0; r < c.runs.size(); ++r) {
    const auto& run = c.runs[r];
    PlotRun p;
    p.dir = run.dir.lexically_relative(base);
    if (p.dir.empty()) p.dir = ".";
    p.label = labels[r];
    p.group = group_of[r];
    p.seed = std::to_string(run.config.seed);
    p.seed_index = static_cast<size_t>(std::find(seeds.begin(), seeds.end(), run.config.seed) - seeds.begin());
    p.diverged = run_status(run.summary) == Status::diverged;
    p.lr = run.config.train.lr;
    out.push_back(std::move(p));
  }
  return out;
}

/// report.md for `c`, in `report_dir`, with its plots.
fs::path write_collection_report(const RunCollection& c, const fs::path& report_dir, const PlotFormats& formats,
                                 std::ostream& log) {
  const auto& runs = c.runs;
  const auto names = display_names(c.keys);
  const Settings settings = group_settings(c);
  const fs::path base = fs::absolute(report_dir).lexically_normal();
  auto relative = [&](const fs::path& dir) {
    const fs::path r = dir.lexically_relative(base);
    return r.empty() ? std::string(".") : r.string();
  };

  size_t blocks = 0;
  for (const auto& run : runs)
    if (run.summary.contains("cond_g") && run.summary["cond_g"].is_array())
      blocks = std::max(blocks, run.summary["cond_g"].size());
  const bool sharpness =
      std::any_of(runs.begin(), runs.end(), [](const FoundRun& r) { return r.summary.contains("sharpness_max"); });
  const bool within_sequence = std::any_of(runs.begin(), runs.end(), [](const FoundRun& run) {
    return summary_number(run.summary, "within_sequence_loss").has_value();
  });
  const auto metrics = report_metrics(blocks, sharpness, within_sequence);

  // Per setting: the counts over all its runs, the numbers over the usable ones.
  // A stalled run (its gradient exactly zero) is counted beside the diverged ones, and like
  // them enters no mean or fit.
  const bool any_stalled =
      std::any_of(runs.begin(), runs.end(), [](const FoundRun& r) { return run_status(r.summary) == Status::stalled; });
  std::vector<std::string> header = names;
  for (const char* title : {"runs", "converged", "diverged"}) header.emplace_back(title);
  if (any_stalled) header.emplace_back("stalled");
  for (const auto& metric : metrics) header.push_back(metric.title);
  std::vector<std::vector<std::string>> rows;
  for (size_t g = 0; g < settings.values.size(); ++g) {
    std::vector<std::string> row;
    for (const auto& value : settings.values[g]) row.push_back(display_value(value));
    const size_t total = settings.runs_of(g).size();
    row.push_back(std::to_string(total));
    row.push_back(fmt::format("{}/{}", status_count(c, settings, g, Status::converged), total));
    row.push_back(fmt::format("{}/{}", status_count(c, settings, g, Status::diverged), total));
    if (any_stalled) row.push_back(fmt::format("{}/{}", status_count(c, settings, g, Status::stalled), total));
    for (const auto& metric : metrics) {
      std::vector<std::optional<double>> values;
      for (size_t r : settings.runs_of(g))
        if (usable(runs[r])) values.push_back(metric.read(runs[r].summary));
      row.push_back(format_spread(spread_of(values)));
    }
    rows.push_back(std::move(row));
  }

  std::vector<std::string> run_header = {"run", "seed", "status", "iters"};
  for (const auto& metric : metrics) run_header.push_back(metric.title);
  std::vector<std::vector<std::string>> run_rows;
  for (const auto& run : runs) {
    std::vector<std::string> row = {relative(run.dir), std::to_string(run.config.seed),
                                    run.summary.value("status", "?"),
                                    run.summary.contains("iters") ? run.summary["iters"].dump() : "-"};
    for (const auto& metric : metrics) {
      const auto v = metric.read(run.summary);
      row.push_back(v ? g4(*v) : "-");
    }
    run_rows.push_back(std::move(row));
  }

  auto plots = metric_plots(c, names, settings, metrics);
  const std::string fits_text = fits_section(c, plots);
  const std::string power_text = power_laws_section(c, names, settings, plots);

  std::string plots_text;
  if (const auto gnuplot = find_gnuplot()) {
    std::vector<std::string> labels;
    for (const auto& run : runs) {
      const std::string label = setting_label(names, run.values);
      labels.push_back(label.empty() ? c.name : label);
    }
    const auto all = plot_runs(c, report_dir, settings.of_run, labels);
    std::vector<PlotRun> linearized;
    for (size_t r : linearized_runs(c, settings)) linearized.push_back(all[r]);
    const PlotResult drawn = draw_plots(*gnuplot, report_dir, all, plots, formats, linearized);
    plots_text += fmt::format(
        "{} in plots/, each with the gnuplot script that drew it (redraw with `gnuplot plots/NAME.gp` from this "
        "directory). Colour tells the settings apart and the dash the seeds; a diverged run is marked where it left "
        "the plot, and means, bars and axis ranges leave it out. Non-finite values (cond inf where G is "
        "rank-deficient) are not drawn.\n\n",
        fmt::join(formats, ", "));
    // Markdown shows PNG and SVG; a PDF is linked.
    const auto shown = std::find_if(formats.begin(), formats.end(), [](const std::string& f) { return f != "pdf"; });
    for (const auto& name : drawn.drawn) {
      plots_text += fmt::format("### {}\n\n", name);
      if (shown != formats.end())
        plots_text += fmt::format("![{0}](plots/{0}.{1})\n\n", name, *shown);
      else
        plots_text += fmt::format("[{0}.pdf](plots/{0}.pdf)\n\n", name);
    }
    for (const auto& note : drawn.notes) plots_text += "- " + note + "\n";
    for (const auto& failure : drawn.failed) {
      plots_text += "- " + failure + "\n";
      log << "resgd report: " << failure << "\n";
    }
  } else {
    plots_text += "Plots skipped: gnuplot was not found on PATH (install gnuplot-nox, then rerun `resgd report`).\n";
    log << "resgd report: plots skipped: gnuplot was not found on PATH\n";
  }

  std::string text = fmt::format("# Report: {}\n\n{} run{}", c.name, runs.size(), runs.size() == 1 ? "" : "s");
  if (!c.keys.empty()) {
    std::string keys, zipped;
    for (size_t k = 0; k < c.keys.size(); ++k) {
      std::string& list = c.zipped[k] ? zipped : keys;
      list += (list.empty() ? "`" : c.zipped[k] ? " with `" : ", `") + c.keys[k] + "`";
    }
    if (!zipped.empty()) keys = zipped + " (zipped)" + (keys.empty() ? "" : ", " + keys);
    text += fmt::format(", {} setting{} of {}", settings.values.size(), settings.values.size() == 1 ? "" : "s", keys);
  }
  // The directories the runs came from, relative to this one: what precedes runs/ in a
  // run's path, or the run's own directory.
  std::vector<std::string> sources;
  for (const auto& run : runs) {
    fs::path source;
    for (const auto& part : fs::path(relative(run.dir))) {
      if (part == "runs") break;
      source /= part;
    }
    const std::string name = source.empty() ? "." : source.string();
    if (std::find(sources.begin(), sources.end(), name) == sources.end()) sources.push_back(name);
  }
  text += fmt::format(
      ", read from {} summary.json{}.\n\n", runs.size() == 1 ? "its" : "each run's",
      sources == std::vector<std::string>{"."} ? "" : fmt::format(" (from `{}`)", fmt::join(sources, "`, `")));
  if (!c.notes.empty()) {
    text += "Left out:\n\n";
    for (const auto& note : c.notes) text += fmt::format("- `{}`: {}\n", relative(note.path), note.why);
    text += "\n";
  }
  text +=
      "Each cell: mean over the setting's runs that finished without diverging, then [min, max]; `(k/n)`: only k "
      "of those n runs have a value (iterations to tolerance count the runs that reached it). The diverged runs "
      "are counted in their column and kept out of every mean, fit and axis range. `1 - rate`: one minus the "
      "linear rate, for the runs that converged linearly (their log loss on a line, falling at least a decade); "
      "`-` where none did. `cond_g<l>`: sigma_max / sigma_min of the attention output matrix G of block l, at "
      "initialization and at the last iteration; inf where G is rank-deficient." +
      std::string(within_sequence ? " `final / within-seq loss`: the final loss over `within_sequence_loss`, "
                                    "the least loss of a prediction that is the same for every token of a "
                                    "sequence, which is all a model can give whose attention maps the tokens "
                                    "of a sequence to one vector: about 1 where the loss stalls for that reason."
                                  : "") +
      "\n\n";
  text += "## By swept setting\n\n" + markdown_table(header, rows) + "\n";
  text += "## Runs\n\n" + markdown_table(run_header, run_rows) + "\n";
  text += step_size_section(c, names, settings);
  text += fits_text;
  text += power_text;
  text += "## Plots\n\n" + plots_text;
  const fs::path path = report_dir / "report.md";
  write_file_atomic(path, text);
  return path;
}

/// sweep.csv of a collection: its runs relative to `dir`.
void write_collection_csv(const RunCollection& c, const fs::path& dir) {
  const fs::path base = fs::absolute(dir).lexically_normal();
  std::vector<SweepCsvRow> rows;
  for (const auto& run : c.runs)
    rows.push_back({run.dir.lexically_relative(base).string(), run.values, run.config.seed, run.summary});
  write_sweep_csv(dir / "sweep.csv", c.keys, rows);
}

}  // namespace

fs::path write_report(const fs::path& dir, std::ostream& log, const PlotFormats& formats) {
  return write_collection_report(collect_runs(dir), dir, formats, log);
}

fs::path write_comparison(const std::vector<fs::path>& dirs, const fs::path& out, const PlotFormats& formats,
                          std::ostream& log) {
  const RunCollection c = merge_collections(dirs);
  // The output holds what compare writes and nothing else: a new or empty directory, or
  // one that an earlier compare wrote (its compare.json says so), never a run's own.
  std::error_code ec;
  if (fs::exists(out / "config.yaml", ec))
    throw IoError(
        fmt::format("{}: a run or sweep directory; compare writes into a directory of its own", out.string()));
  const fs::path marker = out / kCompareRecord;
  if (fs::exists(out, ec) && (!fs::is_directory(out, ec) || (!fs::is_empty(out, ec) && !fs::exists(marker, ec))))
    throw IoError(
        fmt::format("{}: exists and holds files that resgd compare did not write; choose another --out "
                    "(compare writes {}, sweep.csv, report.md and plots/ there)",
                    out.string(), kCompareRecord));
  fs::create_directories(out);
  const DirectoryLock lock(out);
  nlohmann::json record = {{"compared", nlohmann::json::array()}};
  for (const auto& dir : dirs) record["compared"].push_back(fs::absolute(dir).lexically_normal().string());
  write_file_atomic(marker, record.dump(2) + "\n");
  write_collection_csv(c, out);
  return write_collection_report(c, out, formats, log);
}

fs::path plot_column(const fs::path& dir, const ColumnRequest& request) {
  const auto gnuplot = find_gnuplot();
  if (!gnuplot) throw IoError("gnuplot was not found on PATH (install gnuplot-nox)");
  const RunCollection c = collect_runs(dir);
  if (!request.by.empty() && std::find(c.keys.begin(), c.keys.end(), request.by) == c.keys.end()) {
    const auto known = known_keys();
    if (std::find(known.begin(), known.end(), request.by) == known.end())
      throw ConfigError(
          fmt::format("--by: unknown key '{}'; the runs differ in: {}", request.by,
                      c.keys.empty() ? std::string("no key") : fmt::format("{}", fmt::join(c.keys, ", "))));
  }
  fs::path image = request.out;
  if (image.empty()) {
    std::string stem = request.y + (request.x == "iter" ? "" : "_vs_" + request.x);
    if (!request.by.empty()) stem += "_by_" + request.by;
    image = dir / "plots" / (stem + ".png");
  }
  // Colour by the value of --by (or by setting), dash by seed; labels "key=value". --by's
  // values in ascending order where they are numbers, so the legend reads 4, 8, ..., 64.
  const auto names = display_names(c.keys);
  std::vector<std::string> labels, groups;
  std::vector<size_t> group_of;
  if (!request.by.empty()) {
    std::vector<std::string> values;
    for (const auto& run : c.runs) {
      const std::string v = value_text(run.config, request.by);
      if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
    }
    if (std::all_of(values.begin(), values.end(), [](const std::string& v) { return parse_number(v).has_value(); }))
      std::stable_sort(values.begin(), values.end(),
                       [](const std::string& a, const std::string& b) { return *parse_number(a) < *parse_number(b); });
    for (const auto& v : values) groups.push_back(display_names({request.by}).front() + "=" + display_value(v));
  }
  for (const auto& run : c.runs) {
    std::string label = request.by.empty() ? setting_label(names, run.values)
                                           : display_names({request.by}).front() + "=" +
                                                 display_value(value_text(run.config, request.by));
    if (label.empty()) label = c.name;
    auto it = std::find(groups.begin(), groups.end(), label);
    if (it == groups.end()) it = groups.insert(groups.end(), label);
    group_of.push_back(static_cast<size_t>(it - groups.begin()));
    labels.push_back(label);
  }
  const fs::path folder = fs::absolute(image).parent_path();
  fs::create_directories(folder);
  ColumnPlot plot;
  plot.y = request.y;
  plot.x = request.x;
  plot.log_y = request.log_y;
  plot.title = fmt::format("{} against {}{}", request.y, request.x == "iter" ? "iteration" : request.x,
                           request.by.empty() ? "" : ", by " + request.by);
  auto runs = plot_runs(c, folder, group_of, labels);
  std::stable_sort(runs.begin(), runs.end(), [](const PlotRun& a, const PlotRun& b) { return a.group < b.group; });
  draw_column_plot(*gnuplot, folder, runs, plot, image.filename());  // the legend in the groups' order
  return image;
}

}  // namespace resgd
