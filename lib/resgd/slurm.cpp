// Sweeps on a Slurm cluster (slurm.h).
#include "resgd/slurm.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <sstream>

#include "resgd/cost.h"
#include "resgd/files.h"
#include "resgd/io.h"
#include "resgd/runner.h"

extern char** environ;

namespace resgd {
namespace fs = std::filesystem;

namespace {

/// `text` as one word for bash.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct Output {
  int status = -1;   // the exit status; -1 where the program could not be started
  std::string text;  // stdout and stderr together
};

/// Runs `argv` (looked up on PATH), waits for it, and returns its exit status and output.
Output run_program(const std::vector<std::string>& argv) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return {};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  Output out;
  char buffer[4096];
  for (ssize_t got; (got = read(pipe_fds[0], buffer, sizeof buffer)) > 0;) out.text.append(buffer, size_t(got));
  close(pipe_fds[0]);
  if (spawned != 0) return {};
  int status = 0;
  waitpid(pid, &status, 0);
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
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
  std::vector<std::string> argv = {"sbatch", "--parsable"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(script.string());
  const Output result = run_program(argv);
  std::string id = result.text.substr(0, result.text.find_first_of(";\n"));
  const bool numeric = !id.empty() && std::all_of(id.begin(), id.end(), ::isdigit);
  if (result.status != 0 || !numeric)
    throw IoError(
        fmt::format("sbatch {}: {}", script.string(),
                    result.text.empty() ? "failed" : result.text.substr(0, result.text.find_last_not_of('\n') + 1)));
  return id;
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
  const auto points = prepare_sweep_directory(config, out, options.resume);
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
      fs::remove(out / DirectoryLock::kFileName, ec);
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

/// The job ids of slurm/jobs: the arrays in order of submission.
std::vector<std::string> array_ids(const fs::path& dir) {
  std::vector<std::string> ids;
  const fs::path jobs = dir / "slurm" / "jobs";
  if (!fs::exists(jobs)) return ids;
  std::stringstream in(read_file(jobs));
  for (std::string kind, id, rest; in >> kind >> id;) {
    std::getline(in, rest);
    if (kind == "array") ids.push_back(id);
  }
  return ids;
}

/// Slurm's word on each task it knows: (array id, task) -> state, from squeue (queued and
/// running) and then sacct (ended), each where it answers.
std::map<std::pair<std::string, size_t>, std::string> scheduler_states(const std::vector<std::string>& ids) {
  std::map<std::pair<std::string, size_t>, std::string> states;
  if (ids.empty()) return states;
  auto parse = [&](const std::string& text, char separator, bool from_sacct) {
    std::stringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      std::stringstream cells(line);
      std::string job, task, state;
      if (from_sacct) {  // "123_4|COMPLETED"
        std::getline(cells, job, separator);
        std::getline(cells, state, separator);
        const size_t underscore = job.find('_');
        if (underscore == std::string::npos) continue;
        task = job.substr(underscore + 1);
        job = job.substr(0, underscore);
      } else {  // "123|4|RUNNING"
        std::getline(cells, job, separator);
        std::getline(cells, task, separator);
        std::getline(cells, state, separator);
      }
      if (task.empty() || !std::all_of(task.begin(), task.end(), ::isdigit)) continue;
      states.emplace(std::make_pair(job, std::stoul(task)), state.substr(0, state.find(' ')));
    }
  };
  for (const auto& id : ids) {
    const Output queue = run_program({"squeue", "-h", "-r", "-j", id, "-o", "%F|%K|%T"});
    if (queue.status == 0) parse(queue.text, '|', false);
  }
  const Output ended =
      run_program({"sacct", "-n", "-P", "-X", "-j", fmt::format("{}", fmt::join(ids, ",")), "-o", "JobID,State"});
  if (ended.status == 0) parse(ended.text, '|', true);
  return states;
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
  const auto ids = array_ids(dir);
  const auto states = scheduler_states(ids);
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
      if (auto it = states.find({*id, i}); !state && it != states.end()) state = it->second;
      if (!error) error = last_error(dir / "slurm" / "logs" / fmt::format("{}_{}.out", *id, i));
    }
    if (summary.is_object() && summary.value("status", "") != "interrupted") {
      verdict = "finished";
      detail = summary.value("status", "");
    } else if (state && (*state == "RUNNING" || *state == "COMPLETING" || *state == "CONFIGURING")) {
      verdict = "running";
    } else if (state && (*state == "PENDING" || *state == "REQUEUED" || *state == "REQUEUE_HOLD")) {
      verdict = "queued";
    } else if (summary.is_object() || fs::exists(run_dir / "checkpoint.pt")) {
      verdict = "interrupted";
      detail = "resgd submit DIR --resume continues it";
    } else if (error || (state && *state != "COMPLETED" && *state != "CANCELLED")) {
      verdict = "failed";
      detail = error ? *error : "Slurm says " + *state;
    } else {
      verdict = "not started";
    }
    ++counts[verdict];
    out << fmt::format("{:<{}}  {}{}\n", name, width, verdict, detail.empty() ? "" : " (" + detail + ")");
  }
  std::vector<std::string> parts;
  for (const char* verdict : {"finished", "running", "queued", "interrupted", "failed", "not started"})
    if (counts.count(verdict)) parts.push_back(fmt::format("{} {}", counts[verdict], verdict));
  out << fmt::format("{} point{}: {}\n", points.size(), points.size() == 1 ? "" : "s", fmt::join(parts, ", "));
  return counts["finished"] == points.size();
}

}  // namespace resgd
