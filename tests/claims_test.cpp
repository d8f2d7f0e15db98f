// Claims: read from an experiment file, checked on runs against numbers worked out here,
// and `resgd reproduce` failing where a claim no longer holds.
#include "resgd/claims.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <cmath>

#include "test_util.h"

namespace resgd {
namespace {

namespace fs = std::filesystem;
using testing::run_resgd;
using testing::slurp;
using testing::TempDir;
using testing::write_text;

/// A run as a claim sees it: its configuration (residual on or off, a seed) and summary.
FoundRun run(bool residual, int64_t seed, nlohmann::json summary) {
  FoundRun r;
  r.config.model.residual_attention.value = residual ? 1.0 : 0.0;
  r.config.seed = seed;
  r.summary = std::move(summary);
  return r;
}

RunCollection four_runs() {
  RunCollection c;
  c.keys = {"model.residual.attention"};
  c.zipped = {false};
  c.runs = {run(true, 0,
                {{"status", "converged"},
                 {"cond_g", {2.0}},
                 {"final_loss", 1e-9},
                 {"initial_loss", 1.0},
                 {"linear_rate", 0.97},
                 {"converges_linearly", true},
                 {"sigma_min_g", {0.5}}}),
            run(true, 1,
                {{"status", "converged"},
                 {"cond_g", {4.0}},
                 {"final_loss", 2e-9},
                 {"initial_loss", 1.0},
                 {"linear_rate", 0.96},
                 {"converges_linearly", true},
                 {"sigma_min_g", {0.6}}}),
            run(false, 0,
                {{"status", "max_iters"},
                 {"cond_g", {3e4}},
                 {"final_loss", 0.4},
                 {"initial_loss", 1.0},
                 {"linear_rate", 0.9999},
                 {"converges_linearly", false},
                 {"sigma_min_g", {1e-4}}}),
            run(false, 1,
                {{"status", "max_iters"},
                 {"cond_g", {nullptr}},
                 {"final_loss", 0.5},
                 {"initial_loss", 1.0},
                 {"linear_rate", 0.9998},
                 {"converges_linearly", false},
                 {"sigma_min_g", {0.0}}})};
  return c;
}

std::vector<Expectation> claims_of(const std::string& expect_yaml) {
  return parse_expectations(load_config_text("claims:\n  expect:\n" + expect_yaml, "exp.yaml"));
}

TEST(Claims, EveryRunOfTheSettingMustHoldEachBound) {
  const auto claims = claims_of(
      "    - claim: residual converges\n      where: {model.residual.attention: true}\n"
      "      every: {status: converged, converges_linearly: true, final_over_initial: {max: 1.0e-8}}\n"
      "    - claim: plain converges too\n      where: {model.residual.attention: false}\n"
      "      every: {status: converged}\n");
  ASSERT_EQ(claims.size(), 2u);
  const Verdict residual = check(claims[0], four_runs()), plain = check(claims[1], four_runs());
  EXPECT_TRUE(residual.shown) << residual.measured;
  EXPECT_NE(residual.measured.find("final_over_initial <= 1e-08: 2/2 runs (from 1e-09 to 2e-09)"), std::string::npos)
      << residual.measured;
  EXPECT_FALSE(plain.shown);
  EXPECT_NE(plain.measured.find("status = converged: 0/2 runs"), std::string::npos) << plain.measured;
}

TEST(Claims, ARatioDividesTheMediansAndANullConditionNumberIsInfinite) {
  // Plain cond_g1: 3e4 and inf (null), median inf; residual: 2 and 4, median 3.
  auto claims = claims_of(
      "    - claim: ill-conditioned without\n      where: {model.residual.attention: false}\n"
      "      ratio: {of: cond_g1, over: {model.residual.attention: true}, min: 1000}\n");
  Verdict v = check(claims[0], four_runs());
  EXPECT_TRUE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("median cond_g1 inf over 3 = inf"), std::string::npos) << v.measured;
  // The final losses: 0.45 over 1.5e-9.
  claims = claims_of(
      "    - claim: fits worse without\n      where: {model.residual.attention: false}\n"
      "      ratio: {of: final_loss, over: {model.residual.attention: true}, max: 1.0e+6}\n");
  v = check(claims[0], four_runs());
  EXPECT_FALSE(v.shown);
  EXPECT_NE(v.measured.find(fmt::format("= {:.4g}", 0.45 / 1.5e-9)), std::string::npos) << v.measured;
}

TEST(Claims, AFitIsALeastSquaresLineOfTheLogarithmsOverTheUsableRuns) {
  // y = 2 x^1.5 exactly over three runs; a diverged run off the line is left out.
  RunCollection c;
  for (double x : {0.1, 0.3, 1.0})
    c.runs.push_back(
        run(true, 0, {{"status", "max_iters"}, {"sigma_min_g", {x}}, {"pl_ratio_median", 2 * std::pow(x, 1.5)}}));
  c.runs.push_back(run(true, 1, {{"status", "diverged"}, {"sigma_min_g", {0.5}}, {"pl_ratio_median", 100.0}}));
  const auto claims = claims_of(
      "    - claim: power law\n      fit: {y: pl_ratio_median, x: sigma_min_g1, slope: {min: 1.49, max: 1.51}, "
      "correlation: {min: 0.999}}\n");
  const Verdict v = check(claims[0], c);
  EXPECT_TRUE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("pl_ratio_median ~ sigma_min_g1^1.500 over 3 runs, correlation 1.0000"), std::string::npos)
      << v.measured;
}

