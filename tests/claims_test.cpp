// Claims: read from an experiment file, checked on runs against numbers worked out here,
// and `resgd reproduce` failing where a claim no longer holds.
#include "resgd/report/claims.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <cmath>
#include <map>
#include <tuple>

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

/// The claims of an experiment file: `head` (its other keys) then `expect_yaml`'s entries.
std::vector<Expectation> claims_of(const std::string& expect_yaml, const std::string& head = "") {
  return parse_expectations(load_config_text(head + "claims:\n  expect:\n" + expect_yaml, "exp.yaml"));
}

/// The error reading those claims gives, or "no error".
std::string claim_error(const std::string& expect_yaml, const std::string& head = "") {
  try {
    claims_of(expect_yaml, head);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
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

/// Runs of y = 2 x^1.5 exactly at `xs` (status max_iters), a diverged run at each of `diverged`.
RunCollection power_law(const std::vector<double>& xs, const std::vector<double>& diverged = {}) {
  RunCollection c;
  for (double x : xs)
    c.runs.push_back(
        run(true, 0, {{"status", "max_iters"}, {"sigma_min_g", {x}}, {"pl_ratio_median", 2 * std::pow(x, 1.5)}}));
  for (double x : diverged)
    c.runs.push_back(run(true, 1, {{"status", "diverged"}, {"sigma_min_g", {x}}, {"pl_ratio_median", 100.0}}));
  return c;
}

const char* const kPowerLaw =
    "    - claim: power law\n      fit: {y: pl_ratio_median, x: sigma_min_g1, slope: {min: 1.4, max: 1.6}, "
    "correlation: {min: 0.999}";

TEST(Claims, AFitIsALeastSquaresLineOfTheLogarithmsWithItsRunsDecadesAndMargins) {
  // y = 2 x^1.5 exactly over four x values spanning two decades.
  const auto claims = claims_of(std::string(kPowerLaw) + "}\n");
  const Verdict v = check(claims[0], power_law({0.01, 0.03, 0.1, 1.0}));
  EXPECT_TRUE(v.shown) << v.measured;
  EXPECT_EQ(v.measured,
            "pl_ratio_median ~ sigma_min_g1^1.500; 4 runs used, at 4 distinct x over 2.00 decades; slope 1.500 in "
            "[1.4, 1.6] (margin 0.100); correlation 1.0000 >= 0.999 (margin 0.0010)");
}

TEST(Claims, AFitWhoseHighEndDivergedIsNotShownUnlessItsRuleLeavesThoseOut) {
  // The law holds where the runs converged; the two largest x diverged. A line through the
  // low end is no law over the range the sweep claims.
  const RunCollection runs = power_law({0.01, 0.03, 0.1, 0.3}, {1.0, 3.0});
  Verdict v = check(claims_of(std::string(kPowerLaw) + "}\n")[0], runs);
  EXPECT_FALSE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("left out: 2 diverged (sigma_min_g1 = 1, 3)"), std::string::npos) << v.measured;
  EXPECT_NE(v.measured.find("not shown: runs inside the claimed range left out"), std::string::npos) << v.measured;
  v = check(claims_of(std::string(kPowerLaw) + ", leave_out: [diverged]}\n")[0], runs);
  EXPECT_TRUE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("2 diverged (sigma_min_g1 = 1, 3), left out as the rule allows"), std::string::npos)
      << v.measured;
}

TEST(Claims, AStalledRunEntersNoFitAndIsLeftOutOnlyWhereTheRuleSaysSo) {
  // A run whose gradient was exactly zero (every ReLU dead) ended at a loss that says
  // nothing of the law: counted as diverged runs are, never fitted.
  RunCollection runs = power_law({0.01, 0.03, 0.1, 0.3});
  runs.runs.push_back(run(true, 1, {{"status", "stalled"}, {"sigma_min_g", {1.0}}, {"pl_ratio_median", 5.0}}));
  Verdict v = check(claims_of(std::string(kPowerLaw) + "}\n")[0], runs);
  EXPECT_FALSE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("left out: 1 stalled (sigma_min_g1 = 1)"), std::string::npos) << v.measured;
  v = check(claims_of(std::string(kPowerLaw) + ", leave_out: [stalled]}\n")[0], runs);
  EXPECT_TRUE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("4 runs used"), std::string::npos) << v.measured;
}

