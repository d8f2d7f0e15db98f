// resgd submit, run --point and status without a scheduler: the scripts a submission
// writes, its refusals, and the points of a prepared sweep trained one process each (what
// the array's tasks do) giving the local sweep's results. tests/slurm_test.sh runs the same
// against a real Slurm (label slurm).
#include <gtest/gtest.h>
#include <signal.h>

#include <sstream>

#include "test_util.h"

namespace resgd {
namespace {

namespace fs = std::filesystem;
using testing::run_resgd;
using testing::slurp;
using testing::TempDir;
using testing::write_text;

const char* const kSweep =
    "name: four\n"
    "data: {num_samples: 8, seq_len: 4, dim: 8, target_dim: 2}\n"
    "model: {ffn_width: 16}\n"
    "train: {max_iters: 40, lr: 0.05}\n"
    "sweep:\n  model.residual.attention: [true, false]\n  seeds: [0, 1]\n";

/// A CSV file's text without the columns that time the run.
std::string untimed(const fs::path& csv) {
  std::stringstream in(slurp(csv)), out;
  std::vector<bool> keep;
  for (std::string line; std::getline(in, line);) {
    std::stringstream cells(line);
    std::vector<std::string> row;
    for (std::string cell; std::getline(cells, cell, ',');) row.push_back(cell);
    if (keep.empty())
      for (const auto& name : row)
        keep.push_back(name != "elapsed_s" && name != "wall_time_s" && name != "steps_per_s");
    for (size_t i = 0; i < row.size() && i < keep.size(); ++i)
      if (keep[i]) out << row[i] << ',';
    out << '\n';
  }
  return out.str();
}

TEST(Cluster, ADryRunWritesAThrottledArrayThatForwardsTheTimeLimitsSignalAndSubmitsNothing) {
  TempDir dir;
  write_text(dir / "exp.yaml", kSweep);
  const auto r = run_resgd(dir,
                           "submit exp.yaml --out sweep --dry-run --max-parallel 2 --time 1:00:00 "
                           "--partition short --cpus-per-task 2 --sbatch-arg=--mem=1G",
                           "PATH=/nonexistent");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("submitted nothing (--dry-run)"), std::string::npos) << r.out;
  const std::string script = slurp(dir / "sweep" / "slurm" / "sweep.sbatch");
  for (const std::string& line : std::vector<std::string>{
           "#SBATCH --array=0-3%2\n", "#SBATCH --signal=B:TERM@120\n", "#SBATCH --requeue\n",
           "#SBATCH --time=1:00:00\n", "#SBATCH --partition=short\n", "#SBATCH --cpus-per-task=2\n",
           "#SBATCH --mem=1G\n", "run '" + (dir / "sweep" / "config.yaml").string() + "'",
           "--point \"$SLURM_ARRAY_TASK_ID\"", "'" RESGD_BINARY "' run",
           "#SBATCH --output=" + (dir / "sweep" / "slurm" / "logs" / "%A_%a.out").string()})
    EXPECT_NE(script.find(line), std::string::npos) << line << " not in\n" << script;
  EXPECT_NE(slurp(dir / "sweep" / "slurm" / "report.sbatch").find("report '" + (dir / "sweep").string() + "'"),
            std::string::npos);
  EXPECT_EQ(slurp(dir / "sweep" / "config.yaml"), run_resgd(dir, "validate exp.yaml").out);
  EXPECT_FALSE(fs::exists(dir / "sweep" / "slurm" / "jobs"));  // no job was queued
  EXPECT_EQ(script.find("--gpus-per-task"), std::string::npos);
  // GPU nodes: the directive; the tasks keep the file's device (auto by default).
  ASSERT_EQ(run_resgd(dir, "submit exp.yaml --out gpu --dry-run --gpus-per-task 1").exit_code, 0);
  EXPECT_NE(slurp(dir / "gpu" / "slurm" / "sweep.sbatch").find("#SBATCH --gpus-per-task=1\n"), std::string::npos);
  EXPECT_NE(slurp(dir / "gpu" / "config.yaml").find("device: auto\n"), std::string::npos);
  // Nothing has run: four points not started, exit 1.
  const auto status = run_resgd(dir, "status sweep");
  EXPECT_EQ(status.exit_code, 1);
  EXPECT_NE(status.out.find("4 points: 4 not started"), std::string::npos) << status.out;
}

TEST(Cluster, WithoutSbatchABadPointOrAChangedConfigurationNothingIsQueuedOrLeftBehind) {
  TempDir dir;
  write_text(dir / "exp.yaml", kSweep);
  const auto missing = run_resgd(dir, "submit exp.yaml --out sweep", "PATH=/nonexistent");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("sbatch was not found on PATH"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(dir / "sweep"));
  // A point that cannot run (3 heads do not divide d = 8): exit 2, before any file.
  const auto bad = run_resgd(dir, "submit exp.yaml --out sweep --dry-run --set 'sweep.model.attention.heads=[1, 3]'");
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("heads"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir / "sweep"));
  // Resubmitting the directory under another configuration is refused.
  ASSERT_EQ(run_resgd(dir, "submit exp.yaml --out sweep --dry-run").exit_code, 0);
  const auto changed = run_resgd(dir, "submit exp.yaml --out sweep --dry-run --resume --set train.lr=0.1");
  EXPECT_EQ(changed.exit_code, 1);
  EXPECT_NE(changed.err.find("train.lr is "), std::string::npos) << changed.err;
  EXPECT_NE(changed.err.find("a resumed sweep may add values or seeds to its axes"), std::string::npos) << changed.err;
  const auto again = run_resgd(dir, "submit exp.yaml --out sweep --dry-run");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("not empty"), std::string::npos) << again.err;
}

