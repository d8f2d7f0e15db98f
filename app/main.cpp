// `resgd-torch`: every command, with LibTorch; `resgd` (front.cpp) hands it what needs
// tensors. The one place that catches: a configuration error exits 2, any other failure 1,
// a diverged run is a result (exit 0).
#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>

#include "cli.h"
#include "commands/commands.h"
#include "resgd/core/files.h"
#include "resgd/run/bench.h"
#include "resgd/run/runner.h"

namespace {

using Command = int (*)(const resgd::app::Cli&);
const std::map<std::string, Command> kCommands = {{"", resgd::app::run_command},  // `resgd` alone: the flagship
                                                  {"run", resgd::app::run_command},
                                                  {"submit", resgd::app::submit_command},
                                                  {"status", resgd::app::status_command},
                                                  {"validate", resgd::app::validate_command},
                                                  {"gradcheck", resgd::app::gradcheck_command},
                                                  {"bench", resgd::app::bench_command},
                                                  {"config", resgd::app::config_command},
                                                  {"metrics", resgd::app::metrics_command},
                                                  {"claims", resgd::app::claims_command},
                                                  {"report", resgd::app::report_command},
                                                  {"compare", resgd::app::compare_command},
                                                  {"plot", resgd::app::plot_command},
                                                  {"reproduce", resgd::app::reproduce_command}};

/// The exit status and message of the exception being handled.
int report_failure() {
  try {
    throw;
  } catch (const resgd::ConfigError& e) {
    std::cerr << "resgd: error: " << e.what() << std::endl;
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "resgd: error: out of memory; the run's directory was not kept (see `resgd validate` for the "
                 "estimate)"
              << std::endl;
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    if (what.find("can't allocate memory") == std::string::npos && what.find("out of memory") == std::string::npos) {
      std::cerr << "resgd: internal error: " << what << std::endl;
      return 1;
    }
    const size_t tried = what.find("you tried");  // LibTorch's CPU allocator: the size asked for
    std::cerr << "resgd: error: out of memory: " << (tried == std::string::npos ? what : what.substr(tried))
              << std::endl;
  } catch (const resgd::Stopped& e) {  // before the first step: nothing of the run was kept
    std::cerr << "resgd: interrupted: " << e.what() << "; the run had not begun, and nothing of it was kept"
              << std::endl;
    return 128 + (resgd::app::stop_signal() != 0 ? resgd::app::stop_signal() : SIGINT);
  } catch (const std::exception& e) {  // IoError and the rest
    std::cerr << "resgd: error: " << e.what() << std::endl;
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("RESGD_LOAD_PROBE")) return 0;  // `resgd` asks whether LibTorch loads under its memory limit
  // A file size limit (ulimit -f, a quota) makes a write fail with EFBIG, reported with the
  // path like a full disk, instead of killing the process mid-file.
  std::signal(SIGXFSZ, SIG_IGN);
  resgd::app::Cli cli;
  const auto app = resgd::app::make_cli(cli);
  app->get_subcommand("bench")
      ->get_option("--without")
      ->description("comma-separated tunings the tuned backend leaves out: " +
                    fmt::format("{}", fmt::join(resgd::tuning_names(), ", ")));
  if (const int code = resgd::app::parse(*app, cli, argc, argv); code >= 0) return code;
  try {
    return kCommands.at(cli.command)(cli);
  } catch (...) {
    return report_failure();
  }
}
