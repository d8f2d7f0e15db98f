// Runs that survive interruption: checkpoints, resume, signals (bitwise on the CPU).
#include "resgd/runner.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "resgd/bench.h"
#include "resgd/io.h"
#include "resgd/system.h"
#include "test_util.h"

namespace resgd {
namespace {

using testing::TempDir;
namespace fs = std::filesystem;

ExperimentConfig resumable_experiment() {
  ExperimentConfig c = load_config_text(
      "data: {num_samples: 3, seq_len: 4, dim: 5, target_dim: 2}\n"
      "model: {ffn_width: 8}\n"
      "train: {lr: 0.05, max_iters: 40, checkpoint_every: 7}\n"
      "diagnostics: {every: 5, sharpness: true}\n",  // its summary keys span the interruption
      "resumable.yaml");
  return c;
}

/// resumable_experiment as a 2 x 2 sweep: attention residual on and off, seeds 0 and 1.
ExperimentConfig resumable_sweep() {
  ExperimentConfig c = resumable_experiment();
  apply_override(c, "sweep.model.residual.attention=[true,false]");
  apply_override(c, "sweep.seeds=[0,1]");
  return c;
}

/// metrics.csv without its elapsed_s column: the part a resumed run must reproduce exactly.
std::vector<std::vector<std::string>> metrics_without_time(const fs::path& run) {
  CsvTable table = read_csv(run / "metrics.csv");
  const size_t elapsed = table.column("elapsed_s");
  for (auto& row : table.rows) row.erase(row.begin() + static_cast<long>(elapsed));
  return table.rows;
}

void expect_same_run(const fs::path& expected, const fs::path& actual) {
  SCOPED_TRACE(actual.string());
  EXPECT_EQ(metrics_without_time(actual), metrics_without_time(expected));
  const auto a = load_tensors(expected / "tensors" / "final.pt"), b = load_tensors(actual / "tensors" / "final.pt");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  auto sa = nlohmann::json::parse(read_file(expected / "summary.json"));
  auto sb = nlohmann::json::parse(read_file(actual / "summary.json"));
  for (const char* timing : {"wall_time_s", "steps_per_s"}) sa.erase(timing), sb.erase(timing);
  EXPECT_EQ(sa, sb);
  EXPECT_FALSE(fs::exists(actual / "checkpoint.pt")) << "a finished run keeps no checkpoint";
}

TEST(Runner, InterruptedAndResumedRunEqualsUninterruptedBitwise) {
  TempDir dir;
  const ExperimentConfig config = resumable_experiment();
  RunOptions straight;
  straight.out = dir / "straight";
  run_experiment(config, straight);

  for (int64_t stop_at : {3, 14, 23}) {  // before, at and between checkpoints
    SCOPED_TRACE(stop_at);
    std::atomic<bool> stop{false};
    RunOptions first;
    first.out = dir / ("resumed" + std::to_string(stop_at));
    first.stop_requested = &stop;
    first.on_row = [&](const SweepPoint&, const IterationRow& row) { stop = stop || row.iter == stop_at; };
    run_experiment(config, first);
    const auto interrupted = nlohmann::json::parse(read_file(first.out / "summary.json"));
    EXPECT_EQ(interrupted["status"], "interrupted");
    // The row of stop_at may reach the hook a few iterations late (its diagnosis runs beside
    // GD), at the latest when the next diagnosis, every 5 iterations, starts.
    EXPECT_GE(interrupted["iters"], stop_at + 1);
    EXPECT_LE(interrupted["iters"], (stop_at / 5 + 1) * 5 + 1);
    EXPECT_TRUE(fs::exists(first.out / "checkpoint.pt"));

    RunOptions second;
    second.out = first.out;
    second.resume = true;
    run_experiment(config, second);
    expect_same_run(straight.out, first.out);
  }
}

TEST(Runner, ResumedSweepSkipsFinishedRunsAndEqualsUninterrupted) {
  TempDir dir;
  const ExperimentConfig config = resumable_sweep();
  RunOptions straight;
  straight.out = dir / "straight";
  run_experiment(config, straight);

  std::atomic<bool> stop{false};
  RunOptions first;
  first.out = dir / "resumed";
  first.stop_requested = &stop;
  first.on_row = [&](const SweepPoint& point, const IterationRow& row) {
    stop = stop || (point.seed == 1 && point.values[0].second == "true" && row.iter == 17);
  };
  EXPECT_EQ(run_experiment(config, first).size(), 2u);  // the second run was interrupted
  const fs::path finished = first.out / "runs" / "model.residual.attention=true" / "seed=0" / "summary.json";
  const auto finished_time = fs::last_write_time(finished);

  RunOptions second;
  second.out = first.out;
  second.resume = true;
  EXPECT_EQ(run_experiment(config, second).size(), 4u);
  EXPECT_EQ(fs::last_write_time(finished), finished_time) << "a finished run is not redone";
  for (const auto& point : expand_sweep(config))
    expect_same_run(straight.out / "runs" / point.dir_name(), first.out / "runs" / point.dir_name());
  EXPECT_EQ(read_csv(first.out / "sweep.csv").rows.size(), 4u);
}

TEST(Runner, EachTensorsFileOfASweepGivesItsRunsItsOwnSizes) {
  // Two data files of different shapes, no sizes in the experiment: each run trains on, and
  // its config.yaml records, its own file's N, n, d and d_y; a resume reads them again.
  TempDir dir;
  save_tensors(dir / "a.pt", {{"X", torch::randn({3, 4, 5}, torch::kFloat64)}, {"Y", torch::randn({3, 4, 2}, torch::kFloat64)}});
  save_tensors(dir / "b.pt", {{"X", torch::randn({2, 6, 3}, torch::kFloat64)}, {"Y", torch::randn({2, 6, 1}, torch::kFloat64)}});
  const ExperimentConfig config = load_config_text(
      fmt::format("data: {{kind: tensors, path: {}}}\nmodel: {{ffn_width: 8}}\ntrain: {{max_iters: 3}}\n"
                  "sweep: {{data.path: [{}, {}]}}\n",
                  (dir / "a.pt").string(), (dir / "a.pt").string(), (dir / "b.pt").string()),
      "files.yaml");
  RunOptions options;
  options.out = dir / "sweep";
  const auto records = run_experiment(config, options);
  ASSERT_EQ(records.size(), 2u);
  const std::vector<int64_t> expected[] = {{3, 4, 5, 2}, {2, 6, 3, 1}};
  for (size_t i = 0; i < records.size(); ++i) {
    const ExperimentConfig run = load_config_file((records[i].dir / "config.yaml").string());
    EXPECT_EQ((std::vector<int64_t>{run.data.num_samples, run.data.seq_len, run.data.dim, run.data.target_dim}),
              expected[i]) << records[i].dir;
    EXPECT_EQ(records[i].summary["status"], "max_iters");
    const auto init = load_tensors(records[i].dir / "tensors" / "init.pt");
    EXPECT_EQ(init.at("blocks.0.W_2").size(1), expected[i][3]);
  }
  RunOptions again = options;
  again.resume = true;
  EXPECT_EQ(run_experiment(config, again).size(), 2u);
}

TEST(Runner, ParallelSweepGivesTheSameRunsAsSequential) {
  TempDir dir;
  const ExperimentConfig config = resumable_sweep();
  RunOptions sequential;
  sequential.out = dir / "jobs1";
  RunOptions parallel = sequential;
  parallel.out = dir / "jobs2";
  parallel.jobs = 2;
  run_experiment(config, sequential);
  const auto records = run_experiment(config, parallel);
  ASSERT_EQ(records.size(), 4u);
  const auto points = expand_sweep(config);
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(records[i].point.dir_name(), points[i].dir_name()) << "records keep the sweep's order";
    expect_same_run(sequential.out / "runs" / points[i].dir_name(), parallel.out / "runs" / points[i].dir_name());
  }
}

TEST(Runner, EveryShippedExperimentRunsItsFirstIterationsDiagnosed) {
  // Every point of every file in experiments/, cut to its first iterations, each one
  // diagnosed: the spectra of collapsed features (a deep plain model) and of every other
  // regime the files set up must come out as numbers, not as a LAPACK error.
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(RESGD_SOURCE_DIR "/experiments")) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    SCOPED_TRACE(entry.path().filename().string());
    ExperimentConfig config = load_config_file(entry.path().string());
    config.train.max_iters = std::min<int64_t>(config.train.max_iters, 2);
    config.diagnostics.every = 1;
    TempDir dir;
    RunOptions options;
    options.out = dir / "out";
    options.jobs = 2;
    const auto records = run_experiment(config, options);
    EXPECT_EQ(records.size(), expand_sweep(config).size());
    for (const auto& record : records) {
      const std::string status = record.summary.at("status").get<std::string>();
      EXPECT_TRUE(status == "max_iters" || status == "converged" || status == "diverged")
          << record.point.dir_name() << ": " << status;
      const CsvTable metrics = read_csv(record.dir / "metrics.csv");
      ASSERT_FALSE(metrics.rows.empty()) << record.point.dir_name();
      EXPECT_FALSE(metrics.rows.front()[metrics.column("sigma_min_phi")].empty()) << record.point.dir_name();
    }
  }
  EXPECT_GE(files, 10u);
}

