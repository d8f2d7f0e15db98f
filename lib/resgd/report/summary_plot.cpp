// Figures over runs: points from each run's summary and configuration (summary_plot.h).
#include "resgd/report/summary_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "resgd/core/columns.h"
#include "resgd/core/config.h"
#include "resgd/core/files.h"
#include "resgd/report/claims.h"
#include "resgd/report/collection.h"
#include "resgd/report/expression.h"
#include "resgd/report/plots.h"
#include "resgd/run/summary.h"
#include "resgd/science/diagnostics.h"

namespace resgd {
namespace fs = std::filesystem;
namespace {

bool is_key(const std::string& name) {
  const auto known = known_keys();
  return std::find(known.begin(), known.end(), name) != known.end();
}

/// A name's value for one run: a key's from its configuration (true and false as 1 and 0),
/// anything else from its summary.
std::optional<double> value_for(const FoundRun& run, const std::string& name) {
  if (is_key(name)) return parse_number(value_text(run.config, name));
  return metric_value(run.summary, name).number;
}

/// A key's value for one run as the collection writes it (a gain swept through numbers as
/// a number, not "true"), or from its configuration where the runs do not differ in it.
std::string text_of(const RunCollection& c, const FoundRun& run, const std::string& key) {
  const auto k = std::find(c.keys.begin(), c.keys.end(), key);
  return k == c.keys.end() ? value_text(run.config, key) : run.values[static_cast<size_t>(k - c.keys.begin())];
}

/// The values a key takes over the runs, numbers ascending, other text in order of appearance.
std::vector<std::string> values_of(const RunCollection& c, const std::string& key) {
  std::vector<std::string> values;
  for (const auto& run : c.runs) {
    const std::string value = text_of(c, run, key);
    if (std::find(values.begin(), values.end(), value) == values.end()) values.push_back(value);
  }
  if (std::all_of(values.begin(), values.end(), [](const std::string& v) { return parse_number(v).has_value(); }))
    std::stable_sort(values.begin(), values.end(),
                     [](const std::string& a, const std::string& b) { return *parse_number(a) < *parse_number(b); });
  return values;
}

size_t index_in(const std::vector<std::string>& values, const std::string& value) {
  return static_cast<size_t>(std::find(values.begin(), values.end(), value) - values.begin());
}

void require_key(const RunCollection& c, const std::string& flag, const std::string& key) {
  if (key.empty() || is_key(key)) return;
  throw ConfigError(fmt::format("{}: unknown key '{}'; the runs differ in: {}", flag, key,
                                c.keys.empty() ? std::string("no key") : fmt::format("{}", fmt::join(c.keys, ", "))));
}

/// The least-squares line of v on u (diagnostics.h's fit_line, with its intercept); none
/// for fewer than two distinct u.
std::optional<FittedLine> fitted(const std::vector<double>& u, const std::vector<double>& v) {
  const auto line = fit_line(u, v);
  if (!line) return std::nullopt;
  FittedLine out;
  out.slope = line->slope;
  out.correlation = line->correlation;
  double mu = 0, mv = 0;
  for (size_t i = 0; i < u.size(); ++i) mu += u[i] / double(u.size()), mv += v[i] / double(u.size());
  out.intercept = mv - out.slope * mu;
  out.runs = u.size();
  std::vector<double> distinct(u);
  std::sort(distinct.begin(), distinct.end());
  out.distinct_x = static_cast<size_t>(std::unique(distinct.begin(), distinct.end()) - distinct.begin());
  return out;
}

std::string sanitized(std::string text) {
  for (char& ch : text)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '.') ch = '_';
  return text;
}

}  // namespace

bool draws_over_runs(const std::string& x, const std::string& y, bool shape, bool log_x, bool fit) {
  const auto per_iteration = [](const std::string& name) {
    const ColumnInfo* column = find_column(name);
    return column && column->files.find("metrics.csv") != std::string::npos;
  };
  return shape || log_x || fit || !per_iteration(x) || !per_iteration(y);
}

