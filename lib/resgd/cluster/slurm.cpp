// Sweeps on a Slurm cluster (slurm.h).
#include "resgd/cluster/slurm.h"

#include <fmt/format.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "resgd/core/cost.h"
#include "resgd/core/csv.h"
#include "resgd/core/files.h"
#include "resgd/core/subprocess.h"
#include "resgd/run/runner.h"
#include "resgd/run/summary.h"

namespace resgd {
namespace fs = std::filesystem;

namespace {

/// The longest an sbatch, squeue or sacct may take before it is killed: a controller that
/// does not answer must not hang resgd.
constexpr double kSlurmCommandLimitS = 60;

/// `text` as one word for bash.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// "0-7", or "0,3,5" for the points a resumed sweep still needs.
std::string array_list(const std::vector<size_t>& points) {
  const bool contiguous = points.back() - points.front() + 1 == points.size();
  if (contiguous) return fmt::format("{}-{}", points.front(), points.back());
  return fmt::format("{}", fmt::join(points, ","));
}

std::string directives(const SubmitOptions& o) {
  std::string text;
  if (!o.partition.empty()) text += "#SBATCH --partition=" + o.partition + "\n";
  if (!o.time.empty()) text += "#SBATCH --time=" + o.time + "\n";
  if (o.cpus_per_task > 0) text += fmt::format("#SBATCH --cpus-per-task={}\n", o.cpus_per_task);
  return text;
}

/// The array: one task per point, each running `resgd run --point` into the sweep's own
/// run directory. Slurm signals only this shell before the time limit (B:); the shell
/// passes it on, resgd checkpoints and exits 143, and the task puts itself back in the
/// queue, unless the job was cancelled or Slurm requeues it itself (preemption, scontrol
/// requeue), which signal resgd directly.
std::string sweep_script(const ExperimentConfig& config, const SubmitOptions& o, const fs::path& out,
                         const std::vector<size_t>& points) {
  std::string text = "#!/bin/bash\n";
  text += fmt::format("# One task per point of the sweep '{}' (written by resgd submit; rerun it with --resume).\n",
                      config.name);
  text += fmt::format("#SBATCH --job-name=resgd-{}\n", config.name);
  text += fmt::format("#SBATCH --array={}{}\n", array_list(points),
                      o.max_parallel > 0 ? fmt::format("%{}", o.max_parallel) : "");
  text += fmt::format("#SBATCH --output={}\n", (out / "slurm" / "logs" / "%A_%a.out").string());
  text += "#SBATCH --open-mode=append\n#SBATCH --requeue\n";
  text += fmt::format("#SBATCH --signal=B:TERM@{}\n", o.signal_seconds);
  text += directives(o);
  if (o.gpus_per_task > 0) text += fmt::format("#SBATCH --gpus-per-task={}\n", o.gpus_per_task);
  for (const auto& arg : o.sbatch_args) text += "#SBATCH " + arg + "\n";
  text += "set -u\n";
  text += fmt::format(
      "echo \"resgd task $SLURM_ARRAY_TASK_ID on $(hostname), run ${{SLURM_RESTART_COUNT:-0}}, $(date)\"\n");
  text += fmt::format("{} run {} --out {} --point \"$SLURM_ARRAY_TASK_ID\" &\n", quoted(o.resgd.string()),
                      quoted((out / "config.yaml").string()), quoted(out.string()));
  text +=
      "app=$!\n"
      "trap 'kill -TERM \"$app\" 2>/dev/null' TERM\n"
      "while :; do wait \"$app\"; rc=$?; kill -0 \"$app\" 2>/dev/null || break; done\n"
      "# Checkpointed on SIGTERM: back in the queue if this was the time limit's warning.\n"
      "if [ \"$rc\" = 143 ] && scontrol show job \"$SLURM_JOB_ID\" 2>/dev/null | grep -q 'JobState=RUNNING'; then\n"
      "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n"
      "fi\n"
      "exit \"$rc\"\n";
  return text;
}

/// The report, once every task has ended whatever its end (afterany): sweep.csv where
/// every point finished, then report.md and the plots of the runs that did.
std::string report_script(const ExperimentConfig& config, const SubmitOptions& o, const fs::path& out) {
  std::string text = "#!/bin/bash\n";
  text += fmt::format("# The report of the sweep '{}' (written by resgd submit).\n", config.name);
  text += fmt::format("#SBATCH --job-name=resgd-{}-report\n", config.name);
  text += fmt::format("#SBATCH --output={}\n", (out / "slurm" / "logs" / "report-%j.out").string());
  text += directives(o);
  text += fmt::format("exec {} report {}\n", quoted(o.resgd.string()), quoted(out.string()));
  return text;
}

/// sbatch ARGS SCRIPT: the job id it prints with --parsable ("123" or "123;cluster").
std::string sbatch(std::vector<std::string> args, const fs::path& script) {
  ProgramOptions program;
  program.argv = {"sbatch", "--parsable"};
  program.argv.insert(program.argv.end(), args.begin(), args.end());
  program.argv.push_back(script.string());
  program.time_limit_s = kSlurmCommandLimitS;
  const ProgramResult result = run_program(program);
  std::string id = result.output.substr(0, result.output.find_first_of(";\n"));
  const bool numeric = !id.empty() && std::all_of(id.begin(), id.end(), ::isdigit);
  if (!result.succeeded() || !numeric)
    throw IoError(fmt::format("sbatch {}: {}", script.string(),
                              result.output.empty()
                                  ? "sbatch " + result.failure()
                                  : result.output.substr(0, result.output.find_last_not_of('\n') + 1)));
  return id;
}

/// The job ids of slurm/jobs of `kind` ("array" or "report"), in order of submission.
std::vector<std::string> job_ids(const fs::path& dir, const std::string& kind) {
  std::vector<std::string> ids;
  const fs::path jobs = dir / "slurm" / "jobs";
  if (!fs::exists(jobs)) return ids;
  std::stringstream in(read_file(jobs));
  for (std::string k, id, rest; in >> k >> id;) {
    std::getline(in, rest);
    if (k == kind) ids.push_back(id);
  }
  return ids;
}

/// What Slurm says of the jobs of a sweep directory.
struct SchedulerView {
  std::map<std::pair<std::string, size_t>, std::string> task_states;  // (array id, task) -> state
  std::map<std::string, std::string> job_states;                      // report job id -> state
  bool reachable = true;
  std::string why_not;  // squeue's own words where it could not answer
};

/// Whether a Slurm state is one a job has before it ends.
bool not_ended(const std::string& state) {
  for (const char* s : {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                        "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"})
    if (state == s) return true;
  return false;
}

/// Slurm's word on `arrays`' tasks and on `reports`, from squeue (queued and running) and
/// then sacct (ended), each where it answers. squeue that fails other than for a job it no
/// longer knows means the controller could not be reached: then nothing is known of the
/// jobs still in its queue.
SchedulerView scheduler_view(const std::vector<std::string>& arrays, const std::vector<std::string>& reports) {
  SchedulerView view;
  if (arrays.empty() && reports.empty()) return view;
  auto ask = [&](std::vector<std::string> argv) {
    ProgramOptions program;
    program.argv = std::move(argv);
    program.time_limit_s = kSlurmCommandLimitS;
    return run_program(program);
  };
  auto parse = [&](const std::string& text, bool from_sacct) {
    std::stringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      std::stringstream cells(line);
      std::string job, task, state;
      if (from_sacct) {  // "123_4|COMPLETED", "124|PENDING"
        std::getline(cells, job, '|');
        std::getline(cells, state, '|');
        const size_t underscore = job.find('_');
        if (underscore != std::string::npos) task = job.substr(underscore + 1), job = job.substr(0, underscore);
      } else {  // "123|4|RUNNING"; a job that is no array: "124|N/A|PENDING"
        std::getline(cells, job, '|');
        std::getline(cells, task, '|');
        std::getline(cells, state, '|');
      }
      state = state.substr(0, state.find(' '));
      if (!task.empty() && std::all_of(task.begin(), task.end(), ::isdigit))
        view.task_states.emplace(std::make_pair(job, std::stoul(task)), state);
      else if (!job.empty())
        view.job_states.emplace(job, state);
    }
  };
  std::vector<std::string> ids = arrays;
  ids.insert(ids.end(), reports.begin(), reports.end());
  for (const auto& id : ids) {
    const ProgramResult queue = ask({"squeue", "-h", "-r", "-j", id, "-o", "%F|%K|%T"});
    if (queue.succeeded()) {
      parse(queue.output, false);
    } else if (queue.output.find("Invalid job id") == std::string::npos) {
      view.reachable = false;
      const std::string said = queue.output.substr(0, queue.output.find('\n'));
      view.why_not = said.empty() ? "squeue " + queue.failure() : said;
    }
  }
  const ProgramResult ended =
      ask({"sacct", "-n", "-P", "-X", "-j", fmt::format("{}", fmt::join(ids, ",")), "-o", "JobID,State"});
  if (ended.succeeded()) parse(ended.output, true);  // squeue's word (parsed first) wins
  return view;
}

/// Refuses `--resume` of a sweep whose earlier jobs may still run: a second array would
/// run its points twice at once, and a second report job race the first.
void require_no_job_in_flight(const fs::path& out) {
  const auto arrays = job_ids(out, "array"), reports = job_ids(out, "report");
  const SchedulerView view = scheduler_view(arrays, reports);
  if (!view.reachable)
    throw IoError(
        fmt::format("{}: cannot tell whether its jobs ({}) are still queued or running: Slurm could not be "
                    "reached ({}); --resume once `resgd status {}` can see them",
                    out.string(), fmt::join(arrays, ", "), view.why_not, quoted(out.string())));
  std::set<std::string> active;
  for (const auto& [task, state] : view.task_states)
    if (not_ended(state)) active.insert(task.first);
  for (const auto& [job, state] : view.job_states)
    if (not_ended(state)) active.insert(job);
  if (!active.empty())
    throw IoError(
        fmt::format("{}: its jobs {} are still queued or running; wait for them to end (resgd status {}) "
                    "or cancel them (scancel {}) before --resume",
                    out.string(), fmt::join(active, ", "), quoted(out.string()), fmt::join(active, " ")));
}

}  // namespace