TEST(Runner, ALoneRunGetsTheLoneRunBlasThreadsAndRunsSideBySideOne) {
  // One step of 0.46 GFLOP, above the 0.25 GFLOP from which a lone run's GD step spreads
  // its products over the cores (lone_gd_blas_threads: 2 on a 2-core machine).
  ExperimentConfig config = load_config_text(
      "dtype: float32\n"
      "data: {num_samples: 64, seq_len: 16, dim: 64, target_dim: 64}\n"
      "model: {ffn_width: 512}\n"
      "train: {lr: 1.0e-6, max_iters: 1}\n"
      "diagnostics: {every: 0}\n",
      "threads.yaml");
  ASSERT_GE(gd_step_flops(config), 0.25e9);
  const int lone = lone_gd_blas_threads(gd_step_flops(config));
  std::atomic<int> fewest{1 << 20}, most{0};
  TempDir dir;
  RunOptions options;
  options.on_row = [&](const SweepPoint&, const IterationRow&) {  // on the thread that trains
    const int threads = gd_blas_threads();
    for (int seen = fewest; threads < seen && !fewest.compare_exchange_weak(seen, threads);) {}
    for (int seen = most; threads > seen && !most.compare_exchange_weak(seen, threads);) {}
  };
  options.out = dir / "single";
  run_experiment(config, options);
  EXPECT_EQ(fewest, lone);
  EXPECT_EQ(most, lone);

  apply_override(config, "sweep.seeds=[0,1]");
  fewest = 1 << 20, most = 0;
  options.out = dir / "jobs2";
  options.jobs = 2;
  run_experiment(config, options);
  EXPECT_EQ(fewest, 1);
  EXPECT_EQ(most, 1);
}