SummaryPlotResult plot_summary(const fs::path& dir, const SummaryPlotRequest& request) {
  const Expression y(request.y, "--y");
  // One point per run: where --x or --y is not a metrics.csv column, or a marker, a log x
  // axis or a fit is asked for (draws_over_runs).
  if (!is_key(request.x) && !is_summary_metric(request.x))
    throw ConfigError(
        fmt::format("--x: '{}' is no summary column, derived metric or key; one point per run is drawn "
                    "where --x or --y is not a metrics.csv column, or with --shape, --logx or --fit",
                    request.x));
  for (const auto& name : y.names())
    if (!is_key(name) && !is_summary_metric(name))
      throw ConfigError(
          fmt::format("--y: '{}' is no summary column, derived metric or key (resgd metrics --explain, "
                      "resgd config --explain)",
                      name));
  const auto gnuplot = find_gnuplot();
  if (!gnuplot) throw IoError("gnuplot was not found on PATH (install gnuplot-nox)");
  const RunCollection c = collect_runs(dir);
  require_key(c, "--by", request.by);
  require_key(c, "--shape", request.shape);

  ScatterPlot plot;
  const std::vector<std::string> colours = request.by.empty() ? std::vector<std::string>{""} : values_of(c, request.by);
  const std::vector<std::string> markers =
      request.shape.empty() ? std::vector<std::string>{""} : values_of(c, request.shape);
  const auto label = [](const std::string& key, const std::string& value) {
    return display_names({key}).front() + "=" + display_value(value);
  };
  if (!request.by.empty())
    for (const auto& v : colours) plot.colour_legend.push_back(label(request.by, v));
  if (!request.shape.empty())
    for (const auto& v : markers) plot.marker_legend.push_back(label(request.shape, v));

  SummaryPlotResult result;
  std::map<std::pair<size_t, size_t>, ScatterSeries> drawn, crossed;             // (colour, marker) -> points
  std::map<size_t, std::pair<std::vector<double>, std::vector<double>>> to_fit;  // colour -> (u, v)
  std::map<std::string, std::vector<std::string>> left_out;                      // why -> runs
  for (const auto& run : c.runs) {
    const std::string name = fs::relative(run.dir, fs::absolute(dir)).string();
    const auto x = value_for(run, request.x);
    const auto value = y.evaluate([&](const std::string& n) { return value_for(run, n); });
    if (!x || !value || !std::isfinite(*x)) {
      left_out["no value"].push_back(name);
      continue;
    }
    if ((request.log_x && *x <= 0) || (request.log_y && *value <= 0)) {
      left_out["not positive on a log axis"].push_back(name);
      continue;
    }
    const size_t colour = request.by.empty() ? 0 : index_in(colours, text_of(c, run, request.by));
    const size_t marker = request.shape.empty() ? 0 : index_in(markers, text_of(c, run, request.shape));
    const auto status = run_status(run.summary);
    const bool unstable = status == Status::diverged || status == Status::stalled || status == Status::interrupted;
    ScatterSeries& series = (unstable ? crossed : drawn)[{colour, marker}];
    series.colour = colour;
    series.marker = marker;
    series.crossed = unstable;
    series.points.emplace_back(*x, *value);
    if (unstable) continue;
    to_fit[colour].first.push_back(request.log_x ? std::log(*x) : *x);
    to_fit[colour].second.push_back(request.log_y ? std::log(*value) : *value);
  }
  for (auto* group : {&drawn, &crossed})
    for (auto& [where, series] : *group) plot.series.push_back(std::move(series));
  if (plot.series.empty())
    throw IoError(fmt::format("{}: no run has a value of both --x {} and --y {}", dir.string(), request.x, request.y));
  for (const auto& [why, runs] : left_out)
    result.notes.push_back(fmt::format("{} run{} left out ({}): {}", runs.size(), runs.size() == 1 ? "" : "s", why,
                                       fmt::join(runs, ", ")));

  for (const auto& [colour, uv] : request.fit ? to_fit : decltype(to_fit){}) {
    auto line = fitted(uv.first, uv.second);
    const std::string group = request.by.empty() ? "all runs" : label(request.by, colours[colour]);
    if (!line) {
      result.notes.push_back(fmt::format("{}: no fit (fewer than two distinct x)", group));
      continue;
    }
    line->group = group;
    const auto [lo, hi] = std::minmax_element(uv.first.begin(), uv.first.end());
    auto back = [](double t, bool log) { return log ? std::exp(t) : t; };
    ScatterLine segment;
    segment.label = fmt::format("{}: slope {:.3g}, r {:.3f}", group, line->slope, line->correlation);
    segment.colour = colour;
    segment.ends =
        std::array<double, 4>{back(*lo, request.log_x), back(line->intercept + line->slope * *lo, request.log_y),
                              back(*hi, request.log_x), back(line->intercept + line->slope * *hi, request.log_y)};
    plot.lines.push_back(segment);
    result.fits.push_back(*line);
  }

  plot.x_label = request.x;
  plot.y_label = request.y;
  plot.log_x = request.log_x;
  plot.log_y = request.log_y;
  plot.title =
      fmt::format("{} against {}{}{}", request.y, request.x, request.by.empty() ? "" : ", by " + request.by,
                  request.fit ? (request.log_x && request.log_y ? ", power laws fitted" : ", lines fitted") : "");
  result.image = request.out;
  if (result.image.empty())
    result.image = dir / "plots" /
                   (sanitized(request.y) + "_vs_" + sanitized(request.x) +
                    (request.by.empty() ? "" : "_by_" + sanitized(request.by)) + ".png");
  const fs::path folder = fs::absolute(result.image).parent_path();
  fs::create_directories(folder);
  draw_scatter_plot(*gnuplot, folder, plot, result.image.filename());
  return result;
}

}  // namespace resgd
