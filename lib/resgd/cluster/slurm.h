// Sweeps on a Slurm cluster: `resgd submit` queues one array task per sweep point and a
// report job after them; `resgd status` says where each point stands (docs/cluster.md).
#pragma once

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "resgd/core/config.h"

namespace resgd {

struct SubmitOptions {
  std::filesystem::path out;                 // the sweep directory (absolute in the scripts)
  std::string partition, time;               // sbatch's --partition and --time, where given
  int cpus_per_task = 0, gpus_per_task = 0;  // 0: not asked for
  int max_parallel = 0;                      // the array's %K throttle; 0: none
  int signal_seconds = 120;                  // SIGTERM this long before the time limit
  std::vector<std::string> sbatch_args;      // passed to sbatch as they are
  bool dry_run = false;                      // write the scripts, submit nothing
  bool resume = false;                       // queue only the points not finished
  std::filesystem::path resgd;               // the executable every task runs
  std::ostream* log = nullptr;
};

/// Validates every point, prepares `options.out` (config.yaml, slurm/sweep.sbatch,
/// slurm/report.sbatch, slurm/logs/), and submits the array and the report job that
/// depends on it (afterany), recording their ids in slurm/jobs. ConfigError for a bad point
/// (nothing written), IoError where sbatch is missing or refuses. With `resume`, refuses a
/// configuration other than the directory's and queues only its unfinished points.
void submit(const ExperimentConfig& config, const SubmitOptions& options);

/// One line per point of the sweep in `dir` (finished with its status, running, queued,
/// interrupted, failed with its log's last error line, not started), then the counts:
/// from squeue and sacct where they answer, from the run directories otherwise. True when
/// every point has finished.
bool print_status(const std::filesystem::path& dir, std::ostream& out);

}  // namespace resgd