TEST(Runner, IdleBlasThreadsLeaveTheCoreSoonAfterAThreadedProduct) {
  if (!dlsym(RTLD_DEFAULT, "blas_thread_init") || std::thread::hardware_concurrency() < 2)
    GTEST_SKIP() << "needs OpenBLAS's pthread pool and two cores";
  if (std::getenv("OPENBLAS_THREAD_TIMEOUT") || std::getenv("GOTO_THREAD_TIMEOUT"))
    GTEST_SKIP() << "OPENBLAS_THREAD_TIMEOUT is set in the environment";
  // The share of 20 looks, 5 ms apart, over the 100 ms after a two-thread product in which
  // another thread of the process is runnable while this one only sleeps and looks: the
  // pool thread spinning, taking a core from a diagnosis beside the GD step. (The CPU time
  // it burns would show it too, but not on a loaded machine: a thread that yields gets
  // little CPU there.)
  auto runnable_share = [] {
    set_blas_threads(2);
    const auto A = torch::randn({512, 512});
    const auto C = A.mm(A);  // threaded: the pool thread takes half of it
    int runnable = 0;
    for (int look = 0; look < 20; ++look) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      runnable += testing::another_thread_runnable();
    }
    EXPECT_TRUE(torch::allclose(C, torch::matmul(A, A)));
    return runnable / 20.0;
  };
  const double by_default = runnable_share();  // OpenBLAS's own 2^28 cycles, about 0.1 s
  limit_blas_spin();
  EXPECT_STREQ(std::getenv("OPENBLAS_THREAD_TIMEOUT"), "20");
  const double limited = runnable_share();
  EXPECT_GE(by_default, 0.5) << "the pool thread should spin through most of the 100 ms by default";
  EXPECT_LE(limited, 0.1) << "after 2^20 cycles (0.4 ms) it should sleep";
  set_blas_threads(1);
}

TEST(Runner, TheHeapKeepsTheRoomOfAFreedGigabyte) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer replaces glibc's malloc";
#endif
  // A diagnosis on the worker holds its step's forward trace while the next steps take new
  // memory; when the trace is freed the heap's free top reached 1 GiB at the large size.
  // Given back, it would be faulted in again (11 us a page) at the next diagnosis: the
  // process never trims the heap. 1.5 GiB of address space, none of it touched.
  configure_process();
  const auto top = [] { return reinterpret_cast<uintptr_t>(sbrk(0)); };
  const uintptr_t before = top();
  constexpr size_t kBytes = size_t{3} << 29;
  char* volatile block = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(block, nullptr);
  const uintptr_t block_end = reinterpret_cast<uintptr_t>(block) + kBytes;
  // The heap grew for it (by less than 1.5 GiB where free room at its top was reused), so
  // the block ends at the heap's top: freed, it joins the free top that a trim would cut.
  ASSERT_GT(top(), before) << "the block should come from the heap (M_MMAP_MAX 0)";
  ASSERT_LE(block_end, top());
  std::free(block);
  EXPECT_GE(top(), block_end) << "the heap gave back " << ((block_end - std::min(block_end, top())) >> 20)
                              << " MiB of the freed block";
}

