// The memory a run needs, before it runs: every size enters the estimate, the estimate is
// what a real run's peak takes, and a run beyond the machine is refused before any file.
#include "resgd/core/cost.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <string>

#include "test_util.h"

extern char** environ;

namespace resgd {
namespace {

using testing::TempDir;
namespace fs = std::filesystem;

TEST(Cost, EverySizeEntersTheEstimate) {
  const ExperimentConfig base = load_config_text(
      "data: {num_samples: 16, seq_len: 8, dim: 16, target_dim: 4}\nmodel: {ffn_width: 64, layers: 2}\n", "e.yaml");
  const double before = estimate_memory(base).bytes();
  for (const std::string assignment : {"data.num_samples=32", "data.seq_len=16", "data.dim=32", "model.key_dim=32",
                                       "model.attention.heads=4", "model.ffn_width=128", "data.target_dim=8",
                                       "model.layers=3", "diagnostics.ntk=true", "diagnostics.sharpness=true"}) {
    ExperimentConfig grown = base;
    apply_override(grown, assignment);
    EXPECT_GT(estimate_memory(grown).bytes(), before) << assignment;
  }
  ExperimentConfig narrow = base;
  apply_override(narrow, "dtype=float32");
  EXPECT_LT(estimate_memory(narrow).bytes(), before);
}

TEST(Cost, AnNtkSkippedForItsSizeCountsNothingOfItsKernel) {
  // Where the Jacobian would pass diagnostics.ntk_max_entries the NTK is skipped (NaN):
  // neither its Jacobian nor its R x R Gram matrix is ever allocated, and the estimate must
  // not refuse a run for them. Here R = 20,000 outputs: a Gram of 3 GiB.
  const ExperimentConfig off = load_config_text(
      "data: {num_samples: 1000, seq_len: 20, dim: 64, target_dim: 1}\nmodel: {ffn_width: 256}\n", "e.yaml");
  ExperimentConfig skipped = off, computed = off;
  apply_override(skipped, "diagnostics.ntk=true");
  EXPECT_EQ(estimate_memory(skipped).bytes(), estimate_memory(off).bytes());
  apply_override(computed, "diagnostics.ntk=true");
  apply_override(computed, "diagnostics.ntk_max_entries=100000000000");
  EXPECT_GT(estimate_memory(computed).bytes() - estimate_memory(off).bytes(), 2 * 8.0 * 20000 * 20000 * 0.99);
}

/// The peak resident memory of `resgd ARGS` run in `dir`, in bytes (wait4's rusage).
double peak_of(const TempDir& dir, const std::vector<std::string>& args) {
  std::vector<std::string> argv_text = {RESGD_BINARY};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, dir.path().c_str());
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  rusage usage{};
  EXPECT_EQ(wait4(pid, &status, 0, &usage), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << argv_text[1];
  return static_cast<double>(usage.ru_maxrss) * 1024;  // Linux: KiB
}

TEST(Cost, TheEstimateGrowsAsARunsMeasuredPeakGrows) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's allocator keeps what a run frees";
#endif
  // A run's peak against the estimate, as the sequences grow fourfold (what a process
  // holds besides the run cancels), one FFN-heavy and one attention-heavy size. On the
  // reference backend, whose diagnoses run in step: with the worker the peak depends on
  // whether a diagnosis overlaps a step. The estimate errs on the safe side, by 1.5 at most.
  TempDir dir;
  for (const std::string sizes :
       {"seq_len: 16, dim: 64, target_dim: 4}\nmodel: {ffn_width: 512}\n",
        "seq_len: 64, dim: 32, target_dim: 4}\nmodel: {ffn_width: 64, attention: {heads: 8}}\n"}) {
    double measured[2], estimated[2];
    for (int k = 0; k < 2; ++k) {
      const std::string yaml = "data: {num_samples: " + std::to_string(k == 0 ? 64 : 256) + ", " + sizes +
                               "train: {max_iters: 30, rel_tolerance: 0}\ndevice: cpu\ncompute: {backend: reference}\n";
      testing::write_text(dir / "exp.yaml", yaml);
      fs::remove_all(dir / "out");
      measured[k] = peak_of(dir, {"run", "exp.yaml", "--out", "out"});
      estimated[k] = estimate_memory(load_config_text(yaml, "exp.yaml")).bytes();
    }
    const double run = measured[1] - measured[0], estimate = estimated[1] - estimated[0];
    EXPECT_GT(estimate, 0.8 * run) << sizes << "measured " << run / 1e6 << " MB more, estimated " << estimate / 1e6;
    EXPECT_LT(estimate, 1.5 * run) << sizes << "measured " << run / 1e6 << " MB more, estimated " << estimate / 1e6;
  }
}

TEST(Cost, ARunBeyondTheMemoryAvailableIsRefusedBeforeAnyFileNamingItsLargestSize) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer cannot map its shadow memory under ulimit -v";
#endif
  // Under an address-space limit (ulimit -v) the same sizes that fit the machine are
  // refused, at the key that grew, with the estimate and what is available.
  TempDir dir;
  testing::write_text(dir / "exp.yaml",
                      "data: {num_samples: 1024, seq_len: 32, dim: 128, target_dim: 4}\n"
                      "model: {ffn_width: 2048}\ntrain: {max_iters: 2}\n");
  const auto fits = testing::run_resgd(dir, "validate exp.yaml");
  if (fits.exit_code != 0) GTEST_SKIP() << "this machine has less than the 6 GB the run needs: " << fits.err;
  EXPECT_NE(fits.err.find("valid; 1 run; it needs about"), std::string::npos) << fits.err;
  for (const std::string command : {"validate exp.yaml", "run exp.yaml --out out"}) {
    const auto limited = testing::run_resgd(dir, "'" + command + "'", "bash -c 'ulimit -v 3000000; exec \"$0\" $1'");
    EXPECT_EQ(limited.exit_code, 2) << limited.err;
    EXPECT_NE(limited.err.find("resgd: error: exp.yaml:2:20: model.ffn_width: the run would need about "),
              std::string::npos)
        << limited.err;
    EXPECT_NE(limited.err.find("GiB are available to this process"), std::string::npos) << limited.err;
    EXPECT_FALSE(fs::exists(dir / "out"));
  }
  // A CUDA run's tensors are on the GPU: the host's memory does not bound them.
  EXPECT_NO_THROW(check_memory(load_config_text("data: {num_samples: 100000000, seq_len: 100000}\n", "e"), false));
}

}  // namespace
}  // namespace resgd
