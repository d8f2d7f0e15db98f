// The commands of `resgd-torch`, a file each (commands/<name>.cpp): each takes the parsed
// command line and returns the exit status. Errors are thrown; main.cpp maps them to
// exit codes (a configuration error 2, any other failure 1).
#pragma once

#include <atomic>
#include <ostream>
#include <string>
#include <vector>

#include "../cli.h"
#include "resgd/core/config.h"

namespace resgd::app {

int run_command(const Cli& cli);
int submit_command(const Cli& cli);
int status_command(const Cli& cli);
int validate_command(const Cli& cli);
int gradcheck_command(const Cli& cli);
int bench_command(const Cli& cli);
int config_command(const Cli& cli);
int metrics_command(const Cli& cli);
int claims_command(const Cli& cli);
int report_command(const Cli& cli);
int compare_command(const Cli& cli);
int plot_command(const Cli& cli);
int reproduce_command(const Cli& cli);

// What several commands share (common.cpp).

/// The experiment: the file (or the flagship), then --set and --device; a tensors file's
/// own sizes read in where no sweep replaces the file.
ExperimentConfig load_experiment(const ExperimentArgs& args);
/// The first SIGINT/SIGTERM asks the run to stop after its iteration (and kills a program
/// resgd waits for); a second one stops at once.
void install_stop_handlers();
/// The signal that set subprocess.h's stop_flag(), 0 for none.
int stop_signal();
/// Refuses, before anything is written, a run (or any point of a sweep) that would need
/// more memory than this machine has; the largest run's estimate, in bytes.
double check_memory_of_every_run(const ExperimentConfig& config);
/// Sets the process up for the experiment's backend (before anything multiplies) and says
/// in one line what computes: with `verbose`, every choice.
void set_up_compute(const ExperimentConfig& config, bool verbose, std::ostream& out);

}  // namespace resgd::app