void submit(const ExperimentConfig& config, const SubmitOptions& options) {
  // Each becomes one #SBATCH line: a line break would write a line of its own.
  auto one_line = [](const std::string& what, const std::string& value) {
    if (value.find_first_of("\n\r") != std::string::npos || (what == "--sbatch-arg" && value.rfind('-', 0) != 0))
      throw ConfigError(fmt::format("{} '{}': one sbatch option on one line{}", what, value,
                                    what == "--sbatch-arg" ? ", starting with - (e.g. --sbatch-arg=--mem=4G)" : ""));
  };
  one_line("--partition", options.partition);
  one_line("--time", options.time);
  for (const auto& arg : options.sbatch_args) one_line("--sbatch-arg", arg);
  // Every point checked before anything is written or queued.
  for (const auto& point : config.sweep.empty() ? std::vector<ExperimentConfig>{config} : sweep_point_configs(config))
    check_memory(point, /*device_is_cpu=*/false);  // the node's memory is not this machine's: sizes only
  if (!options.dry_run && !find_program("sbatch"))
    throw IoError(
        "sbatch was not found on PATH: submitting needs Slurm's client commands; --dry-run writes the "
        "scripts without submitting");
  const fs::path out = fs::absolute(options.out).lexically_normal();
  std::error_code ec;
  const bool existed = fs::exists(out, ec);
  std::optional<DirectoryLock> lock;  // held until the array is queued
  if (options.resume && !options.dry_run && fs::exists(out / "slurm" / "jobs", ec)) require_no_job_in_flight(out);
  const auto points = prepare_sweep_directory(config, out, options.resume, lock);
  std::ostream& log = *options.log;
  if (points.empty()) {
    log << fmt::format("{}: every point has finished; nothing to queue (resgd report {} writes the report)\n",
                       out.string(), quoted(out.string()));
    return;
  }
  fs::create_directories(out / "slurm" / "logs");
  const fs::path sweep_file = out / "slurm" / "sweep.sbatch", report_file = out / "slurm" / "report.sbatch";
  write_file_atomic(sweep_file, sweep_script(config, options, out, points));
  write_file_atomic(report_file, report_script(config, options, out));
  const size_t total = config.sweep.empty() ? 1 : expand_sweep(config).size();
  log << fmt::format("wrote {} ({} of {} point{}) and {}\n", sweep_file.string(), points.size(), total,
                     total == 1 ? "" : "s", report_file.string());
  if (options.dry_run) {
    log << "submitted nothing (--dry-run); to submit: sbatch " << quoted(sweep_file.string())
        << ", then sbatch --dependency=afterany:<its id> " << quoted(report_file.string()) << "\n";
    return;
  }
  std::string array_id;
  try {
    array_id = sbatch({}, sweep_file);
  } catch (const IoError&) {
    if (!options.resume) {  // nothing queued: nothing of this submission stays
      fs::remove_all(out / "slurm", ec);
      fs::remove(out / "config.yaml", ec);
      lock->remove_file();
      if (!existed) fs::remove(out, ec);
    }
    throw;
  }
  const std::string report_id = sbatch({"--dependency=afterany:" + array_id}, report_file);
  const fs::path jobs = out / "slurm" / "jobs";
  const std::string previous = fs::exists(jobs) ? read_file(jobs) : "";
  write_file_atomic(jobs, previous + fmt::format("array {} {}\nreport {}\n", array_id, array_list(points), report_id));
  log << fmt::format("submitted the array job {} ({} task{}) and the report job {} after it\n", array_id, points.size(),
                     points.size() == 1 ? "" : "s", report_id);
  log << fmt::format("follow it with: resgd status {}\n", quoted(out.string()));
}