TEST(Claims, AFitOnTooFewXValuesOrTooNarrowARangeIsNotShown) {
  Verdict v = check(claims_of(std::string(kPowerLaw) + "}\n")[0], power_law({0.1, 0.3, 1.0}));
  EXPECT_FALSE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("fewer than 4 distinct x"), std::string::npos) << v.measured;
  v = check(claims_of(std::string(kPowerLaw) + ", min_decades: 1.5}\n")[0], power_law({0.1, 0.2, 0.5, 1.0}));
  EXPECT_FALSE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("sigma_min_g1 spans less than 1.5 decades"), std::string::npos) << v.measured;
  EXPECT_NE(claim_error("    - claim: no correlation\n      fit: {y: pl_ratio_median, x: sigma_min_g1, slope: {min: "
                        "1}}\n")
                .find("every fit needs a correlation bound"),
            std::string::npos);
}

TEST(Claims, AConditionNumberIsInfiniteOnlyWhereItWasComputedAndIsInfinite) {
  // Two blocks, sigma_min_g2 = 0 (rank-deficient): cond_g2 inf. A block the run lacks, or a
  // null for another reason, is no value: a rule on it is not shown.
  RunCollection c;
  c.runs = {run(false, 0, {{"status", "max_iters"}, {"cond_g", {3.0, nullptr}}, {"sigma_min_g", {0.1, 0.0}}})};
  const auto claims = claims_of(
      "    - claim: collapsed\n      every: {cond_g2: {min: 1.0e+300}}\n"
      "    - claim: lacking\n      every: {cond_g3: {min: 1.0e+300}}\n",
      "model: {layers: 3}\n");
  EXPECT_TRUE(check(claims[0], c).shown) << check(claims[0], c).measured;
  const Verdict lacking = check(claims[1], c);
  EXPECT_FALSE(lacking.shown) << lacking.measured;
  EXPECT_NE(lacking.measured.find("cond_g3 >= 1e+300: 0/1 runs"), std::string::npos) << lacking.measured;
  c.runs[0].summary["sigma_min_g"] = {0.1, 0.2};  // a null beside a nonzero sigma_min: not inf
  EXPECT_FALSE(check(claims[0], c).shown);
}

TEST(Claims, AMetricNoRunOfTheExperimentWritesIsRefusedWhenTheFileIsRead) {
  // A block past every run's model.layers, and a diagnostic every run leaves off: the rule
  // could only ever read "no value", so the file is refused at the claim's line.
  const std::string block = claim_error("    - claim: collapse by block 3\n      every: {cond_g3: {min: 1.0e+300}}\n",
                                        "model: {layers: 2}\n");
  EXPECT_NE(block.find("exp.yaml:4:7: claims.expect: 'collapse by block 3': 'cond_g3' is block 3's, but the runs it "
                       "speaks of have 2 blocks (model.layers)"),
            std::string::npos)
      << block;
  const std::string column = claim_error("    - claim: kernel\n      median: {ntk_lambda_min: {min: 1}}\n");
  EXPECT_NE(column.find("'ntk_lambda_min': no run it speaks of writes it (diagnostics.ntk is off in every one)"),
            std::string::npos)
      << column;
  // A sweep whose deepest point has the block, and a point that measures the NTK, pass.
  EXPECT_NO_THROW(claims_of("    - claim: deep\n      every: {cond_g3: {min: 1}}\n",
                            "model: {layers: 2}\nsweep: {model.layers: [2, 3]}\n"));
  EXPECT_NO_THROW(claims_of("    - claim: kernel\n      median: {ntk_lambda_min: {min: 1}}\n",
                            "sweep: {diagnostics.ntk: [false, true]}\n"));
  // A where that leaves only the two-block runs refuses block 3 again.
  EXPECT_NE(claim_error("    - claim: deep\n      where: {model.layers: 2}\n      every: {cond_g3: {min: 1}}\n",
                        "sweep: {model.layers: [2, 3]}\n")
                .find("have 2 blocks"),
            std::string::npos);
}

