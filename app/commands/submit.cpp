// `resgd submit`: queue a sweep on Slurm, one array task per point, then the report.
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "resgd/cluster/slurm.h"
#include "resgd/core/files.h"

namespace resgd::app {

int submit_command(const Cli& cli) {
  const SubmitArgs& args = cli.submit;
  ExperimentArgs experiment = args.experiment;
  std::string out = args.out;
  if (experiment.file.empty() || std::filesystem::is_directory(experiment.file)) {
    // `resgd submit DIR --resume`: the directory's own configuration.
    if (out.empty()) out = experiment.file;
    experiment.file = (std::filesystem::path(out) / "config.yaml").string();
  }
  if (out.empty()) throw ConfigError("submit: --out DIR is required: the sweep directory");
  const auto config = load_experiment(experiment);
  SubmitOptions options;
  options.out = out;
  options.partition = args.partition;
  options.time = args.time;
  options.cpus_per_task = args.cpus_per_task;
  options.gpus_per_task = args.gpus_per_task;
  options.max_parallel = args.max_parallel;
  options.signal_seconds = args.signal_seconds;
  options.sbatch_args = args.sbatch_args;
  options.dry_run = args.dry_run;
  options.resume = args.resume;
  options.resgd = args.resgd.empty() ? resgd_executable() : std::filesystem::absolute(args.resgd);
  options.log = &std::cout;
  submit(config, options);
  return 0;
}

}  // namespace resgd::app