namespace {

/// The iteration and loss of the last whole row of a run's metrics.csv, read from its end.
std::optional<std::pair<std::string, std::string>> last_metrics_row(const fs::path& metrics) {
  std::error_code ec;
  if (!fs::is_regular_file(metrics, ec)) return std::nullopt;
  std::string text;  // the file's last 64 KiB: a long run's metrics.csv is large
  try {
    const int fd = open_regular_file(metrics);
    const off_t size = ::lseek(fd, 0, SEEK_END), from = std::max<off_t>(0, size - (64 << 10));
    text.resize(static_cast<size_t>(size - from));
    const ssize_t got = ::pread(fd, text.data(), text.size(), from);
    ::close(fd);
    text.resize(got > 0 ? static_cast<size_t>(got) : 0);
  } catch (const IoError&) {
    return std::nullopt;
  }
  const size_t end = text.rfind('\n');
  if (end == std::string::npos || end == 0) return std::nullopt;
  const size_t start = text.rfind('\n', end - 1);
  if (start == std::string::npos) return std::nullopt;  // the header alone
  std::stringstream cells(text.substr(start + 1, end - start - 1));
  std::string iter, loss;
  std::getline(cells, iter, ',');
  std::getline(cells, loss, ',');
  return std::make_pair(iter, loss);
}

/// The last line of a task's log that reports an error, if any.
std::optional<std::string> last_error(const fs::path& log) {
  std::error_code ec;
  if (!fs::is_regular_file(log, ec)) return std::nullopt;
  std::stringstream lines(read_file(log));
  std::optional<std::string> found;
  for (std::string line; std::getline(lines, line);)
    if (line.find("error") != std::string::npos || line.find("Error") != std::string::npos) found = line;
  return found;
}

}  // namespace