TEST(Claims, ACollapseClaimOnTokensThatStayApartIsNotShown) {
  // rank1_res<l>, the tokens' distance from one vector: an inf cond_g certifies only rank
  // deficiency, so the collapse claim reads rank1_res. At 0.71 the tokens stay apart.
  RunCollection c;
  c.runs = {run(false, 0, {{"status", "max_iters"}, {"rank1_res", {0.3, 0.71}}}),
            run(false, 1, {{"status", "max_iters"}, {"rank1_res", {0.2, 1e-9}}})};
  const auto claims =
      claims_of("    - claim: the tokens collapse to one vector by block 2\n      every: {rank1_res2: {max: 1.0e-6}}\n",
                "model: {layers: 2}\n");
  const Verdict v = check(claims[0], c);
  EXPECT_FALSE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("rank1_res2 <= 1e-06: 1/2 runs (from 1e-09 to 0.71)"), std::string::npos) << v.measured;
}

TEST(Claims, AConvergesClaimOnARunThatEndedAtMaxItersIsNotShown) {
  // The loss fell below 1e-6 of its start but no tolerance was met: max_iters, not converged.
  RunCollection c;
  c.runs = {run(true, 0, {{"status", "max_iters"}, {"final_loss", 1e-7}, {"initial_loss", 1.0}, {"loss_max", 3.7}})};
  const auto claims =
      claims_of("    - claim: converges\n      every: {status: converged, loss_max_over_initial: {max: 1}}\n");
  const Verdict v = check(claims[0], c);
  EXPECT_FALSE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("status = converged: 0/1 runs"), std::string::npos) << v.measured;
  EXPECT_NE(v.measured.find("loss_max_over_initial <= 1: 0/1 runs (from 3.7 to 3.7)"), std::string::npos) << v.measured;
}

TEST(Claims, AFitAgainstSeveralXAtOnceGivesEachExponentAndEachXsOwnCorrelation) {
  // y = x1 x2^-0.5 on a 3 x 3 grid of independent x: both exponents, R = 1.
  RunCollection c;
  for (double a : {0.1, 1.0, 10.0})
    for (double b : {1.0, 4.0, 16.0})
      c.runs.push_back(run(true, 0,
                           {{"status", "max_iters"},
                            {"sigma_min_g", {a}},
                            {"sigma_max_g", {b}},
                            {"pl_ratio_median", a * std::pow(b, -0.5)}}));
  auto claims = claims_of(
      "    - claim: both\n      fit: {y: pl_ratio_median, x: [sigma_min_g1, sigma_max_g1], slope: [{min: 0.9, max: "
      "1.1}, "
      "{min: -0.6, max: -0.4}], correlation: {min: 0.999}}\n");
  Verdict v = check(claims[0], c);
  EXPECT_TRUE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("pl_ratio_median ~ sigma_min_g1^1.000 sigma_max_g1^-0.500; 9 runs used, at 9 distinct x"),
            std::string::npos)
      << v.measured;
  EXPECT_NE(v.measured.find("exponent of sigma_max_g1 -0.500 in [-0.6, -0.4] (margin 0.100)"), std::string::npos)
      << v.measured;
  EXPECT_NE(v.measured.find("correlation of each x alone: sigma_min_g1 alone 0.9"), std::string::npos) << v.measured;
  // Two x that move together cannot be told apart: not shown.
  for (auto& r : c.runs) r.summary["sigma_max_g"] = {2 * r.summary["sigma_min_g"][0].get<double>()};
  v = check(claims[0], c);
  EXPECT_FALSE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("too collinear"), std::string::npos) << v.measured;
}

