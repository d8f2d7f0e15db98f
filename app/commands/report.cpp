// `resgd report`, `resgd compare`, `resgd plot`: what a run or a sweep shows, written again
// or merged. A stop while gnuplot draws kills it; the report says which plots are missing.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include "commands.h"
#include "resgd/core/files.h"
#include "resgd/core/subprocess.h"
#include "resgd/report/plots.h"
#include "resgd/report/report.h"
#include "resgd/report/summary_plot.h"
#include "resgd/run/runner.h"

namespace resgd::app {

int report_command(const Cli& cli) {
  const PlotFormats formats = parse_plot_formats(cli.formats);
  install_stop_handlers();
  // Not while a run writes there: a run or sweep directory is locked as a run locks it.
  std::optional<DirectoryLock> lock;
  if (std::filesystem::exists(std::filesystem::path(cli.report_dir) / "config.yaml")) {
    lock.emplace(cli.report_dir);
    complete_sweep_table(cli.report_dir);  // a sweep whose points ran apart (resgd submit)
  }
  const auto written = write_report(cli.report_dir, std::cerr, formats);  // before any output: it may throw
  std::cout << "report: " << written.string() << std::endl;
  return stop_signal() != 0 ? 128 + stop_signal() : 0;
}

int compare_command(const Cli& cli) {
  const PlotFormats formats = parse_plot_formats(cli.formats);
  install_stop_handlers();
  std::vector<std::filesystem::path> dirs(cli.compare_dirs.begin(), cli.compare_dirs.end());
  const auto written = write_comparison(dirs, cli.compare_out, formats);
  std::cout << "sweep table: " << (std::filesystem::path(cli.compare_out) / "sweep.csv").string() << "\n"
            << "report: " << written.string() << std::endl;
  return stop_signal() != 0 ? 128 + stop_signal() : 0;
}

namespace {

/// Runs `draw`, holding DIR's lock where the image goes into DIR/plots (as report does); a
/// stop while gnuplot draws exits 128 + the signal.
template <class Draw>
int locked_drawing(const PlotArgs& args, Draw&& draw) {
  std::optional<DirectoryLock> lock;
  if (args.out.empty() && std::filesystem::exists(std::filesystem::path(args.dir) / "config.yaml"))
    lock.emplace(args.dir);
  try {
    draw();
  } catch (const IoError& e) {
    if (stop_signal() == 0) throw;
    std::cerr << "resgd: interrupted: " << e.what() << std::endl;  // the drawing stopped with resgd
    return 128 + stop_signal();
  }
  return 0;
}

/// One point per run (summary_plot.h): the fits on stdout, the runs left out on stderr.
void plot_over_runs(const PlotArgs& args) {
  SummaryPlotRequest request;
  request.x = args.x;
  request.y = args.y;
  request.by = args.by;
  request.shape = args.shape;
  request.log_x = args.log_x;
  request.log_y = args.log_y;
  request.fit = args.fit;
  request.out = args.out;
  const SummaryPlotResult result = plot_summary(args.dir, request);
  for (const auto& note : result.notes) std::cerr << "resgd: plot: " << note << "\n";
  for (const auto& fit : result.fits)
    std::cout << fmt::format("fit {}: {} = {:.6g} + {:.6g} {}; correlation {:.4f}; {} runs at {} distinct x\n",
                             fit.group, args.log_y ? "ln y" : "y", fit.intercept, fit.slope, args.log_x ? "ln x" : "x",
                             fit.correlation, fit.runs, fit.distinct_x);
  std::cout << "plot: " << result.image.string() << std::endl;
}

}  // namespace

int plot_command(const Cli& cli) {
  parse_plot_formats(cli.formats);
  install_stop_handlers();
  const PlotArgs& args = cli.plot;
  if (draws_over_runs(args.x, args.y, !args.shape.empty(), args.log_x, args.fit))
    return locked_drawing(args, [&] { plot_over_runs(args); });
  ColumnRequest column;
  column.y = args.y;
  column.x = args.x;
  column.by = args.by;
  column.log_y = args.log_y;
  column.out = args.out;
  return locked_drawing(args, [&] { std::cout << "plot: " << plot_column(args.dir, column).string() << std::endl; });
}

}  // namespace resgd::app
