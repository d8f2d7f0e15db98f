// `resgd report`, `resgd compare`, `resgd plot`: what a run or a sweep shows, written again
// or merged. A stop while gnuplot draws kills it; the report says which plots are missing.
#include <filesystem>
#include <iostream>
#include <optional>

#include "commands.h"
#include "resgd/core/files.h"
#include "resgd/core/subprocess.h"
#include "resgd/report/plots.h"
#include "resgd/report/report.h"
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

int plot_command(const Cli& cli) {
  parse_plot_formats(cli.formats);
  install_stop_handlers();
  const PlotArgs& args = cli.plot;
  ColumnRequest column;
  column.y = args.y;
  column.x = args.x;
  column.by = args.by;
  column.log_y = args.log_y;
  column.out = args.out;
  std::optional<DirectoryLock> lock;  // its plots/ folder, as report does
  if (column.out.empty() && std::filesystem::exists(std::filesystem::path(args.dir) / "config.yaml"))
    lock.emplace(args.dir);
  try {
    std::cout << "plot: " << plot_column(args.dir, column).string() << std::endl;
  } catch (const IoError& e) {
    if (stop_signal() == 0) throw;
    std::cerr << "resgd: interrupted: " << e.what() << std::endl;  // the drawing stopped with resgd
    return 128 + stop_signal();
  }
  return 0;
}

}  // namespace resgd::app
