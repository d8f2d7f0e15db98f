// `resgd reproduce` (reproduce.h).
#include "resgd/report/reproduce.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>

#include "resgd/compute/compute.h"
#include "resgd/compute/process.h"
#include "resgd/core/config.h"
#include "resgd/core/cost.h"
#include "resgd/core/files.h"
#include "resgd/core/version.h"
#include "resgd/report/claims.h"
#include "resgd/report/collection.h"
#include "resgd/report/report.h"
#include "resgd/run/runner.h"
#include "resgd/run/summary.h"
#include "resgd/science/data.h"
#include "resgd/science/device.h"

namespace resgd {
namespace fs = std::filesystem;
namespace {

/// One experiment file, read and checked before anything runs.
struct Experiment {
  fs::path file;
  std::string stem;
  ExperimentConfig config;
  std::vector<Expectation> claims;
  std::string statement;  // the file's leading comment
};

/// The comment block at the top of an experiment file, as one paragraph.
std::string leading_comment(const fs::path& file) {
  std::string out;
  const std::string text = read_file(file);
  size_t at = 0;
  while (at < text.size() && text[at] == '#') {
    const size_t end = text.find('\n', at);
    std::string line = text.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1);
    if (!line.empty() && line[0] == ' ') line.erase(0, 1);
    out += (out.empty() ? "" : " ") + line;
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return out;
}

Experiment read_experiment(const fs::path& file, bool quick) {
  Experiment e{file, file.stem().string(), load_config_file(file.string()), {}, leading_comment(file)};
  e.claims = parse_expectations(e.config);
  if (quick) {
    try {
      apply_overrides(e.config, e.config.claims.quick);
    } catch (const ConfigError& error) {
      throw ConfigError(fmt::format("{}: claims.quick: {}", e.config.claims.quick_at, error.what()));
    }
  }
  const auto& axes = e.config.sweep.axes;
  if (std::none_of(axes.begin(), axes.end(),
                   [](const auto& a) { return a.key == "data.path" || a.key == "data.kind"; }))
    read_data_sizes(e.config);
  for (const auto& run :
       e.config.sweep.empty() ? std::vector<ExperimentConfig>{e.config} : sweep_point_configs(e.config))
    check_memory(run, resolve_device(run).is_cpu());
  return e;
}

std::string markdown_cell(std::string text) {
  std::replace(text.begin(), text.end(), '|', '/');
  return text;
}

}  // namespace

fs::path bundled_experiments() { return bundled_data_dir() / "experiments"; }

namespace {

/// The experiment files `options` names, each read and its claims parsed: a mistake costs
/// nothing, since nothing has run yet.
std::vector<Experiment> read_experiments(const ReproduceOptions& options) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options.experiments, ec))
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  if (ec)
    throw IoError(fmt::format("{}: cannot list the experiment files: {}", options.experiments.string(), ec.message()));
  std::sort(files.begin(), files.end());
  std::vector<std::string> stems;
  for (const auto& file : files) stems.push_back(file.stem().string());
  for (const auto& name : options.only)
    if (std::find(stems.begin(), stems.end(), name) == stems.end())
      throw ConfigError(fmt::format("--only: no experiment '{}' in {}; there are: {}", name,
                                    options.experiments.string(), fmt::join(stems, ", ")));
  std::vector<Experiment> experiments;
  for (const auto& file : files)
    if (options.only.empty() || std::count(options.only.begin(), options.only.end(), file.stem().string()))
      experiments.push_back(read_experiment(file, options.quick));
  return experiments;
}

/// One experiment run (or continued) and its claims judged: its results.md section and its
/// row of the overview.
struct Judged {
  bool finished = false;
  size_t shown = 0;
  std::string section, overview_row;
};