bool print_status(const fs::path& dir, std::ostream& out) {
  const fs::path config_path = dir / "config.yaml";
  if (!fs::exists(config_path))
    throw IoError(fmt::format("{}: no config.yaml; resgd status reads a run or sweep directory", dir.string()));
  const ExperimentConfig config = load_config_file(config_path.string());
  std::vector<std::pair<std::string, fs::path>> points;  // name, run directory
  if (config.sweep.empty())
    points.emplace_back(".", dir);
  else
    for (const auto& point : expand_sweep(config))
      points.emplace_back(point.dir_name(), dir / "runs" / point.dir_name());
  const auto ids = job_ids(dir, "array");
  const SchedulerView view = scheduler_view(ids, job_ids(dir, "report"));
  if (!view.reachable)
    out << fmt::format("Slurm could not be reached ({}): what its queue holds is unknown\n", view.why_not);
  // How an interrupted point continues: where it was queued, or where it ran.
  const std::string resume =
      ids.empty() ? fmt::format("resgd run {} --out {} --resume", quoted(config_path.string()), quoted(dir.string()))
                  : fmt::format("resgd submit {} --resume", quoted(dir.string()));
  std::map<std::string, size_t> counts;
  size_t width = 0;
  for (const auto& point : points) width = std::max(width, point.first.size());
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& [name, run_dir] = points[i];
    std::string verdict, detail;
    const fs::path summary_path = run_dir / "summary.json";
    nlohmann::json summary;
    if (fs::exists(summary_path)) summary = nlohmann::json::parse(read_file(summary_path), nullptr, false);
    std::optional<std::string> state, error;  // the newest arrays' word on this point, and log
    for (auto id = ids.rbegin(); id != ids.rend(); ++id) {
      if (auto it = view.task_states.find({*id, i}); !state && it != view.task_states.end()) state = it->second;
      if (!error) error = last_error(dir / "slurm" / "logs" / fmt::format("{}_{}.out", *id, i));
    }
    const std::optional<pid_t> writer = lock_holder(run_dir);
    if (summary.is_object() && run_status(summary) != Status::interrupted) {
      verdict = "finished";
      detail = summary.value("status", "");
    } else if (writer || (state && (*state == "RUNNING" || *state == "COMPLETING" || *state == "CONFIGURING"))) {
      verdict = "running";
      if (const auto last = last_metrics_row(run_dir / "metrics.csv"))
        detail = fmt::format("iteration {}, loss {}", last->first, last->second);
      if (writer) detail += fmt::format("{}pid {}", detail.empty() ? "" : ", ", *writer);
    } else if (state && (*state == "PENDING" || *state == "REQUEUED" || *state == "REQUEUE_HOLD")) {
      verdict = "queued";
    } else if (summary.is_object() || fs::exists(run_dir / "checkpoint.pt")) {
      verdict = "interrupted";
      detail = resume + " continues it";
    } else if (error || (state && *state != "COMPLETED" && *state != "CANCELLED")) {
      verdict = "failed";
      detail = error ? *error : "Slurm says " + *state;
    } else if (!view.reachable) {
      verdict = "unknown";
      detail = "not started here; Slurm could not say whether it is queued";
    } else {
      verdict = "not started";
    }
    ++counts[verdict];
    out << fmt::format("{:<{}}  {}{}\n", name, width, verdict, detail.empty() ? "" : " (" + detail + ")");
  }
  std::vector<std::string> parts;
  for (const char* verdict : {"finished", "running", "queued", "interrupted", "failed", "unknown", "not started"})
    if (counts.count(verdict)) parts.push_back(fmt::format("{} {}", counts[verdict], verdict));
  out << fmt::format("{} point{}: {}\n", points.size(), points.size() == 1 ? "" : "s", fmt::join(parts, ", "));
  const bool all_finished = counts["finished"] == points.size();
  // Every point's run is not the whole sweep: its table, which the report job writes.
  const bool table_missing = !config.sweep.empty() && !fs::exists(dir / "sweep.csv");
  if (all_finished && table_missing)
    out << fmt::format("sweep.csv is missing (the report job did not write it): resgd report {} writes it\n",
                       quoted(dir.string()));
  return all_finished && !table_missing;
}

}  // namespace resgd