TEST(Claims, AClaimWithNoRunToSpeakOfIsNotShown) {
  const auto claims =
      claims_of("    - claim: deep\n      where: {model.layers: 3}\n      every: {status: converged}\n");
  const Verdict v = check(claims[0], four_runs());
  EXPECT_FALSE(v.shown);
  EXPECT_NE(v.measured.find("no run with model.layers=3"), std::string::npos) << v.measured;
}

TEST(Claims, MalformedClaimsAreRefusedAtTheirLine) {
  auto error = [](const std::string& entry) {
    try {
      claims_of(entry);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error("    - claim: x\n      every: {stauts: converged}\n")
                .find("exp.yaml:3:7: claims.expect: 'x': unknown "
                      "metric 'stauts'"),
            std::string::npos);
  EXPECT_NE(error("    - every: {status: converged}\n").find("needs its statement"), std::string::npos);
  EXPECT_NE(error("    - claim: x\n      where: {model.depth: 2}\n      every: {status: converged}\n")
                .find("where: unknown key 'model.depth'"),
            std::string::npos);
  EXPECT_NE(error("    - claim: x\n      every: {status: converged}\n      median: {final_loss: {max: 1}}\n")
                .find("exactly one of every, median, ratio, fit"),
            std::string::npos);
  EXPECT_NE(error("    - claim: x\n      median: {final_loss: {below: 1}}\n").find("unknown key 'below'"),
            std::string::npos);
  EXPECT_THROW(load_config_text("claims: {expected: []}\n", "exp.yaml"), ConfigError);
}

TEST(Claims, EveryExperimentFileStatesItsClaimsInAFormTheCodeReads) {
  size_t files = 0, claims = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(RESGD_SOURCE_DIR) / "experiments")) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    SCOPED_TRACE(entry.path().string());
    ExperimentConfig config = load_config_file(entry.path().string());
    const auto expectations = parse_expectations(config);
    EXPECT_FALSE(expectations.empty()) << "an experiment without a claim to check";
    claims += expectations.size();
    EXPECT_NO_THROW(apply_overrides(config, config.claims.quick));
  }
  EXPECT_GE(files, 12u);
  EXPECT_GE(claims, 2 * files);
}