TEST(Claims, ARuleForEachValueOfAKeyHoldsAtEveryOneOrIsNotShown) {
  // Two widths, a power law at each: the fit within each width, each shown on its own.
  RunCollection c;
  for (const int64_t width : {64, 256})
    for (double x : {0.01, 0.1, 1.0, 10.0}) {
      FoundRun r = run(true, 0,
                       {{"status", "max_iters"},
                        {"sigma_min_g", {x}},
                        {"pl_ratio_median", (width == 64 ? 1.0 : 3.0) * std::pow(x, width == 64 ? 1.5 : 0.5)}});
      r.config.model.ffn_width = width;
      c.runs.push_back(r);
    }
  const auto rising = claims_of(
      "    - claim: a power law at each width\n      for_each: model.ffn_width\n      fit: {y: pl_ratio_median, x: "
      "sigma_min_g1, slope: {min: 0.4, max: 1.6}, correlation: {min: 0.99}}\n");
  Verdict v = check(rising[0], c);
  EXPECT_TRUE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("model.ffn_width=64: pl_ratio_median ~ sigma_min_g1^1.500"), std::string::npos)
      << v.measured;
  EXPECT_NE(v.measured.find(" | model.ffn_width=256: pl_ratio_median ~ sigma_min_g1^0.500"), std::string::npos)
      << v.measured;
  // Pooled, the two lines are no law; a bound one width fails turns the claim.
  const auto steep = claims_of(
      "    - claim: steep at each width\n      for_each: model.ffn_width\n      fit: {y: pl_ratio_median, x: "
      "sigma_min_g1, slope: {min: 1}, correlation: {min: 0.99}}\n");
  v = check(steep[0], c);
  EXPECT_FALSE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("model.ffn_width=256: NOT SHOWN, "), std::string::npos) << v.measured;
}

TEST(Claims, RatesAtDifferentStepSizesAreComparedPerUnitStep) {
  // 1 - rate = 2 lr sigma at two step sizes: per unit step the runs agree.
  RunCollection c;
  for (const double lr : {0.01, 0.03}) {
    FoundRun r =
        run(true, 0,
            {{"status", "converged"}, {"lr", lr}, {"linear_rate", 1 - 2 * lr * 0.5}, {"converges_linearly", true}});
    r.config.train.lr = lr;
    c.runs.push_back(r);
  }
  const auto claims = claims_of(
      "    - claim: the same rate per unit step\n      where: {train.lr: 0.03}\n"
      "      ratio: {of: one_minus_rate_per_lr, over: {train.lr: 0.01}, min: 0.99, max: 1.01}\n",
      "sweep: {train.lr: [0.01, 0.03]}\n");
  const Verdict v = check(claims[0], c);
  EXPECT_TRUE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("median one_minus_rate_per_lr 1 over 1 = 1"), std::string::npos) << v.measured;
}