Judged run_and_judge(const Experiment& e, const ReproduceOptions& options, std::ostream& log) {
  log << fmt::format("== {}: {} claim{}\n", e.stem, e.claims.size(), e.claims.size() == 1 ? "" : "s") << std::flush;
  RunOptions run;
  run.out = options.out / e.stem;
  run.resume = run.start_if_missing = true;  // a rerun keeps what finished
  run.jobs = options.jobs;
  run.log = &log;
  run.stop_requested = options.stop_requested;
  run.finish = [&](const std::vector<RunRecord>&) { write_report(run.out, log, options.formats); };
  const auto records = run_experiment(e.config, run);
  const size_t points = expand_sweep(e.config).size();  // 1 without a sweep
  const auto finished = static_cast<size_t>(std::count_if(
      records.begin(), records.end(), [](const RunRecord& r) { return run_status(r.summary) != Status::interrupted; }));
  Judged out;
  const bool stopped = options.stop_requested && options.stop_requested->load();
  if (stopped || finished < points) {  // a claim about a sweep is judged on the whole sweep
    out.section = fmt::format(
        "## {}\n\n**Not finished**: {} of {} runs finished before the stop; no claim of it is "
        "judged from a part of its runs. `resgd reproduce` again continues it (finished runs are "
        "kept).\n\n",
        e.stem, finished, points);
    out.overview_row = fmt::format("| [{0}](#{0}) | not finished | |\n", e.stem);
    return out;
  }
  out.finished = true;
  const RunCollection runs = collect_runs(run.out);
  std::string command = "resgd run experiments/" + e.file.filename().string();
  if (options.quick)
    for (const auto& assignment : e.config.claims.quick) command += " --set '" + assignment + "'";
  out.section = fmt::format("## {}\n\n{}\n\n`{}`\n\n| claim | verdict | measured |\n| --- | --- | --- |\n", e.stem,
                            e.statement, command);
  for (const auto& claim : e.claims) {
    const Verdict verdict = check(claim, runs);
    out.shown += verdict.shown;
    log << fmt::format("  {}: {} ({})\n", verdict.shown ? "shown" : "NOT SHOWN", claim.claim, verdict.measured);
    out.section += fmt::format("| {} | {} | {} |\n", markdown_cell(claim.claim),
                               verdict.shown ? "shown" : "**not shown**", markdown_cell(verdict.measured));
  }
  out.overview_row = fmt::format("| [{0}](#{0}) | {1} of {2} | {3} |\n", e.stem, out.shown, e.claims.size(),
                                 e.claims.empty() ? "" : markdown_cell(e.claims.front().claim));
  out.section += "\n```text\n" + format_summary_table(e.config, records) + "```\n\n";
  const fs::path figure = run.out / "plots" / (e.config.claims.figure + ".png");
  const fs::path copy = options.out / "results" / fmt::format("{}_{}.png", e.stem, e.config.claims.figure);
  if (fs::exists(figure)) {
    write_file_atomic(copy, read_file(figure));
    out.section += fmt::format("![{0}](results/{0}_{1}.png)\n\n", e.stem, e.config.claims.figure);
  }
  out.section += fmt::format("The whole report: [{0}/report.md]({0}/report.md).\n\n", e.stem);
  return out;
}

}  // namespace

bool reproduce(const ReproduceOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  const std::vector<Experiment> experiments = read_experiments(options);
  std::error_code ec;
  fs::create_directories(options.out / "results", ec);
  if (ec)
    throw IoError(fmt::format("{}: cannot create directory: {}", (options.out / "results").string(), ec.message()));
  std::ostream& log = options.log ? *options.log : std::cerr;
  size_t shown = 0, total = 0;
  std::string body;
  std::string overview = "| experiment | claims shown | its first claim |\n| --- | --- | --- |\n";
  std::vector<std::string> unfinished;  // experiments whose runs did not all finish: no verdict
  for (const auto& e : experiments) {
    if (options.stop_requested && options.stop_requested->load()) {
      unfinished.push_back(e.stem);
      overview += fmt::format("| {} | not started | |\n", e.stem);
      continue;
    }
    const Judged judged = run_and_judge(e, options, log);
    if (judged.finished) {
      shown += judged.shown;
      total += e.claims.size();
    } else {
      unfinished.push_back(e.stem);
    }
    body += judged.section;
    overview += judged.overview_row;
  }

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::time_t now = std::time(nullptr);
  char date[32] = {};
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  std::string text = fmt::format(
      "# Results\n\nEvery claim of the experiment files, rerun and checked by `resgd reproduce{}` on {} with resgd {} "
      "(commit {}), LibTorch {}, {} on {}: **{} of {} claims shown**. Each claim's rule is written in its experiment "
      "file (`claims.expect`) and checked by the code; `measured` is what the runs gave. It took {}, "
      "{} run{} at once on {} usable core{}.\n\n",
      options.quick ? " --quick" : "", date, resgd_version(), resgd_commit(), libtorch_version(),
      compute::blas_short_name(), "cpu", shown, total,
      seconds < 120 ? fmt::format("{:.0f} s", seconds) : fmt::format("{:.1f} minutes", seconds / 60), options.jobs,
      options.jobs == 1 ? "" : "s", compute::usable_cores(), compute::usable_cores() == 1 ? "" : "s");
  if (!unfinished.empty())
    text += fmt::format(
        "**Interrupted**: {} of {} experiments did not finish ({}); their claims are not judged, and "
        "the count above covers only the experiments that finished.\n\n",
        unfinished.size(), experiments.size(), fmt::join(unfinished, ", "));
  write_file_atomic(options.out / "results.md", text + overview + "\n" + body);
  log << fmt::format("{} of {} claims shown{}; {}\n", shown, total,
                     unfinished.empty() ? "" : fmt::format(" ({} experiments not finished)", unfinished.size()),
                     (options.out / "results.md").string());
  return shown == total && experiments.size() > 0 && unfinished.empty();
}

}  // namespace resgd