TEST(Cluster, PointsTrainedOneProcessEachGiveTheLocalSweepsResultsBitForBit) {
  TempDir dir;
  write_text(dir / "exp.yaml", kSweep);
  ASSERT_EQ(run_resgd(dir, "run exp.yaml --out local --jobs 1").exit_code, 0);
  ASSERT_EQ(run_resgd(dir, "submit exp.yaml --out sweep --dry-run").exit_code, 0);
  for (int point : {3, 1, 0, 2}) {  // in any order, as a scheduler starts them
    const auto r = run_resgd(dir, "run sweep/config.yaml --out sweep --point " + std::to_string(point));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(fs::exists(dir / "sweep" / "sweep.csv")) << "sweep.csv is the report's to write";
  }
  const auto past = run_resgd(dir, "run sweep/config.yaml --out sweep --point 4");
  EXPECT_EQ(past.exit_code, 2);
  EXPECT_NE(past.err.find("the sweep has 4 points, 0 to 3"), std::string::npos) << past.err;
  // A finished point run again is returned as it is.
  const auto metrics = dir / "sweep" / "runs" / "model.residual.attention=false" / "seed=1" / "metrics.csv";
  const std::string before = slurp(metrics);
  ASSERT_EQ(run_resgd(dir, "run sweep/config.yaml --out sweep --point 3").exit_code, 0);
  EXPECT_EQ(slurp(metrics), before);

  ASSERT_EQ(run_resgd(dir, "report sweep").exit_code, 0);
  EXPECT_EQ(untimed(dir / "sweep" / "sweep.csv"), untimed(dir / "local" / "sweep.csv"));
  for (const auto& entry : fs::recursive_directory_iterator(dir / "local" / "runs")) {
    const auto relative = entry.path().lexically_relative(dir / "local");
    if (entry.path().filename() == "final.pt") {
      EXPECT_EQ(slurp(dir / "sweep" / relative), slurp(entry.path())) << relative;
    }
    if (entry.path().filename() == "metrics.csv") {
      EXPECT_EQ(untimed(dir / "sweep" / relative), untimed(entry.path())) << relative;
    }
  }
  const auto status = run_resgd(dir, "status sweep");
  EXPECT_EQ(status.exit_code, 0) << status.out;
  EXPECT_NE(status.out.find("model.residual.attention=false/seed=1  finished (max_iters)"), std::string::npos)
      << status.out;
  EXPECT_NE(status.out.find("4 points: 4 finished"), std::string::npos) << status.out;
  // Every point finished is not the whole sweep: without its table, status says so, exit 1.
  fs::remove(dir / "sweep" / "sweep.csv");
  const auto no_table = run_resgd(dir, "status sweep");
  EXPECT_EQ(no_table.exit_code, 1) << no_table.out;
  EXPECT_NE(no_table.out.find("sweep.csv is missing"), std::string::npos) << no_table.out;
}