TEST(Claims, AtBestComparesEachArmAtItsOwnBestStableStepSize) {
  // Residual: best at lr 0.1 (loss 0.10). Plain: its loss keeps falling with lr up to 0.4,
  // but at 0.4 one seed diverged, so its best stable lr is 0.2 (loss 0.11).
  const std::map<bool, std::vector<std::tuple<double, const char*, double>>> arms = {
      {true, {{0.05, "max_iters", 0.20}, {0.1, "max_iters", 0.10}, {0.2, "diverged", 0.01}}},
      {false, {{0.05, "max_iters", 0.40}, {0.1, "max_iters", 0.20}, {0.2, "max_iters", 0.11}}}};
  RunCollection c;
  for (const auto& [residual, points] : arms)
    for (const auto& [lr, status, loss] : points)
      for (const int64_t seed : {0, 1}) {
        FoundRun r = run(residual, seed, {{"status", status}, {"final_loss", loss}});
        r.config.train.lr = lr;
        c.runs.push_back(r);
      }
  FoundRun diverged_plain = run(false, 2, {{"status", "diverged"}, {"final_loss", nullptr}});
  diverged_plain.config.train.lr = 0.4;
  c.runs.push_back(diverged_plain);
  FoundRun stable_plain = run(false, 3, {{"status", "max_iters"}, {"final_loss", 0.01}});
  stable_plain.config.train.lr = 0.4;
  c.runs.push_back(stable_plain);
  const std::string head = "sweep: {train.lr: [0.05, 0.1, 0.2, 0.4], model.residual.attention: [true, false]}\n";
  const auto claims = claims_of(
      "    - claim: at their best step sizes the arms fit alike\n      where: {model.residual.attention: true}\n"
      "      ratio: {of: final_loss, over: {model.residual.attention: false}, at_best: train.lr, min: 0.8}\n",
      head);
  Verdict v = check(claims[0], c);
  EXPECT_TRUE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("median final_loss 0.1 over 0.11 = 0.9091"), std::string::npos) << v.measured;
  EXPECT_NE(v.measured.find("best train.lr=0.1 of 0.05, 0.1 (0.2 diverged, stalled or unfinished)"), std::string::npos)
      << v.measured;
  EXPECT_NE(v.measured.find("over: best train.lr=0.2 of 0.05, 0.1, 0.2 (0.4 diverged, stalled or unfinished)"),
            std::string::npos)
      << v.measured;
  // At one shared step size (0.1) the same runs give a ratio of 0.5: the bound turns.
  const auto same_lr = claims_of(
      "    - claim: at one step size\n      where: {model.residual.attention: true, train.lr: 0.1}\n"
      "      ratio: {of: final_loss, over: {model.residual.attention: false, train.lr: 0.1}, min: 0.8}\n",
      head);
  v = check(same_lr[0], c);
  EXPECT_FALSE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("= 0.5 "), std::string::npos) << v.measured;
  // An arm with no stable value has no best.
  for (auto& r : c.runs)
    if (r.config.model.residual_attention.value == 0.0) r.summary["status"] = "stalled";
  v = check(claims[0], c);
  EXPECT_FALSE(v.shown) << v.measured;
  EXPECT_NE(v.measured.find("no best train.lr of none"), std::string::npos) << v.measured;
  EXPECT_NE(claim_error("    - claim: x\n      ratio: {of: final_loss, over: {seed: 0}, at_best: model.lr}\n")
                .find("ratio.at_best: expected a key"),
            std::string::npos);
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
  EXPECT_NE(error("    - claim: x\n      fit: {y: final_loss, x: sigma_min_g1, slope: any, correlation: {min: 0.9}}\n")
                .find("fit.slope: expected {min: A, max: B} for each x"),
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
  EXPECT_NE(good.find("| experiment | claims shown | its first claim |\n| --- | --- | --- |\n"
                      "| [residual_vs_plain](#residual_vs_plain) | 3 of 3 | With the attention residual the loss "
                      "falls linearly to tolerance within 1,000 steps at lr 0.015 |\n"),
            std::string::npos)
      << good;

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
  EXPECT_NE(bad.find("| With the attention residual the loss falls linearly to tolerance within 1,000 steps at lr "
                     "0.015 | **not shown** |"),
            std::string::npos)
      << bad;
  EXPECT_NE(bad.find("| [residual_vs_plain](#residual_vs_plain) | 1 of 3 |"), std::string::npos) << bad;
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
  EXPECT_NE(results.find("| [a_long](#a_long) | not finished | |\n| b_next | not started | |\n"), std::string::npos)
      << results;
  EXPECT_EQ(results.find("| Every run goes the whole way |"), std::string::npos) << "a verdict on a partial sweep";
}

}  // namespace
}  // namespace resgd
