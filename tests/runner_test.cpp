// Runs that survive interruption: checkpoints, resume, signals (bitwise on the CPU).
#include "resgd/run/runner.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "resgd/compute/compute.h"
#include "resgd/compute/process.h"
#include "resgd/core/cost.h"
#include "resgd/core/csv.h"
#include "resgd/science/data.h"
#include "resgd/science/device.h"
#include "resgd/science/diagnostics.h"
#include "resgd/science/linearized.h"
#include "resgd/science/tensor_io.h"
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

/// `config` run into `out` and stopped (as by a signal) once the row of iteration `stop_at`
/// is logged.
void run_stopped_at(const ExperimentConfig& config, const fs::path& out, int64_t stop_at) {
  std::atomic<bool> stop{false};
  RunOptions first;
  first.out = out;
  first.stop_requested = &stop;
  first.on_row = [&](const SweepPoint&, const IterationRow& row) { stop = stop || row.iter == stop_at; };
  run_experiment(config, first);
}

TEST(Runner, InterruptedAndResumedRunEqualsUninterruptedBitwise) {
  TempDir dir;
  const ExperimentConfig config = resumable_experiment();
  RunOptions straight;
  straight.out = dir / "straight";
  run_experiment(config, straight);

  for (int64_t stop_at : {3, 14, 23}) {  // before, at and between checkpoints
    SCOPED_TRACE(stop_at);
    RunOptions first;
    first.out = dir / ("resumed" + std::to_string(stop_at));
    run_stopped_at(config, first.out, stop_at);
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

TEST(Runner, AStepSizeStatedAgainstTheCurvatureIsThatFractionOfTheEdgeMeasuredAtInit) {
  // The edges measured here on the run's own theta_0 and data: 2 / sharpness and
  // 2 / (c lambda_max(K)). Each point of a sweep over the fraction takes fraction x edge, and
  // summary.json and sweep.csv record both; a run interrupted and resumed measures the same
  // edge and equals the straight run bit for bit.
  TempDir dir;
  ExperimentConfig base = resumable_experiment();
  const Dataset data = make_dataset(base, torch::kCPU, torch::kFloat64);
  ResidualTransformer model(model_options(base));
  model->to(torch::kFloat64);
  std::vector<torch::Tensor> theta_0;
  for (const auto& p : model->parameters()) theta_0.push_back(p.detach().clone());
  const double edges[] = {LinearizedLoss(*model, data.X, data.Y, base.train.loss, 1.0, theta_0).edge(),
                          2 / sharpness(*model, data.X, data.Y, base.train.loss).value};
  for (const LrEdge of : {LrEdge::ntk, LrEdge::sharpness}) {
    const double edge = edges[of == LrEdge::ntk ? 0 : 1];
    SCOPED_TRACE(to_string(of));
    ExperimentConfig config = base;
    config.train.lr_edge = of;
    apply_override(config, "sweep.train.lr=[0.25,0.5]");
    RunOptions options;
    options.out = dir / to_string(of);
    const auto records = run_experiment(config, options);
    ASSERT_EQ(records.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      const double fraction = i == 0 ? 0.25 : 0.5;
      EXPECT_DOUBLE_EQ(records[i].summary["lr_edge"].get<double>(), edge);
      EXPECT_DOUBLE_EQ(records[i].summary["lr"].get<double>(), fraction * edge);
    }
    const CsvTable sweep = read_csv(options.out / "sweep.csv");
    EXPECT_DOUBLE_EQ(std::stod(sweep.rows[1][sweep.column("lr")]), 0.5 * edge);
    EXPECT_DOUBLE_EQ(std::stod(sweep.rows[1][sweep.column("lr_edge")]), edge);
  }
  ExperimentConfig config = base;
  config.train.lr_edge = LrEdge::sharpness;
  config.train.lr = 0.5;
  RunOptions straight;
  straight.out = dir / "straight";
  run_experiment(config, straight);
  const fs::path resumed = dir / "resumed";
  run_stopped_at(config, resumed, 10);
  RunOptions second;
  second.out = resumed;
  second.resume = true;
  run_experiment(config, second);
  expect_same_run(straight.out, resumed);
  // Stated as a number, the step is train.lr and no edge is measured.
  RunOptions plain;
  plain.out = dir / "plain";
  const auto summary = run_experiment(base, plain).front().summary;
  EXPECT_EQ(summary["lr"], 0.05);
  EXPECT_TRUE(summary["lr_edge"].is_null());
}

TEST(Runner, AMalformedMetricsRowBeforeTheCheckpointIsAnErrorNamingItsLine) {
  // An interrupted run's metrics.csv with one row damaged mid-file: resuming would drop every
  // row after it. Refused naming the line, the file untouched; a last line cut off without
  // its line break (a crash mid-write) is dropped and the resume equals a straight run.
  TempDir dir;
  const ExperimentConfig config = resumable_experiment();
  RunOptions straight;
  straight.out = dir / "straight";
  run_experiment(config, straight);
  RunOptions first;
  first.out = dir / "resumed";
  run_stopped_at(config, first.out, 23);
  const fs::path metrics = first.out / "metrics.csv";
  const std::string whole = testing::slurp(metrics);
  RunOptions second;
  second.out = first.out;
  second.resume = true;
  // Line 6 holds iteration 4, before the checkpoint at 21.
  const size_t line6 = [&] {
    size_t at = 0;
    for (int line = 1; line < 6; ++line) at = whole.find('\n', at) + 1;
    return at;
  }();
  const std::string damaged[] = {whole.substr(0, line6) + "4,0.5" + whole.substr(whole.find('\n', line6)),
                                 whole.substr(0, line6) + "4,x" + whole.substr(whole.find(',', line6 + 2)),
                                 whole.substr(0, line6) + "2" + whole.substr(line6 + 1)};
  const std::string why[] = {"has 2 cells where the header has", "its loss 'x", "its iteration '2' does not follow"};
  for (size_t i = 0; i < std::size(damaged); ++i) {
    testing::write_text(metrics, damaged[i]);
    testing::expect_error<IoError>([&] { run_experiment(config, second); }, metrics.string() + ":6: " + why[i]);
    EXPECT_EQ(testing::slurp(metrics), damaged[i]) << "the damaged file is left as it was";
  }
  testing::write_text(metrics, whole + "24,0.1");  // cut off mid-write
  run_experiment(config, second);
  expect_same_run(straight.out, first.out);
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

TEST(Runner, ASweepGrowsOnResumeRunningOnlyItsNewPoints) {
  // Two values of n, then the file extended by two more and a seed: --resume trains the new
  // points only, each equal to a sweep run whole. A change to what a finished point computed,
  // or a value dropped that has a run, is refused naming it; nothing is written then.
  TempDir dir;
  const std::string head =
      "name: grow\ndata: {num_samples: 3, dim: 5, target_dim: 2}\nmodel: {ffn_width: 8}\n"
      "train: {max_iters: 20, lr: 0.05}\ndiagnostics: {every: 5}\n";
  testing::write_text(dir / "exp.yaml", head + "sweep: {data.seq_len: [3, 4], seeds: [0]}\n");
  ASSERT_EQ(testing::run_resgd(dir, "run exp.yaml --out sweep").exit_code, 0);
  const fs::path first = dir / "sweep" / "runs" / "data.seq_len=3" / "seed=0";
  const std::string first_summary = testing::slurp(first / "summary.json");
  const auto first_time = fs::last_write_time(first / "summary.json");

  testing::write_text(dir / "exp.yaml", head + "sweep: {data.seq_len: [3, 4, 6, 8], seeds: [0, 1]}\n");
  const auto grown = testing::run_resgd(dir, "run exp.yaml --out sweep --resume");
  ASSERT_EQ(grown.exit_code, 0) << grown.err;
  EXPECT_EQ(fs::last_write_time(first / "summary.json"), first_time) << "a finished point is not trained again";
  EXPECT_EQ(testing::slurp(first / "summary.json"), first_summary);
  EXPECT_EQ(read_csv(dir / "sweep" / "sweep.csv").rows.size(), 8u);
  ASSERT_EQ(testing::run_resgd(dir, "run exp.yaml --out whole").exit_code, 0);
  for (const auto& point : expand_sweep(load_config_file((dir / "exp.yaml").string())))
    expect_same_run(dir / "whole" / "runs" / point.dir_name(), dir / "sweep" / "runs" / point.dir_name());

  // What a finished point computed may not change: refused, naming the key and both values.
  const std::string config_before = testing::slurp(dir / "sweep" / "config.yaml");
  auto changed = testing::run_resgd(dir, "run exp.yaml --out sweep --resume --set train.lr=0.1");
  EXPECT_EQ(changed.exit_code, 1);
  EXPECT_NE(changed.err.find("config.yaml: train.lr is 0.05 there and 0.1 now"), std::string::npos) << changed.err;
  // Nor may a value with runs be dropped.
  testing::write_text(dir / "exp.yaml", head + "sweep: {data.seq_len: [3, 6, 8], seeds: [0, 1]}\n");
  changed = testing::run_resgd(dir, "run exp.yaml --out sweep --resume");
  EXPECT_EQ(changed.exit_code, 1);
  EXPECT_NE(changed.err.find("runs/data.seq_len=4/seed=0 of the sweep written there is not a point of the new sweep"),
            std::string::npos)
      << changed.err;
  EXPECT_EQ(testing::slurp(dir / "sweep" / "config.yaml"), config_before);
}

TEST(Runner, EachTensorsFileOfASweepGivesItsRunsItsOwnSizes) {
  // Two data files of different shapes, no sizes in the experiment: each run trains on, and
  // its config.yaml records, its own file's N, n, d and d_y; a resume reads them again.
  TempDir dir;
  save_tensors(dir / "a.pt",
               {{"X", torch::randn({3, 4, 5}, torch::kFloat64)}, {"Y", torch::randn({3, 4, 2}, torch::kFloat64)}});
  save_tensors(dir / "b.pt",
               {{"X", torch::randn({2, 6, 3}, torch::kFloat64)}, {"Y", torch::randn({2, 6, 1}, torch::kFloat64)}});
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
              expected[i])
        << records[i].dir;
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

TEST(Runner, ALoneRunTakesTheCoresAndRunsSideBySideOneThreadEach) {
  // One step of 0.46 GFLOP, above the quarter GFLOP from which a lone run's products are
  // split over the cores; a sweep with --jobs 2 trains two runs at once, a thread each.
  ExperimentConfig config = load_config_text(
      "dtype: float32\n"
      "data: {num_samples: 64, seq_len: 16, dim: 64, target_dim: 64}\n"
      "model: {ffn_width: 512}\n"
      "train: {lr: 1.0e-6, max_iters: 1}\n"
      "diagnostics: {every: 0}\n",
      "threads.yaml");
  ASSERT_GE(gd_step_flops(config), kThreadedStepFlops);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<int> fewest{1 << 20}, most{0};
  TempDir dir;
  RunOptions options;
  options.on_row = [&](const SweepPoint&, const IterationRow&) {  // on the thread that trains
    const int threads = compute::policy().threads;
    for (int seen = fewest; threads < seen && !fewest.compare_exchange_weak(seen, threads);) {
    }
    for (int seen = most; threads > seen && !most.compare_exchange_weak(seen, threads);) {
    }
  };
  options.out = dir / "single";
  run_experiment(config, options);
  EXPECT_EQ(fewest, cores);
  EXPECT_EQ(most, cores);

  apply_override(config, "sweep.seeds=[0,1]");
  fewest = 1 << 20, most = 0;
  options.out = dir / "jobs2";
  options.jobs = 2;
  run_experiment(config, options);
  EXPECT_EQ(fewest, 1);
  EXPECT_EQ(most, 1);
}

TEST(OnThisMachine, TheHeapKeepsTheRoomOfAFreedGigabyte) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer replaces glibc's malloc";
#endif
  // A diagnosis on the worker holds its step's forward trace while the next steps take new
  // memory; when the trace is freed the heap's free top reached 1 GiB at the large size.
  // Given back, it would be faulted in again (11 us a page) at the next diagnosis: the
  // process never trims the heap. 1.5 GiB of address space, none of it touched.
  compute::configure_process(Backend::tuned);
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
  EXPECT_THROW(run_experiment(broken, options), ConfigError);  // the file named by data.path is missing
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
  testing::expect_error<IoError>([&] { run_experiment(config, options); }, "different configuration");
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
TEST(Runner, SigtermMidRunLeavesAConsistentResumableDirectory) {
  TempDir dir;
  testing::write_text(dir / "exp.yaml",
                      "data: {num_samples: 4, seq_len: 4, dim: 8, target_dim: 2}\nmodel: {ffn_width: 16}\n"
                      "train: {lr: 0.02, max_iters: 3000, checkpoint_every: 100}\ndiagnostics: {every: 50}\n");
  const pid_t pid = testing::spawn_resgd(dir, {"run", "exp.yaml", "--out", "out"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (testing::line_count(dir / "out" / "metrics.csv") < 150 && std::chrono::steady_clock::now() < deadline)
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

  // `run --resume DIR` continues with DIR's own configuration (its config.yaml), not the
  // flagship's; a second directory named beside it is refused.
  const auto two = testing::run_resgd(dir, "run --resume out --out elsewhere");
  EXPECT_EQ(two.exit_code, 2) << two.err;
  EXPECT_NE(two.err.find("two directories"), std::string::npos) << two.err;
  const auto resumed = testing::run_resgd(dir, "run --resume out");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("experiment 'example' -> out"), std::string::npos) << resumed.out;
  const auto straight = testing::run_resgd(dir, "run exp.yaml --out straight");
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  expect_same_run(dir / "straight", dir / "out");
}

// ---------------------------------------------------------------------------------------
// Nothing lost: one writer per directory, resume that checks before it trusts, failures
// that leave no half-written run.

const char* kLongRun =
    "name: long\ndata: {num_samples: 4, seq_len: 4, dim: 8, target_dim: 2}\nmodel: {ffn_width: 16}\n"
    "train: {lr: 0.02, max_iters: 100000, rel_tolerance: 0}\ndiagnostics: {every: 0}\n";

TEST(Runner, ASecondRunOrResumeInADirectoryInUseIsRefusedNamingTheHolder) {
  TempDir dir;
  testing::write_text(dir / "exp.yaml", kLongRun);
  const pid_t first = testing::spawn_resgd(dir, {"run", "exp.yaml", "--out", "c"});
  ASSERT_TRUE(testing::wait_until([&] { return testing::line_count(dir / "c" / "metrics.csv") > 3; }));
  const std::string held = "resgd: error: c: in use by another resgd process (pid " + std::to_string(first) + ")";
  for (const std::string command : {"run exp.yaml --out c --force", "run exp.yaml --out c --resume", "report c"}) {
    const auto second = testing::run_resgd(dir, command);
    EXPECT_EQ(second.exit_code, 1) << command << ": " << second.err;
    EXPECT_NE(second.err.find(held), std::string::npos) << command << ": " << second.err;
  }
  kill(first, SIGINT);
  EXPECT_EQ(testing::wait_for(first), 130);
  const auto summary = nlohmann::json::parse(read_file(dir / "c" / "summary.json"));
  EXPECT_EQ(summary["name"], "long") << "the first run's files only";
  EXPECT_EQ(summary["status"], "interrupted");
}

TEST(Runner, TwoRunsStartedAtOnceLeaveOneWholeRun) {
  // Two different experiments into one new directory at the same instant: one writes the
  // run, the other is refused before it writes anything, whichever wins.
  TempDir dir;
  testing::write_text(dir / "a.yaml", "name: a\ndata: {num_samples: 2, seq_len: 3, dim: 4}\ntrain: {max_iters: 30}\n");
  testing::write_text(dir / "b.yaml", "name: b\ndata: {num_samples: 2, seq_len: 3, dim: 4}\ntrain: {max_iters: 60}\n");
  for (int attempt = 0; attempt < 3; ++attempt) {
    fs::remove_all(dir / "c");
    const pid_t a = testing::spawn_resgd(dir, {"run", "a.yaml", "--out", "c"});
    const pid_t b = testing::spawn_resgd(dir, {"run", "b.yaml", "--out", "c"});
    const int exit_a = testing::wait_for(a), exit_b = testing::wait_for(b);
    ASSERT_EQ(std::min(exit_a, exit_b), 0);
    ASSERT_EQ(std::max(exit_a, exit_b), 1) << "the second writer is refused";
    const std::string winner = exit_a == 0 ? "a" : "b";
    EXPECT_NE(read_file(dir / "c" / "config.yaml").find("name: " + winner + "\n"), std::string::npos);
    const auto summary = nlohmann::json::parse(read_file(dir / "c" / "summary.json"));
    EXPECT_EQ(summary["name"], winner);
    const CsvTable metrics = read_csv(dir / "c" / "metrics.csv");
    EXPECT_EQ(metrics.rows.size(), summary["iters"].get<size_t>() + 1) << "one run's rows, none of the other's";
    for (const auto& row : metrics.rows) EXPECT_EQ(row.size(), metrics.columns.size());
    EXPECT_TRUE(fs::exists(dir / "c" / DirectoryLock::kFileName)) << "the refused writer removed the lock file";
  }
}

TEST(Runner, AWriterRefusedTheLockTouchesNothingOfItsHolder) {
  // A holds c's lock and is paused before it has written anything else (as while it loads
  // its data). B, refused, must leave c and its lock file as they are: were they removed,
  // C would take a new lock and train a whole run that A then writes over.
  TempDir dir;
  testing::write_text(dir / "a.yaml", "name: a\ndata: {num_samples: 2, seq_len: 3, dim: 4}\ntrain: {max_iters: 30}\n");
  testing::write_text(dir / "b.yaml", "name: b\ndata: {num_samples: 2, seq_len: 3, dim: 4}\ntrain: {max_iters: 60}\n");
  const fs::path lock_file = dir / "c" / DirectoryLock::kFileName;
  const pid_t a = testing::spawn_resgd(dir, {"run", "a.yaml", "--out", "c"});
  ASSERT_TRUE(testing::wait_until(
      [&] { return fs::exists(lock_file) && testing::slurp(lock_file) == std::to_string(a) + "\n"; }));
  kill(a, SIGSTOP);
  for (const std::string command : {"run b.yaml --out c", "run b.yaml --out c --force"}) {
    const auto refused = testing::run_resgd(dir, command);
    EXPECT_EQ(refused.exit_code, 1) << command << ": " << refused.err;
    EXPECT_NE(refused.err.find("in use by another resgd process (pid " + std::to_string(a) + ")"), std::string::npos)
        << command << ": " << refused.err;
    ASSERT_TRUE(fs::exists(lock_file)) << command << " removed the holder's lock file";
    EXPECT_EQ(testing::slurp(lock_file), std::to_string(a) + "\n") << command;
  }
  kill(a, SIGCONT);
  EXPECT_EQ(testing::wait_for(a), 0);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "c" / "summary.json"))["name"], "a");
}

TEST(Runner, ARunOfASweepHeldByAnotherWriterStopsTheSweepNamingIt) {
  // A cluster's tasks each lock the run they write: a sweep resumed beside one is refused
  // at that run instead of writing it twice.
  TempDir dir;
  const ExperimentConfig config = resumable_sweep();
  RunOptions options;
  options.out = dir / "sweep";
  run_experiment(config, options);
  const fs::path held = options.out / "runs" / expand_sweep(config)[2].dir_name();
  fs::remove(held / "summary.json");  // as if its task were still running
  const DirectoryLock task(held);
  options.resume = true;
  testing::expect_error<IoError>([&] { run_experiment(config, options); },
                                 held.string() + ": in use by another resgd process");
}

TEST(Runner, AFinishedRunResumesOnlyUnderItsOwnConfigurationAndData) {
  TempDir dir;
  const ExperimentConfig config = resumable_experiment();
  RunOptions options;
  options.out = dir / "run";
  run_experiment(config, options);
  const std::string summary = testing::slurp(options.out / "summary.json");
  options.resume = true;
  ExperimentConfig other = config;
  apply_override(other, "train.lr=0.5");
  testing::expect_error<IoError>([&] { run_experiment(other, options); },
                                 "config.yaml: was written by a different configuration");
  EXPECT_EQ(run_experiment(config, options).front().summary, nlohmann::json::parse(summary)) << "the same: as it was";
  EXPECT_EQ(testing::slurp(options.out / "summary.json"), summary);
  EXPECT_EQ(nlohmann::json::parse(summary)["data_hash"].get<std::string>().size(), 16u);
}

/// A run on a tensors file, stopped at iteration 15 with its checkpoint at 14.
ExperimentConfig stopped_tensors_run(const TempDir& dir, const fs::path& out) {
  auto generator = make_generator(7, "test");
  save_tensors(dir / "data.pt", {{"X", torch::randn({3, 4, 5}, generator, torch::kFloat64)},
                                 {"Y", torch::randn({3, 4, 2}, generator, torch::kFloat64)}});
  ExperimentConfig config = resumable_experiment();
  apply_overrides(config, {"data.kind=tensors", "data.path=" + (dir / "data.pt").string()});
  std::atomic<bool> stop{false};
  RunOptions options;
  options.out = out;
  options.stop_requested = &stop;
  options.on_row = [&](const SweepPoint&, const IterationRow& row) {
    if (row.iter == 15) stop = true;
  };
  EXPECT_EQ(run_experiment(config, options).front().summary["status"], "interrupted");
  return config;
}

TEST(Runner, ResumeNoticesDataChangedSinceTheCheckpointOrTheFinish) {
  TempDir dir;
  const ExperimentConfig config = stopped_tensors_run(dir, dir / "run");
  const auto X = load_tensors(dir / "data.pt").at("X"), Y = load_tensors(dir / "data.pt").at("Y");
  save_tensors(dir / "data.pt", {{"X", X + 1e-9}, {"Y", Y}});  // same shapes, new values
  RunOptions options;
  options.out = dir / "run";
  options.resume = true;
  testing::expect_error<IoError>([&] { run_experiment(config, options); },
                                 "checkpoint.pt: the data changed since this checkpoint");
  save_tensors(dir / "data.pt", {{"X", X}, {"Y", Y}});  // back as it was: it resumes and finishes
  EXPECT_EQ(run_experiment(config, options).front().summary["status"], "max_iters");
  save_tensors(dir / "data.pt", {{"X", X}, {"Y", Y * 2}});
  testing::expect_error<IoError>([&] { run_experiment(config, options); },
                                 "summary.json: the data changed since this run finished");
}

TEST(Runner, ACheckpointPastMaxItersIsRefusedNotFollowed) {
  TempDir dir;
  const ExperimentConfig config = stopped_tensors_run(dir, dir / "run");
  auto checkpoint = load_tensors(dir / "run" / "checkpoint.pt");
  checkpoint["iter"] = torch::tensor(int64_t{1000}, torch::kInt64);  // max_iters is 40
  std::vector<std::pair<std::string, torch::Tensor>> items(checkpoint.begin(), checkpoint.end());
  save_tensors(dir / "run" / "checkpoint.pt", items);
  RunOptions options;
  options.out = dir / "run";
  options.resume = true;
  testing::expect_error<IoError>([&] { run_experiment(config, options); },
                                 "checkpoint.pt: checkpoint at iteration 1000, outside this run's "
                                 "0..train.max_iters = 40");
}

TEST(Runner, ResumeTouchesNothingInADirectoryItDidNotWrite) {
  TempDir dir;
  const ExperimentConfig config = resumable_experiment();
  RunOptions options;
  options.out = dir / "mine";
  options.resume = true;
  fs::create_directories(options.out);
  testing::write_text(options.out / "metrics.csv", "my,own\n1,2\n");
  for (const std::string config_text : {"", "not: [an, experiment]\n"}) {
    if (!config_text.empty()) testing::write_text(options.out / "config.yaml", config_text);
    testing::expect_error<IoError>([&] { run_experiment(config, options); },
                                   "mine: not a run or sweep directory of `resgd run`");
    EXPECT_EQ(testing::slurp(options.out / "metrics.csv"), "my,own\n1,2\n");
    EXPECT_FALSE(fs::exists(options.out / DirectoryLock::kFileName)) << "not even a lock file";
  }
  // A directory that does not exist: said so, unless told to start.
  options.out = dir / "typo";
  testing::expect_error<IoError>([&] { run_experiment(config, options); }, "typo: no such directory to resume");
  EXPECT_FALSE(fs::exists(options.out));
  options.start_if_missing = true;
  EXPECT_EQ(run_experiment(config, options).front().summary["status"], "max_iters");
}

TEST(Runner, AFailedRunRemovesWhatItCreatedAndKeepsWhatFinished) {
  TempDir dir;
  ExperimentConfig config = resumable_experiment();
  struct DiskFull : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  RunOptions options;
  options.on_row = [](const SweepPoint& point, const IterationRow& row) {
    if (row.iter == 5 && point.seed == 1) throw DiskFull("the disk is full");  // mid-run, after files were written
  };
  // A single run into a nested new directory: a/, a/b/ and a/b/c/ go.
  apply_override(config, "seed=1");
  options.out = dir / "a" / "b" / "c";
  EXPECT_THROW(run_experiment(config, options), DiskFull);
  EXPECT_FALSE(fs::exists(dir / "a"));
  // Into the user's own empty directory: left empty, as it was.
  fs::create_directories(dir / "empty");
  options.out = dir / "empty";
  EXPECT_THROW(run_experiment(config, options), DiskFull);
  EXPECT_TRUE(fs::is_directory(dir / "empty"));
  EXPECT_TRUE(fs::is_empty(dir / "empty"));
  // A sweep whose seed 0 finished before seed 1 failed: seed 0 stays, resumable.
  apply_override(config, "sweep.seeds=[0,1]");
  options.out = dir / "sweep";
  EXPECT_THROW(run_experiment(config, options), DiskFull);
  EXPECT_TRUE(fs::exists(dir / "sweep" / "runs" / "seed=0" / "summary.json"));
  EXPECT_FALSE(fs::exists(dir / "sweep" / "runs" / "seed=1"));
  options.on_row = nullptr;
  options.resume = true;
  EXPECT_EQ(run_experiment(config, options).size(), 2u);
}

TEST(Runner, AWriteThatFailsMidRunNamesTheFileAndLeavesNoDirectory) {
  // A file size limit of 16 KiB fails the 33 KiB init.pt part way, as a full disk would.
  TempDir dir;
  testing::write_text(dir / "exp.yaml", "data: {num_samples: 2, seq_len: 3, dim: 16}\ntrain: {max_iters: 5}\n");
  const auto result = testing::run_resgd(dir, "'run exp.yaml --out a/b/c'", "bash -c 'ulimit -f 16; exec \"$0\" $1'");
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_NE(result.err.find("resgd: error: a/b/c/tensors/init.pt: write failed: File too large"), std::string::npos)
      << result.err;
  EXPECT_FALSE(fs::exists(dir / "a")) << "the directories the run made are gone";
}

TEST(Runner, ANonFiniteLossAtIterationZeroIsADivergedRunWithAReport) {
  // W_V of 1e308 overflows at once; a point of a sweep that diverges so is a result like
  // any other: exit 0, the summary says diverged, the diagnostics it could not compute are
  // empty, and the report is written.
  TempDir dir;
  testing::write_text(dir / "exp.yaml",
                      "data: {num_samples: 3, seq_len: 4, dim: 5, target_dim: 2}\nmodel: {ffn_width: 8}\n"
                      "train: {max_iters: 10}\nsweep: {model.init.W_V: [1.0e+308, null]}\n");
  const fs::path run = fs::path("runs") / expand_sweep(load_config_file((dir / "exp.yaml").string()))[0].dir_name();
  for (const std::string dtype : {"float64", "float32"}) {
    const auto result = testing::run_resgd(dir, "run exp.yaml --out " + dtype + " --set dtype=" + dtype);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(result.err.find("error"), std::string::npos) << result.err;
    const auto diverged = nlohmann::json::parse(read_file(dir / dtype / run / "summary.json"));
    EXPECT_EQ(diverged["status"], "diverged");
    EXPECT_EQ(diverged["iters"], 0);
    EXPECT_EQ(diverged["cond_g"], nlohmann::json::array());
    const CsvTable metrics = read_csv(dir / dtype / run / "metrics.csv");
    ASSERT_EQ(metrics.rows.size(), 1u);
    EXPECT_EQ(metrics.rows[0][metrics.column("cond_g1")], "");
    EXPECT_TRUE(fs::exists(dir / dtype / "report.md"));
    EXPECT_NE(read_file(dir / dtype / "sweep.csv").find("diverged"), std::string::npos);
  }
}

TEST(Runner, ADeadNetworkIsAStalledRunCountedInTheReport) {
  // W_1 = 0 kills every ReLU: the gradient is exactly 0 from the start. The point stops as
  // stalled after train.stall_window steps (exit 0), and the report counts it.
  TempDir dir;
  testing::write_text(dir / "exp.yaml",
                      "data: {num_samples: 3, seq_len: 4, dim: 5, target_dim: 2}\nmodel: {ffn_width: 8}\n"
                      "train: {max_iters: 100, stall_window: 20, checkpoint_every: 5}\n"
                      "sweep: {model.init.W_1: [0.0, null]}\n");
  const auto points = expand_sweep(load_config_file((dir / "exp.yaml").string()));
  const auto result = testing::run_resgd(dir, "run exp.yaml --out out");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto stalled = nlohmann::json::parse(read_file(dir / "out" / "runs" / points[0].dir_name() / "summary.json"));
  EXPECT_EQ(stalled["status"], "stalled");
  EXPECT_EQ(stalled["iters"], 20);
  const auto live = nlohmann::json::parse(read_file(dir / "out" / "runs" / points[1].dir_name() / "summary.json"));
  EXPECT_NE(live["status"], "stalled");
  const std::string report = read_file(dir / "out" / "report.md");
  EXPECT_NE(report.find("| stalled |"), std::string::npos) << report;
  EXPECT_NE(report.find("| 1/1 |"), std::string::npos) << report;
  EXPECT_NE(read_file(dir / "out" / "sweep.csv").find("stalled"), std::string::npos);
}

TEST(Runner, AGnuplotThatNeverReturnsIsStoppedWithResgd) {
  // A stand-in gnuplot that hangs: SIGTERM in the report phase kills it (and what it
  // started), the report is written saying the plots are missing, and resgd ends.
  TempDir dir;
  fs::create_directories(dir / "bin");
  testing::write_text(dir / "bin" / "gnuplot",
                      "#!/bin/sh\necho $$ >> \"" + (dir / "gnuplots").string() + "\"\nexec sleep 1000\n");
  fs::permissions(dir / "bin" / "gnuplot", fs::perms::owner_all);
  testing::write_text(dir / "exp.yaml", "data: {num_samples: 2, seq_len: 3, dim: 4}\ntrain: {max_iters: 5}\n");
  const std::string path = std::getenv("PATH");
  setenv("PATH", ((dir / "bin").string() + ":" + path).c_str(), 1);
  const pid_t pid = testing::spawn_resgd(dir, {"run", "exp.yaml", "--out", "out"});
  setenv("PATH", path.c_str(), 1);
  ASSERT_TRUE(testing::wait_until([&] { return fs::exists(dir / "gnuplots"); }));
  const auto start = std::chrono::steady_clock::now();
  kill(pid, SIGTERM);
  EXPECT_EQ(testing::wait_for(pid), 0) << "the run itself had finished";
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
  EXPECT_NE(testing::slurp(dir / "out" / "report.md").find("not drawn"), std::string::npos)
      << testing::slurp(dir / "out" / "report.md");
  auto none_left = [&] {
    std::stringstream started(testing::slurp(dir / "gnuplots"));
    for (pid_t gnuplot; started >> gnuplot;)
      EXPECT_TRUE(testing::wait_until([&] { return kill(gnuplot, 0) != 0; }, 5))
          << "gnuplot " << gnuplot << " outlived resgd";
  };
  none_left();
  // resgd plot, stopped while its one gnuplot hangs: exit 130, no gnuplot left.
  fs::remove(dir / "gnuplots");
  setenv("PATH", ((dir / "bin").string() + ":" + path).c_str(), 1);
  const pid_t plot = testing::spawn_resgd(dir, {"plot", "out", "--y", "loss"});
  setenv("PATH", path.c_str(), 1);
  ASSERT_TRUE(testing::wait_until([&] { return fs::exists(dir / "gnuplots"); }));
  kill(plot, SIGINT);
  EXPECT_EQ(testing::wait_for(plot), 130);
  none_left();
}

TEST(Runner, AStopWhileTheLinearizedKernelIsFormedEndsAtOnceKeepingNothing) {
  // diagnostics.linearized forms its kernel before the first step: R = 4,000 backward
  // passes, about 20 s here. SIGINT then ends resgd between two of them, not after.
  TempDir dir;
  testing::write_text(dir / "lin.yaml",
                      "data: {num_samples: 400, seq_len: 10, dim: 16, target_dim: 1}\nmodel: {ffn_width: 32}\n"
                      "train: {max_iters: 5}\ndiagnostics: {linearized: true}\n");
  const pid_t pid = testing::spawn_resgd(dir, {"run", "lin.yaml", "--out", "out"});
  ASSERT_TRUE(testing::wait_until([&] { return fs::exists(dir / "out" / "config.yaml"); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto start = std::chrono::steady_clock::now();
  kill(pid, SIGINT);
  EXPECT_EQ(testing::wait_for(pid), 130);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
  EXPECT_FALSE(fs::exists(dir / "out")) << "a run that had not begun leaves nothing";
}

TEST(Runner, ASignalAfterTheLastIterationLeavesTheRunFinished) {
  // A stand-in gnuplot that takes its time: the signal arrives while the report is drawn,
  // after the run finished. The run stays finished, and the command says so with exit 0.
  TempDir dir;
  fs::create_directories(dir / "bin");
  testing::write_text(dir / "bin" / "gnuplot", "#!/bin/sh\nsleep 2\nexit 1\n");
  fs::permissions(dir / "bin" / "gnuplot", fs::perms::owner_all);
  testing::write_text(dir / "exp.yaml", "data: {num_samples: 2, seq_len: 3, dim: 4}\ntrain: {max_iters: 5}\n");
  const std::string path = std::getenv("PATH");
  setenv("PATH", ((dir / "bin").string() + ":" + path).c_str(), 1);
  const pid_t pid = testing::spawn_resgd(dir, {"run", "exp.yaml", "--out", "out"});
  setenv("PATH", path.c_str(), 1);
  ASSERT_TRUE(testing::wait_until([&] { return fs::exists(dir / "out" / "summary.json"); }));
  kill(pid, SIGINT);
  EXPECT_EQ(testing::wait_for(pid), 0);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "out" / "summary.json"))["status"], "max_iters");
}

}  // namespace
}  // namespace resgd
