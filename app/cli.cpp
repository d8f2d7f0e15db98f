// Every command's options (cli.h): the one table both binaries parse with.
#include "cli.h"

#include <fmt/format.h>

#include "resgd/core/flagship.h"
#include "resgd/core/version.h"

namespace resgd::app {
namespace {

void add_experiment(CLI::App& command, ExperimentArgs& args, bool file_required) {
  auto* option = command.add_option("experiment", args.file, "experiment YAML file");
  if (file_required) option->required();
  if (!file_required) option->description("experiment YAML file (default: the embedded flagship)");
  command.add_option("--set", args.overrides, "override a key, e.g. --set model.residual.attention=false")
      ->type_name("KEY=VALUE");
  command.add_option("--device", args.device, "cpu, cuda, cuda:N or auto (same as --set device=...)");
}

void add_run(CLI::App& app, RunArgs& args) {
  auto* run = app.add_subcommand("run", "train an experiment (or every point of its sweep)");
  add_experiment(*run, args.experiment, /*file_required=*/false);
  run->add_option("--out", args.out, "output directory (default: results/<name>-<time>)");
  run->add_option("--jobs", args.jobs,
                  "sweep runs trained at once (default: the cores with the tuned backend, whose runs side by side "
                  "keep to a thread each; 1 with the reference)")
      ->check(CLI::Range(1, 256));
  run->add_flag("-v,--verbose", args.verbose, "say how the products are computed: kernels, routes, threads");
  auto* force = run->add_flag("--force", args.force, "write into an existing non-empty output directory");
  auto* resume =
      run->add_flag("--resume", args.resume,
                    "continue an interrupted run or sweep in --out (or DIR), with its own configuration unless a file "
                    "is given; finished runs are skipped")
          ->excludes(force);
  auto* resume_or_start = run->add_flag("--resume-or-start", args.resume_or_start,
                                        "as --resume, but start a new run where --out does not exist")
                              ->excludes(force)
                              ->excludes(resume);
  run->add_option("--point", args.point,
                  "train only this point (0-based) of the sweep that `resgd submit` prepared in --out; resumes it "
                  "where it stopped")
      ->check(CLI::NonNegativeNumber)
      ->excludes(force)
      ->excludes(resume)
      ->excludes(resume_or_start);
}

void add_submit(CLI::App& app, SubmitArgs& args) {
  auto* submit = app.add_subcommand(
      "submit", "queue a sweep on a Slurm cluster: one array task per point, then the report (docs/cluster.md)");
  add_experiment(*submit, args.experiment, /*file_required=*/true);
  submit->get_option("experiment")->description("experiment YAML file, or with --resume the sweep directory");
  submit->add_option("--out", args.out,
                     "the sweep directory, shared with the nodes (with --resume: DIR alone will do)");
  submit->add_option("--partition", args.partition, "sbatch --partition");
  submit->add_option("--time", args.time, "sbatch --time, each task's limit (e.g. 2:00:00)");
  submit->add_option("--cpus-per-task", args.cpus_per_task, "sbatch --cpus-per-task")->check(CLI::Range(1, 4096));
  submit
      ->add_option("--gpus-per-task", args.gpus_per_task,
                   "sbatch --gpus-per-task; tasks run with device: auto unless the file says otherwise")
      ->check(CLI::Range(1, 64));
  submit->add_option("--max-parallel", args.max_parallel, "tasks running at once at most (the array's %K)")
      ->check(CLI::Range(1, 100000));
  submit
      ->add_option("--signal-seconds", args.signal_seconds,
                   "SIGTERM this long before the time limit, so a task checkpoints and requeues itself")
      ->capture_default_str()
      ->check(CLI::Range(10, 86400));
  submit->add_option("--sbatch-arg", args.sbatch_args, "one more sbatch argument for the array (repeatable)")
      ->allow_extra_args(false);
  submit->add_flag("--dry-run", args.dry_run, "write the scripts, submit nothing");
  submit->add_flag("--resume", args.resume,
                   "queue the points of --out's sweep that have not finished (the same configuration only)");
  submit->add_option("--resgd", args.resgd, "the resgd the tasks run (default: this one)");
}

void add_bench(CLI::App& app, BenchArgs& args) {
  auto* bench = app.add_subcommand("bench", "time GD steps at fixed sizes against this machine's GEMM ceiling");
  bench->add_option("--sizes", args.sizes, "comma-separated: small, medium, large, flagship")->delimiter(',');
  bench->add_option("--dtype", args.dtype, "float32 or float64 (default: each size's own)");
  bench->add_option("--device", args.device, "cpu, cuda or cuda:N");
  bench->add_option("--repeats", args.repeats, "timed repetitions per measurement (median reported)")
      ->check(CLI::Range(1, 1000));
  bench->add_option("--backend", args.backend, "tuned or reference")->check(CLI::IsMember({"tuned", "reference"}));
  // resgd-torch names the tunings in this option's help (bench's own list).
  bench->add_option("--without", args.without, "comma-separated tunings the tuned backend leaves out")->delimiter(',');
  bench
      ->add_option("--variants", args.variants,
                   "compare these, each in a process of its own, in turns: tuned, reference, tuned-without-NAME "
                   "(comma-separated; ratios are to the first)")
      ->delimiter(',');
  bench->add_option("--rounds", args.rounds, "with --variants: rounds of every variant (median reported)")
      ->check(CLI::Range(1, 100));
}

void add_explainers(CLI::App& app, Cli& cli) {
  auto* config = app.add_subcommand("config", "print every experiment key with its default, or explain them");
  auto* defaults = config->add_flag("--defaults", cli.config_defaults, "print every key with its default value (YAML)");
  config->add_flag("--explain", cli.config_explain, "each key's type, default, allowed values and meaning")
      ->excludes(defaults);
  config->add_option("key", cli.config_key, "with --explain: this key only (e.g. train.lr)");
  auto* metrics = app.add_subcommand("metrics", "explain the columns of metrics.csv, summary.json and sweep.csv");
  metrics->add_flag("--explain", cli.metrics_explain, "each column's files and meaning, with its formula")->required();
  metrics->add_option("name", cli.metric_name, "this column only (e.g. cond_g2, pl_ratio)");
  auto* claims = app.add_subcommand("claims", "explain the claims language of an experiment file's claims.expect");
  claims->add_flag("--explain", cli.claims_explain, "every rule, bound and option, and how each can fail")->required();
}

void add_outputs(CLI::App& app, Cli& cli) {
  auto* report = app.add_subcommand("report", "write report.md and plots/ for a run, a sweep or a folder of them");
  report->add_option("dir", cli.report_dir, "a run or sweep directory of `resgd run`, or a folder holding such")
      ->required();

  auto* compare = app.add_subcommand(
      "compare", "merge runs and sweeps of one experiment that differ in swept keys: sweep.csv, report.md, plots");
  compare->add_option("dirs", cli.compare_dirs, "run or sweep directories of `resgd run`")->required()->expected(1, -1);
  compare->add_option("--out", cli.compare_out, "the directory to write into")->required();

  PlotArgs& plot_args = cli.plot;
  auto* plot = app.add_subcommand(
      "plot",
      "draw a metrics.csv column of each run against the iteration, or, with --x a summary column or key, one "
      "point per run");
  plot->add_option("dir", plot_args.dir, "a run or sweep directory, or a folder holding such")->required();
  plot->add_option("--y", plot_args.y,
                   "the column to draw (e.g. loss, cond_g1); over runs, an expression of summary columns and keys "
                   "(e.g. 'one_minus_rate / train.lr')")
      ->required();
  plot->add_option("--x", plot_args.x,
                   "along x: a metrics.csv column (default: iter), or a summary column or key for one point per run "
                   "(e.g. sigma_min_g1, data.seq_len)");
  plot->add_option("--by", plot_args.by, "colour the runs by this key's value (default: by setting)");
  plot->add_option("--shape", plot_args.shape, "over runs: the marker of each point by this key's value");
  plot->add_flag("--logx", plot_args.log_x, "over runs: a logarithmic x axis");
  plot->add_flag("--logy", plot_args.log_y, "a logarithmic y axis");
  plot->add_flag("--fit", plot_args.fit,
                 "over runs: a least-squares line per colour on the figure's axes (a power law on log-log axes), "
                 "printed and drawn; runs that diverged or stalled are not fitted");
  plot->add_option("--out", plot_args.out, "the image, .png, .svg or .pdf (default: DIR/plots/<y>[_by_<key>].png)");

  ReproduceArgs& reproduce_args = cli.reproduce;
  auto* reproduce = app.add_subcommand(
      "reproduce", "rerun every experiment file and check its claims: results.md with a verdict per claim");
  reproduce->add_option("--out", reproduce_args.out,
                        "where to write (default: results/reproduce, or results/reproduce-quick)");
  reproduce->add_flag("--quick", reproduce_args.quick, "each file's claims.quick: fewer seeds and steps, minutes");
  reproduce->add_option("--only", reproduce_args.only, "these experiments only (file stems, comma-separated)")
      ->delimiter(',');
  reproduce->add_option("--experiments", reproduce_args.experiments,
                        "the folder of experiment files (default: the bundled ones)");
  reproduce->add_option("--jobs", reproduce_args.jobs, "runs of a sweep trained at once (default: the cores)")
      ->check(CLI::Range(1, 256));

  for (const char* name : {"run", "report", "compare", "reproduce"})
    app.get_subcommand(name)
        ->add_option("--format", cli.formats, "image formats of the plots: png, svg, pdf (comma-separated)")
        ->capture_default_str();
}

}  // namespace

ExperimentConfig read_experiment(const ExperimentArgs& args) {
  ExperimentConfig config =
      args.file.empty() ? load_config_text(flagship_experiment_yaml(), kFlagshipSource) : load_config_file(args.file);
  auto assignments = args.overrides;
  if (!args.device.empty()) assignments.push_back("device=" + args.device);
  apply_overrides(config, assignments);
  return config;
}

std::unique_ptr<CLI::App> make_cli(Cli& cli) {
  auto app = std::make_unique<CLI::App>(
      "ResGD: gradient descent on Transformers with residual connections.\n"
      "With no command, runs the flagship experiment (residual vs plain).");
  app->require_subcommand(0, 1);
  add_run(*app, cli.run);
  add_submit(*app, cli.submit);
  auto* status =
      app->add_subcommand("status", "where each point of a submitted or local sweep stands; exit 0 when all finished");
  status->add_option("dir", cli.status_dir, "the sweep (or run) directory")->required();
  auto* validate = app->add_subcommand("validate", "check an experiment file and print its resolved configuration");
  add_experiment(*validate, cli.validate, /*file_required=*/true);
  auto* gradcheck = app->add_subcommand(
      "gradcheck", "compare hand-derived gradients, autograd and finite differences (float64); exit 1 on a mismatch");
  add_experiment(*gradcheck, cli.gradcheck, /*file_required=*/false);
  add_bench(*app, cli.bench);
  add_explainers(*app, cli);
  add_outputs(*app, cli);
  app->set_version_flag("--version", fmt::format("resgd {} (commit {}), LibTorch {}", resgd_version(), resgd_commit(),
                                                 libtorch_version()));
  return app;
}

int parse(CLI::App& app, Cli& cli, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;  // a bad command line is a configuration error
  }
  const auto chosen = app.get_subcommands();
  cli.command = chosen.empty() ? "" : chosen.front()->get_name();
  return -1;
}

}  // namespace resgd::app