TEST(Reproduce, QuickPassesOnTheFlagshipAndFailsWhereTheResidualIsScaledAway) {
  TempDir dir;
  fs::create_directories(dir / "good");
  fs::copy_file(fs::path(RESGD_SOURCE_DIR) / "experiments" / "residual_vs_plain.yaml",
                dir / "good" / "residual_vs_plain.yaml");
  auto result = run_resgd(dir, "reproduce --quick --experiments good --out out-good");
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const std::string good = slurp(dir / "out-good" / "results.md");
  EXPECT_NE(good.find("**3 of 3 claims shown**"), std::string::npos) << good;
  EXPECT_NE(good.find("![residual_vs_plain](results/residual_vs_plain_loss.png)"), std::string::npos) << good;
  EXPECT_TRUE(fs::exists(dir / "out-good" / "results" / "residual_vs_plain_loss.png"));
  EXPECT_NE(good.find("--set 'sweep.seeds=[0]'"), std::string::npos) << "the quick command, as it ran";

  // The residual scaled almost to 0: the claim that it converges no longer holds.
  std::string broken = slurp(dir / "good" / "residual_vs_plain.yaml");
  for (const auto& [from, to] :
       {std::pair<std::string, std::string>{"attention: [true, false]", "attention: [1.0e-4, false]"},
        {"where: {model.residual.attention: true}", "where: {model.residual.attention: 1.0e-4}"},
        {"over: {model.residual.attention: true}", "over: {model.residual.attention: 1.0e-4}"}}) {
    const size_t at = broken.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    broken.replace(at, from.size(), to);
  }
  fs::create_directories(dir / "bad");
  write_text(dir / "bad" / "residual_vs_plain.yaml", broken);
  result = run_resgd(dir, "reproduce --quick --experiments bad --out out-bad");
  EXPECT_EQ(result.exit_code, 1) << result.out << result.err;
  const std::string bad = slurp(dir / "out-bad" / "results.md");
  EXPECT_NE(bad.find("| With the attention residual the loss falls linearly to tolerance | **not shown** |"),
            std::string::npos)
      << bad;
  EXPECT_NE(result.out.find("NOT SHOWN: With the attention residual"), std::string::npos) << result.out;

  // An experiment that is not there is named, before anything runs.
  result = run_resgd(dir, "reproduce --quick --experiments good --only flagship --out out-none");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("no experiment 'flagship'"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(dir / "out-none"));
}

TEST(Reproduce, AnInterruptedReproduceJudgesNoClaimOnAPartialSweep) {
  // SIGINT while the first experiment's sweep is still running: exit 130, and results.md
  // says which experiments did not finish instead of a verdict from the runs that did.
  TempDir dir;
  fs::create_directories(dir / "exps");
  const std::string experiment =
      "data: {num_samples: 4, seq_len: 4, dim: 8, target_dim: 2}\nmodel: {ffn_width: 16}\n"
      "train: {lr: 0.02, max_iters: 100000, rel_tolerance: 0}\ndiagnostics: {every: 0}\n"
      "sweep: {model.residual.attention: [true, false]}\n"
      "claims:\n  expect:\n    - claim: Every run goes the whole way\n      every: {status: max_iters}\n";
  write_text(dir / "exps" / "a_long.yaml", "name: a_long\n" + experiment);
  write_text(dir / "exps" / "b_next.yaml", "name: b_next\n" + experiment);
  const pid_t pid = testing::spawn_resgd(dir, {"reproduce", "--experiments", "exps", "--out", "out", "--jobs", "1"});
  const fs::path first_run = dir / "out" / "a_long" / "runs" / "model.residual.attention=true" / "seed=0";
  ASSERT_TRUE(testing::wait_until([&] { return testing::line_count(first_run / "metrics.csv") > 3; }));
  kill(pid, SIGINT);
  EXPECT_EQ(testing::wait_for(pid), 130);
  const std::string results = slurp(dir / "out" / "results.md");
  EXPECT_NE(results.find("**Interrupted**: 2 of 2 experiments did not finish (a_long, b_next)"), std::string::npos)
      << results;
  EXPECT_NE(results.find("**0 of 0 claims shown**"), std::string::npos) << results;
  EXPECT_NE(results.find("## a_long\n\n**Not finished**: 0 of 2 runs finished"), std::string::npos) << results;
  EXPECT_EQ(results.find("| Every run goes the whole way |"), std::string::npos) << "a verdict on a partial sweep";
}

}  // namespace
}  // namespace resgd
