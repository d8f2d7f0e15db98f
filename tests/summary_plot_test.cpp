// Figures over runs: the arithmetic of --y, each run's point against sweep.csv, and the
// line fitted per colour against a least-squares fit worked out here.
#include "resgd/report/summary_plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "resgd/core/csv.h"
#include "resgd/report/expression.h"
#include "resgd/report/plots.h"
#include "resgd/run/runner.h"
#include "test_util.h"

namespace resgd {
namespace {

namespace fs = std::filesystem;
using testing::run_resgd;
using testing::slurp;
using testing::TempDir;

std::optional<double> evaluate(const std::string& text, const std::map<std::string, double>& values) {
  return Expression(text, "--y").evaluate([&](const std::string& name) -> std::optional<double> {
    const auto it = values.find(name);
    return it == values.end() ? std::nullopt : std::optional<double>(it->second);
  });
}

std::string parse_error(const std::string& text) {
  try {
    Expression(text, "--y");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Expression, ArithmeticOfNamesWithPrecedenceAndParentheses) {
  const std::map<std::string, double> v = {{"one_minus_rate", 0.03}, {"train.lr", 0.015}, {"sigma_min_g1", 0.5}};
  EXPECT_DOUBLE_EQ(*evaluate("one_minus_rate / train.lr", v), 0.03 / 0.015);
  EXPECT_DOUBLE_EQ(*evaluate("1 + 2 * 3", v), 7);
  EXPECT_DOUBLE_EQ(*evaluate("(1 + 2) * 3", v), 9);
  EXPECT_DOUBLE_EQ(*evaluate("8 / 4 / 2", v), 1);  // left to right
  EXPECT_DOUBLE_EQ(*evaluate("2 - 3 - 4", v), -5);
  EXPECT_DOUBLE_EQ(*evaluate("-sigma_min_g1 * 2", v), -1);
  EXPECT_DOUBLE_EQ(*evaluate("2 * train.lr * 1.5e2", v), 4.5);
  EXPECT_EQ(Expression("a / (b + a) * train.lr", "--y").names(), (std::vector<std::string>{"a", "b", "train.lr"}));
  // No value: a name the run lacks, a division by zero.
  EXPECT_FALSE(evaluate("final_loss / train.lr", v).has_value());
  EXPECT_FALSE(evaluate("train.lr / (sigma_min_g1 - 0.5)", v).has_value());
}

TEST(Expression, WhatIsNoExpressionIsRefusedWithItsPosition) {
  EXPECT_EQ(parse_error("one_minus_rate /"), "--y 'one_minus_rate /': expected a number or a name at character 17");
  EXPECT_EQ(parse_error("(a + b"), "--y '(a + b': expected ')' at character 7");
  EXPECT_EQ(parse_error("a $ b"), "--y 'a $ b': unexpected '$' at character 3");
  EXPECT_EQ(parse_error("a b"), "--y 'a b': unexpected 'b' at character 3");
  EXPECT_EQ(parse_error(" "), "--y: an empty expression");
}

/// The datablocks $points<i> of a gnuplot script, with whether each is drawn as crosses.
std::vector<std::pair<bool, std::vector<std::pair<double, double>>>> point_blocks(const std::string& script) {
  std::vector<std::pair<bool, std::vector<std::pair<double, double>>>> blocks;
  for (size_t i = 0;; ++i) {
    const std::string head = "$points" + std::to_string(i) + " << EOD\nx,y\n";
    const size_t at = script.find(head);
    if (at == std::string::npos) return blocks;
    const size_t end = script.find("EOD\n", at + head.size());
    std::vector<std::pair<double, double>> points;
    const CsvTable rows = parse_csv(script.substr(at + head.size() - 4, end - at - head.size() + 4), "block");
    for (const auto& row : rows.rows) points.emplace_back(std::stod(row[0]), std::stod(row[1]));
    const std::string clause = "$points" + std::to_string(i) + " using 1:2 with points pt ";
    const bool crossed = script.compare(script.find(clause) + clause.size(), 2, "2 ") == 0;
    blocks.emplace_back(crossed, points);
  }
}

TEST(SummaryPlot, EachRunIsAPointAndEachColourGetsItsOwnLeastSquaresLine) {
  TempDir dir;
  const ExperimentConfig config = load_config_text(
      "data: {num_samples: 3, dim: 5, target_dim: 2}\nmodel: {ffn_width: 8}\n"
      "train: {max_iters: 40, rel_tolerance: 0.2}\ndiagnostics: {every: 5}\n"
      "sweep: {data.seq_len: [6, 3, 4], train.lr: [0.1, 2.0], seeds: [0, 1]}\n",
      "fig.yaml");
  RunOptions options;
  options.out = dir / "sweep";
  run_experiment(config, options);
  if (!find_gnuplot()) GTEST_SKIP() << "gnuplot is not on PATH";
  SummaryPlotRequest request;
  request.x = "sigma_min_g1";
  request.y = "initial_loss / data.seq_len";
  request.by = "data.seq_len";
  request.shape = "train.lr";
  request.log_x = request.log_y = request.fit = true;
  const SummaryPlotResult result = plot_summary(options.out, request);
  EXPECT_EQ(result.image, options.out / "plots" / "initial_loss___data.seq_len_vs_sigma_min_g1_by_data.seq_len.png");
  EXPECT_EQ(slurp(result.image).rfind("\x89PNG\r\n\x1a\n", 0), 0u);

  // The points, from sweep.csv: every run, the diverged ones as crosses.
  const CsvTable sweep = read_csv(options.out / "sweep.csv");
  std::multiset<std::pair<double, double>> stable, diverged;
  std::map<double, std::pair<std::vector<double>, std::vector<double>>> by_n;  // n -> (ln x, ln y) fitted
  for (const auto& row : sweep.rows) {
    const double n = std::stod(row[sweep.column("data.seq_len")]);
    const double x = std::stod(row[sweep.column("sigma_min_g1")]);
    const double y = std::stod(row[sweep.column("initial_loss")]) / n;
    if (row[sweep.column("status")] == "diverged") {
      diverged.insert({x, y});
      continue;
    }
    stable.insert({x, y});
    by_n[n].first.push_back(std::log(x));
    by_n[n].second.push_back(std::log(y));
  }
  ASSERT_FALSE(diverged.empty()) << "lr 2.0 is sized to diverge";
  const std::string script = slurp(options.out / "plots" / (result.image.stem().string() + ".gp"));
  std::multiset<std::pair<double, double>> drawn_stable, drawn_crossed;
  for (const auto& [crossed, points] : point_blocks(script))
    (crossed ? drawn_crossed : drawn_stable).insert(points.begin(), points.end());
  EXPECT_EQ(drawn_stable, stable);
  EXPECT_EQ(drawn_crossed, diverged);

  // One line per n, in the values' order, against least squares of ln y on ln x here.
  ASSERT_EQ(result.fits.size(), by_n.size());
  size_t i = 0;
  for (const auto& [n, uv] : by_n) {
    const auto& [u, v] = uv;
    double mu = 0, mv = 0;
    for (size_t k = 0; k < u.size(); ++k) mu += u[k] / double(u.size()), mv += v[k] / double(u.size());
    double suu = 0, suv = 0;
    for (size_t k = 0; k < u.size(); ++k) suu += (u[k] - mu) * (u[k] - mu), suv += (u[k] - mu) * (v[k] - mv);
    const FittedLine& fit = result.fits[i++];
    EXPECT_EQ(fit.group, fmt::format("seq_len={:g}", n));
    EXPECT_NEAR(fit.slope, suv / suu, 1e-12 * std::abs(suv / suu));
    EXPECT_NEAR(fit.intercept, mv - suv / suu * mu, 1e-12 * (1 + std::abs(mv)));
    EXPECT_EQ(fit.runs, u.size());
  }
  // The legend outside the axes, its entries in the swept values' order.
  EXPECT_NE(script.find("set key outside"), std::string::npos);
  const size_t three = script.find("title 'seq_len=3'"), four = script.find("title 'seq_len=4'"),
               six = script.find("title 'seq_len=6'");
  ASSERT_NE(six, std::string::npos);
  EXPECT_LT(three, four);
  EXPECT_LT(four, six);
  EXPECT_LT(script.find("title 'lr=0.1'"), script.find("title 'lr=2.0'"));
  EXPECT_NE(script.find("title 'diverged or stalled (not fitted)'"), std::string::npos);
}

TEST(SummaryPlot, TheCommandPrintsEachFitAndRefusesWhatIsNoColumnOrKey) {
  TempDir dir;
  testing::write_text(dir / "fig.yaml",
                      "data: {num_samples: 3, seq_len: 4, dim: 5, target_dim: 2}\nmodel: {ffn_width: 8}\n"
                      "train: {max_iters: 40, rel_tolerance: 0.2}\ndiagnostics: {every: 5}\n"
                      "sweep: {model.residual.attention: [0.5, 1.0, 2.0], seeds: [0, 1]}\n");
  ASSERT_EQ(run_resgd(dir, "run fig.yaml --out out").exit_code, 0);
  if (!find_gnuplot()) GTEST_SKIP() << "gnuplot is not on PATH";
  auto result = run_resgd(dir, "plot out --x model.residual.attention --y 'final_loss / initial_loss' --logy --fit");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("fit all runs: ln y = "), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("6 runs at 3 distinct x"), std::string::npos) << result.out;
  EXPECT_TRUE(fs::exists(dir / "out" / "plots" / "final_loss___initial_loss_vs_model.residual.attention.png"));

  result = run_resgd(dir, "plot out --x sigma_min_g1 --y 'final_loss / no_such_column'");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--y: 'no_such_column' is no summary column, derived metric or key"), std::string::npos)
      << result.err;
  result = run_resgd(dir, "plot out --y loss --fit");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--x: 'iter' is no summary column, derived metric or key; one point per run is drawn"),
            std::string::npos)
      << result.err;
  // Two metrics.csv columns are curves, one per run, as before.
  result = run_resgd(dir, "plot out --x sigma_min_g1 --y cond_g1");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "plots" / "cond_g1_vs_sigma_min_g1.png"));
  result = run_resgd(dir, "plot out --x sigma_min_g1 --y final_loss --by model.depth");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--by: unknown key 'model.depth'"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace resgd
