// `resgd`, the command users run. It links no LibTorch, whose ~300 libraries need about
// 800 MB of address space just to load: --version, --help, validate, config and metrics
// answer here under any memory limit, and the rest is handed, by exec (same process, same
// arguments), to resgd-torch beside it.
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>
#include <string>

#include "cli.h"
#include "commands/commands.h"
#include "commands/validate.h"
#include "resgd/core/cost.h"
#include "resgd/core/files.h"
#include "resgd/core/subprocess.h"

namespace {

namespace fs = std::filesystem;

/// The subcommand argv names ("" for none): the first argument that is not an option.
std::string command_of(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-') return argv[i];
  return "";
}

bool asks_for(int argc, char** argv, std::initializer_list<const char*> flags) {
  for (int i = 1; i < argc; ++i)
    for (const char* flag : flags)
      if (std::strcmp(argv[i], flag) == 0) return true;
  return false;
}

/// The address space this process may use (ulimit -v), in bytes; nullopt: unlimited.
std::optional<double> address_space_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return std::nullopt;
  return static_cast<double>(limit.rlim_cur);
}

/// Becomes resgd-torch with the same arguments. Under an address-space limit it first
/// starts resgd-torch once to see that LibTorch loads (and exits) within it: past the
/// limit the loader or a library's initializer would abort, or hang, before any message.
int hand_over(char** argv) {
  const fs::path torch_binary = resgd::this_executable().parent_path() / "resgd-torch";
  if (const auto limit = address_space_limit()) {
    setenv("RESGD_LOAD_PROBE", "1", 1);
    resgd::ProgramOptions probe;
    probe.argv = {torch_binary.string()};
    probe.time_limit_s = 60;
    const auto loaded = resgd::run_program(probe);
    unsetenv("RESGD_LOAD_PROBE");
    if (!loaded.succeeded()) {
      std::cerr << fmt::format(
                       "resgd: error: LibTorch cannot be loaded within this process's address-space limit "
                       "(ulimit -v {} KiB): {} {}. It needs about 800 MiB before its first tensor; raise the "
                       "limit (`ulimit -v unlimited`). `resgd --version`, `--help`, `validate`, `config` and "
                       "`metrics` work without LibTorch.",
                       static_cast<long long>(*limit / 1024), torch_binary.filename().string(), loaded.failure())
                << std::endl;
      return 1;
    }
  }
  setenv("RESGD_EXECUTABLE", resgd::this_executable().c_str(), 1);
  execv(torch_binary.c_str(), argv);
  std::cerr << fmt::format("resgd: error: cannot start {}: {} (reinstall resgd: it is installed beside resgd)",
                           torch_binary.string(), std::strerror(errno))
            << std::endl;
  return 1;
}

/// `resgd validate` without LibTorch: where no point reads a data file (digits or a
/// tensors file, which LibTorch reads) and the device is the CPU (`auto` on a machine with
/// no NVIDIA device node). nullopt: resgd-torch must do it.
std::optional<int> validate_here(const resgd::app::Cli& cli) {
  const auto config = resgd::app::read_experiment(cli.validate);
  const bool cpu = config.device == "cpu" || (config.device == "auto" && !fs::exists("/dev/nvidiactl"));
  const auto runs = config.sweep.empty() ? std::vector<resgd::ExperimentConfig>{config} : resgd::resolve_sweep(config);
  double largest = 0;
  for (const auto& run : runs) {
    if (!cpu || run.device != config.device || run.data.path || run.data.kind != resgd::DataKind::gaussian)
      return std::nullopt;
    resgd::check_memory(run, /*device_is_cpu=*/true);
    largest = std::max(largest, resgd::estimate_memory(run).bytes());
  }
  resgd::app::print_validated(config, cli.validate.file, largest);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGXFSZ, SIG_IGN);  // as resgd-torch: a write past ulimit -f is an error with its path
  const std::string command = command_of(argc, argv);
  // bench's help names the tunings compiled into resgd-torch.
  const bool help = asks_for(argc, argv, {"-h", "--help"}) && command != "bench";
  const bool here = help || (command.empty() && asks_for(argc, argv, {"--version"})) || command == "validate" ||
                    command == "config" || command == "metrics";
  if (!here) return hand_over(argv);
  resgd::app::Cli cli;
  const auto app = resgd::app::make_cli(cli);
  if (const int code = resgd::app::parse(*app, cli, argc, argv); code >= 0) return code;
  try {
    if (cli.command == "config") return resgd::app::config_command(cli);
    if (cli.command == "metrics") return resgd::app::metrics_command(cli);
    if (cli.command == "validate")
      if (const auto code = validate_here(cli)) return *code;
    return hand_over(argv);
  } catch (const resgd::ConfigError& e) {
    std::cerr << "resgd: error: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "resgd: error: " << e.what() << std::endl;
    return 1;
  }
}