TEST(Runner, DefaultOutputDirectoriesAreNeverShared) {
  // Runs started in the same second (a shell loop of `resgd run ... &`) each claim their
  // own directory: 8 threads at once, then one more in the same process.
  TempDir dir;
  const fs::path before = fs::current_path();
  fs::current_path(dir.path());
  ExperimentConfig config;
  config.name = "same";
  std::vector<fs::path> claimed(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < claimed.size(); ++i)
    threads.emplace_back([&, i] { claimed[i] = create_default_output_dir(config); });
  for (auto& thread : threads) thread.join();
  claimed.push_back(create_default_output_dir(config));
  fs::current_path(before);
  std::set<fs::path> distinct(claimed.begin(), claimed.end());
  EXPECT_EQ(distinct.size(), claimed.size());
  for (const auto& path : claimed) {
    EXPECT_EQ(path.parent_path(), "results") << path;
    EXPECT_EQ(path.filename().string().rfind("same-", 0), 0u) << path;
    EXPECT_TRUE(fs::is_directory(dir / path)) << path;
    EXPECT_TRUE(fs::is_empty(dir / path)) << path;
  }
  // One made for a run that fails before writing anything is removed again.
  ExperimentConfig broken = load_config_text("data: {kind: tensors, path: missing.pt}\n", "broken.yaml");
  RunOptions options;
  options.out = dir / claimed.front();
  options.out_is_new = true;
  EXPECT_THROW(run_experiment(broken, options), IoError);
  EXPECT_FALSE(fs::exists(options.out));
}

TEST(Runner, ResumeRefusesADifferentConfiguration) {
  TempDir dir;
  ExperimentConfig config = resumable_experiment();
  RunOptions options;
  options.out = dir / "run";
  run_experiment(config, options);
  apply_override(config, "train.lr=0.01");
  options.resume = true;
  fs::remove(options.out / "summary.json");  // as if it had been killed
  try {
    run_experiment(config, options);
    FAIL() << "expected an IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("different configuration"), std::string::npos) << e.what();
  }
}

TEST(Runner, ResumeAcceptsAConfigurationWrittenBeforeAKeyExisted) {
  // model.attention.heads and model.layer_norm came later: a config.yaml without them reads
  // back with their defaults, the same configuration.
  TempDir dir;
  const ExperimentConfig config = resumable_experiment();
  RunOptions options;
  options.out = dir / "run";
  run_experiment(config, options);
  fs::remove(options.out / "summary.json");  // as if it had been killed
  std::string written = testing::slurp(options.out / "config.yaml");
  for (const std::string line : {"  layer_norm: none\n", "    heads: 1\n"}) {
    const auto at = written.find(line);
    ASSERT_NE(at, std::string::npos) << line << written;
    written.erase(at, line.size());
  }
  testing::write_text(options.out / "config.yaml", written);
  options.resume = true;
  EXPECT_NO_THROW(run_experiment(config, options));
  EXPECT_TRUE(fs::exists(options.out / "summary.json"));
  EXPECT_EQ(testing::slurp(options.out / "config.yaml"), dump_yaml(config));
}

/// Starts `resgd args...` in `dir` as a child process; returns its pid.
pid_t spawn_resgd(const TempDir& dir, std::vector<std::string> args) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.path().c_str()) != 0) _exit(126);
    std::vector<char*> argv = {const_cast<char*>(RESGD_BINARY)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(126);
    execv(RESGD_BINARY, argv.data());
    _exit(127);
  }
  return pid;
}

size_t line_count(const fs::path& path) {
  const std::string text = testing::slurp(path);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST(Runner, SigtermMidRunLeavesAConsistentResumableDirectory) {
  TempDir dir;
  testing::write_text(dir / "exp.yaml",
                      "data: {num_samples: 4, seq_len: 4, dim: 8, target_dim: 2}\nmodel: {ffn_width: 16}\n"
                      "train: {lr: 0.02, max_iters: 3000, checkpoint_every: 100}\ndiagnostics: {every: 50}\n");
  const pid_t pid = spawn_resgd(dir, {"run", "exp.yaml", "--out", "out"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (line_count(dir / "out" / "metrics.csv") < 150 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 143);
  const auto summary = nlohmann::json::parse(read_file(dir / "out" / "summary.json"));
  EXPECT_EQ(summary["status"], "interrupted");
  EXPECT_TRUE(fs::exists(dir / "out" / "checkpoint.pt"));
  const std::string metrics = testing::slurp(dir / "out" / "metrics.csv");
  EXPECT_EQ(metrics.back(), '\n') << "the last row is complete";
  for (const auto& entry : fs::recursive_directory_iterator(dir / "out"))
    EXPECT_NE(entry.path().extension(), ".tmp") << "no half-written file: " << entry.path();

  const auto resumed = testing::run_resgd(dir, "run exp.yaml --out out --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto straight = testing::run_resgd(dir, "run exp.yaml --out straight");
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  expect_same_run(dir / "straight", dir / "out");
}

}  // namespace
}  // namespace resgd