/// A directory of stand-in Slurm commands: squeue and sacct print `queue` and `accounting`
/// and exit with `status`; sbatch records that it was called.
std::string fake_slurm(const TempDir& dir, const std::string& queue, int status) {
  fs::create_directories(dir / "bin");
  auto command = [&](const std::string& name, const std::string& body) {
    write_text(dir / "bin" / name, "#!/bin/sh\n" + body);
    fs::permissions(dir / "bin" / name, fs::perms::owner_all);
  };
  command("squeue", "printf '%s\\n' '" + queue + "'\nexit " + std::to_string(status) + "\n");
  command("sacct", "exit 1\n");
  command("sbatch", "touch '" + (dir / "sbatch-called").string() + "'\necho 99\n");
  return "PATH=" + (dir / "bin").string() + ":/usr/bin:/bin";
}

TEST(Cluster, StatusAndResumeSayWhatSlurmCannotTellAndRefuseToQueueTwice) {
  TempDir dir;
  write_text(dir / "exp.yaml", kSweep);
  ASSERT_EQ(run_resgd(dir, "submit exp.yaml --out sweep --dry-run").exit_code, 0);
  write_text(dir / "sweep" / "slurm" / "jobs", "array 77 0-3\nreport 78\n");  // as a submission records them

  // The controller down: no point is "not started", and --resume queues nothing.
  const std::string down =
      fake_slurm(dir, "slurm_load_jobs error: Unable to contact slurm controller (connect failure)", 1);
  const auto unknown = run_resgd(dir, "status sweep", down);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.out.find("Slurm could not be reached (slurm_load_jobs error: Unable to contact slurm controller"),
            std::string::npos)
      << unknown.out;
  EXPECT_NE(unknown.out.find("4 points: 4 unknown"), std::string::npos) << unknown.out;
  const auto blind = run_resgd(dir, "submit sweep --resume", down);
  EXPECT_EQ(blind.exit_code, 1);
  EXPECT_NE(blind.err.find("cannot tell whether its jobs (77) are still queued or running"), std::string::npos)
      << blind.err;
  EXPECT_FALSE(fs::exists(dir / "sbatch-called"));

  // The first array still queued: status says so, and a second submission is refused.
  const std::string queued = fake_slurm(dir, "77|0|PENDING\n77|1|RUNNING", 0);
  const auto seen = run_resgd(dir, "status sweep", queued);
  EXPECT_NE(seen.out.find("model.residual.attention=true/seed=0   queued"), std::string::npos) << seen.out;
  EXPECT_NE(seen.out.find("model.residual.attention=true/seed=1   running"), std::string::npos) << seen.out;
  const auto twice = run_resgd(dir, "submit sweep --resume", queued);
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.err.find("its jobs 77 are still queued or running"), std::string::npos) << twice.err;
  EXPECT_NE(twice.err.find("scancel 77"), std::string::npos) << twice.err;
  EXPECT_FALSE(fs::exists(dir / "sbatch-called"));

  // Every job ended (squeue no longer knows them): --resume queues the points left.
  const auto resumed =
      run_resgd(dir, "submit sweep --resume", fake_slurm(dir, "slurm_load_jobs error: Invalid job id specified", 1));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_TRUE(fs::exists(dir / "sbatch-called"));
}

TEST(Cluster, StatusShowsARunningLocalRunWithItsIterationAndHowToContinueItWhereItRan) {
  TempDir dir;
  write_text(dir / "exp.yaml",
             "name: long\ndata: {num_samples: 4, seq_len: 4, dim: 8, target_dim: 2}\nmodel: {ffn_width: 16}\n"
             "train: {lr: 0.02, max_iters: 100000, rel_tolerance: 0, checkpoint_every: 100}\n"
             "diagnostics: {every: 0}\n");
  const pid_t pid = testing::spawn_resgd(dir, {"run", "exp.yaml", "--out", "local"});
  ASSERT_TRUE(testing::wait_until([&] { return testing::line_count(dir / "local" / "metrics.csv") > 3; }));
  const auto running = run_resgd(dir, "status local");
  EXPECT_NE(running.out.find(".  running (iteration "), std::string::npos) << running.out;
  EXPECT_NE(running.out.find("pid " + std::to_string(pid) + ")"), std::string::npos) << running.out;
  kill(pid, SIGINT);
  EXPECT_EQ(testing::wait_for(pid), 130);
  const auto stopped = run_resgd(dir, "status local");
  EXPECT_NE(stopped.out.find(".  interrupted (resgd run 'local/config.yaml' --out 'local' --resume continues it)"),
            std::string::npos)
      << stopped.out;
  const auto continued = run_resgd(dir, "run local/config.yaml --out local --resume --set train.max_iters=300");
  EXPECT_EQ(continued.exit_code, 1) << "its own configuration only: " << continued.err;
}

}  // namespace
}  // namespace resgd
