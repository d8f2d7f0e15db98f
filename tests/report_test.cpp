// report.md and plots: the numbers equal those recomputed from the runs' own files, and the
// plots are real PNG and SVG images.
#include "resgd/report/report.h"
#include "resgd/run/summary.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <numeric>
#include <sstream>

#include "resgd/core/csv.h"
#include "resgd/report/plots.h"
#include "resgd/run/runner.h"
#include "resgd/science/tensor_io.h"
#include "test_util.h"

namespace resgd {
namespace {

namespace fs = std::filesystem;
using testing::markdown_table;
using testing::slurp;
using testing::TempDir;

// Residual on/off x two step sizes x two seeds, under uniform attention (W_Q = W_K = 0): the
// residual runs converge at the small step, every run diverges at the large one, and the
// plain model's G is rank one (cond inf, null in summary.json), so the report meets every case.
const char* kSweep =
    "name: tiny_report\n"
    "data: {num_samples: 3, seq_len: 4, dim: 5, target_dim: 2}\n"
    "model: {ffn_width: 8, init: {W_Q: 0, W_K: 0}}\n"
    "train: {max_iters: 40, rel_tolerance: 0.2}\n"
    "diagnostics: {every: 5}\n"
    "sweep: {model.residual.attention: [true, false], train.lr: [0.1, 2.0], seeds: [0, 1]}\n";

/// Options that write the report when the runs are done, as `resgd run` does.
RunOptions reported(const fs::path& out) {
  RunOptions options;
  options.out = out;
  options.finish = [out](const std::vector<RunRecord>&) { write_report(out); };
  return options;
}

/// Runs kSweep once for all tests of this file.
class SweepReport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    RunOptions options = reported(dir_->path() / "sweep");
    run_experiment(load_config_text(kSweep, "sweep.yaml"), options);
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path out() { return dir_->path() / "sweep"; }
  static TempDir* dir_;
};
TempDir* SweepReport::dir_ = nullptr;

/// A metrics.csv cell as a number; nullopt when empty (not computed that iteration).
std::optional<double> cell(const CsvTable& table, size_t row, const std::string& column) {
  const std::string& text = table.rows.at(row).at(table.column(column));
  return text.empty() ? std::nullopt : std::optional<double>(std::stod(text));  // stod reads inf
}

/// What the report should show for these values: "mean [min, max]", the lone value, "(k/n)".
std::string expected_cell(const std::vector<std::optional<double>>& values) {
  std::vector<double> present;
  for (const auto& v : values)
    if (v) present.push_back(*v);
  if (present.empty()) return "-";
  double sum = 0;
  for (double v : present) sum += v;
  const double lo = *std::min_element(present.begin(), present.end());
  const double hi = *std::max_element(present.begin(), present.end());
  std::string out = present.size() == 1 ? fmt::format("{:.4g}", present[0])
                                        : fmt::format("{:.4g} [{:.4g}, {:.4g}]", sum / double(present.size()), lo, hi);
  if (present.size() < values.size()) out += fmt::format(" ({}/{})", present.size(), values.size());
  return out;
}

bool is_png(const fs::path& path) { return slurp(path).rfind("\x89PNG\r\n\x1a\n", 0) == 0; }

TEST_F(SweepReport, EightRunsAndAReportWhoseNumbersMatchTheRunFiles) {
  EXPECT_EQ(read_csv(out() / "sweep.csv").rows.size(), 8u);
  const std::string report = slurp(out() / "report.md");
  const auto table = markdown_table(report, "## By swept setting");
  ASSERT_EQ(table.size(), 5u) << report;  // header + 4 settings
  const auto& header = table[0];
  auto at = [&](const std::vector<std::string>& row, const std::string& title) {
    const auto it = std::find(header.begin(), header.end(), title);
    EXPECT_NE(it, header.end()) << title;
    return row.at(static_cast<size_t>(it - header.begin()));
  };
  size_t converged_total = 0, diverged_total = 0;
  for (size_t r = 1; r < table.size(); ++r) {
    const auto& row = table[r];
    SCOPED_TRACE(row[0] + " " + row[1]);
    // Recompute from the two seeds' metrics.csv and summary.json alone: the counts over
    // both, the numbers over the runs that did not diverge.
    std::vector<std::optional<double>> final_loss, cond_init, cond_end, rate, iters_to_tol;
    size_t converged = 0, diverged = 0;
    for (int seed : {0, 1}) {
      // Tables show on and off, and each value as the resolved configuration writes it.
      const std::string attention = row[0] == "on" ? "true" : "false";
      const std::string lr = row[1] == "2" ? "2.0" : row[1];  // as the sweep spells it
      const fs::path run =
          out() / "runs" / fmt::format("model.residual.attention={},train.lr={}/seed={}", attention, lr, seed);
      const CsvTable metrics = read_csv(run / "metrics.csv");
      const auto summary = nlohmann::json::parse(slurp(run / "summary.json"));
      converged += summary["status"] == "converged";
      diverged += summary["status"] == "diverged";
      if (summary["status"] == "diverged") continue;
      const size_t last = metrics.rows.size() - 1;
      final_loss.push_back(cell(metrics, last, "loss"));
      // cond_g1 is diagnosed at iteration 0 and at the last one; NaN (diverged) counts as inf.
      for (auto [values, index] : {std::pair{&cond_init, size_t{0}}, std::pair{&cond_end, last}}) {
        const double v = cell(metrics, index, "cond_g1").value();
        values->push_back(std::isnan(v) ? INFINITY : v);
      }
      rate.push_back(summary["converges_linearly"].get<bool>()
                         ? std::optional<double>(1 - summary["linear_rate"].get<double>())
                         : std::nullopt);
      iters_to_tol.push_back(summary["iters_to_tol"].is_null()
                                 ? std::nullopt
                                 : std::optional<double>(summary["iters_to_tol"].get<double>()));
    }
    converged_total += converged;
    diverged_total += diverged;
    EXPECT_EQ(at(row, "runs"), "2");
    EXPECT_EQ(at(row, "converged"), fmt::format("{}/2", converged));
    EXPECT_EQ(at(row, "diverged"), fmt::format("{}/2", diverged));
    EXPECT_EQ(at(row, "final loss"), expected_cell(final_loss));
    EXPECT_EQ(at(row, "1 - rate"), expected_cell(rate));
    EXPECT_EQ(at(row, "iters to tol"), expected_cell(iters_to_tol));
    EXPECT_EQ(at(row, "cond_g1 init"), expected_cell(cond_init));
    EXPECT_EQ(at(row, "cond_g1 end"), expected_cell(cond_end));
  }
  // The sweep is sized to show both outcomes and a rank-one G.
  EXPECT_GT(converged_total, 0u);
  EXPECT_GT(diverged_total, 0u);
  EXPECT_NE(report.find("| inf [inf, inf] |"), std::string::npos);
  EXPECT_EQ(markdown_table(report, "## Runs").size(), 9u);
}

TEST_F(SweepReport, WithinSequenceLossIsTheTargetsSpreadAndAPlateauOnItEndsAtHalfOfIt) {
  // summary.json's within_sequence_loss, from the run's own targets in tensors/init.pt;
  // sweep.csv repeats it, and the run table gives the final loss over it. Uniform attention
  // without the residual makes every output constant over a sequence, so no logged loss of
  // a plain run lies below it (Training.UniformAttentionWithoutTheResidual... runs it long).
  const ExperimentConfig config = load_config_text(kSweep, "sweep.yaml");
  const CsvTable sweep = read_csv(out() / "sweep.csv");
  const auto runs = markdown_table(slurp(out() / "report.md"), "## Runs");
  const auto& header = runs.at(0);
  const auto ratio_column = std::find(header.begin(), header.end(), "final / within-seq loss");
  ASSERT_NE(ratio_column, header.end());
  size_t r = 0, plain_checked = 0, below_half = 0;
  for (const auto& point : expand_sweep(config)) {
    const fs::path run = out() / "runs" / point.dir_name();
    SCOPED_TRACE(run.string());
    const auto summary = nlohmann::json::parse(slurp(run / "summary.json"));
    const torch::Tensor Y = load_tensors(run / "tensors" / "init.pt").at("Y");  // (N, n, d_y)
    const torch::Tensor spread = Y - Y.mean(1, /*keepdim=*/true);
    const double expected = 0.5 * spread.pow(2).sum().item<double>();
    const double floor = summary.at("within_sequence_loss").get<double>();
    EXPECT_NEAR(floor, expected, 1e-13 * expected);
    EXPECT_EQ(*cell(sweep, r, "within_sequence_loss"), floor);
    const auto& row = runs.at(r + 1);
    EXPECT_EQ(row[0], "runs/" + point.dir_name());
    EXPECT_EQ(sweep.rows.at(r).at(sweep.column("run")), row[0]) << "one name for a run in sweep.csv and report.md";
    const double final_loss = summary.at("final_loss").is_null() ? NAN : summary["final_loss"].get<double>();
    EXPECT_EQ(row.at(static_cast<size_t>(ratio_column - header.begin())),
              std::isfinite(final_loss) ? fmt::format("{:.4g}", final_loss / floor) : "-");
    // Where the plateau at that floor ends: the first metrics.csv row at or below half of it.
    const CsvTable metrics = read_csv(run / "metrics.csv");
    std::optional<double> half;
    for (size_t i = 0; i < metrics.rows.size() && !half; ++i)
      if (*cell(metrics, i, "loss") <= 0.5 * expected) half = *cell(metrics, i, "iter");
    if (half) {
      EXPECT_EQ(summary.at("iters_to_half_within_sequence").get<double>(), *half);
      ++below_half;
    } else {
      EXPECT_TRUE(summary.at("iters_to_half_within_sequence").is_null());
    }
    EXPECT_EQ(cell(sweep, r, "iters_to_half_within_sequence"), half);
    // The spectrum of G at the last diagnosed row, as metrics.csv has it there.
    if (!summary.at("diagnosed_final_iter").is_null()) {
      const auto at = summary["diagnosed_final_iter"].get<double>();
      for (size_t i = 0; i < metrics.rows.size(); ++i) {
        if (*cell(metrics, i, "iter") != at) continue;
        for (const char* stem : {"sigma_min_g", "sigma_max_g"}) {
          EXPECT_EQ(cell(sweep, r, std::string(stem) + "_final1"), cell(metrics, i, std::string(stem) + "1"));
        }
      }
    }
    if (point.values[0].second == "false" && summary["status"] != "diverged") {
      for (size_t i = 0; i < metrics.rows.size(); ++i) EXPECT_GE(*cell(metrics, i, "loss"), floor * (1 - 1e-12)) << i;
      ++plain_checked;
    }
    ++r;
  }
  EXPECT_EQ(plain_checked, 2u);  // lr 0.1, both seeds
  EXPECT_GT(below_half, 0u);     // some residual run leaves the floor far behind
}

TEST_F(SweepReport, StepSizesNameTheLargestConvergingAndSmallestDivergingLr) {
  // Recomputed from each run's status: per residual setting, over lr 0.1 and 2.0.
  const ExperimentConfig config = load_config_text(kSweep, "sweep.yaml");
  std::map<std::string, std::map<double, std::vector<std::string>>> statuses;  // attention -> lr -> statuses
  for (const auto& point : expand_sweep(config)) {
    const auto summary = nlohmann::json::parse(slurp(out() / "runs" / point.dir_name() / "summary.json"));
    const std::string attention = point.values[0].second == "true" ? "on" : "off";  // as tables show it
    statuses[attention][std::stod(point.values[1].second)].push_back(summary["status"]);
  }
  const auto table = markdown_table(slurp(out() / "report.md"), "## Step sizes");
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(table[0], (std::vector<std::string>{"residual.attention", "largest lr, every run converged",
                                                "smallest lr, a run diverged"}));
  for (size_t row = 1; row < table.size(); ++row) {
    std::string converging = "-", diverging = "-";
    for (const auto& [lr, runs] : statuses.at(table[row][0])) {  // ascending lr
      if (std::all_of(runs.begin(), runs.end(), [](const std::string& s) { return s == "converged"; }))
        converging = fmt::format("{:.4g}", lr);
      if (diverging == "-" && std::count(runs.begin(), runs.end(), "diverged")) diverging = fmt::format("{:.4g}", lr);
    }
    EXPECT_EQ(table[row][1], converging) << table[row][0];
    EXPECT_EQ(table[row][2], diverging) << table[row][0];
  }
  EXPECT_EQ(table[1], (std::vector<std::string>{"on", "0.1", "2"}));  // the fixture shows both edges
}

TEST_F(SweepReport, PlotsAreValidPngAndSvgFiles) {
  if (!find_gnuplot()) GTEST_SKIP() << "gnuplot is not on PATH";
  const std::string report = slurp(out() / "report.md");
  for (const char* name : {"loss", "cond_g1", "sigma_min_g1", "svals_g1", "final_loss_vs_lr", "one_minus_rate_vs_lr"}) {
    SCOPED_TRACE(name);
    const fs::path png = out() / "plots" / (std::string(name) + ".png");
    const fs::path svg = out() / "plots" / (std::string(name) + ".svg");
    ASSERT_TRUE(fs::exists(png) && fs::exists(svg)) << slurp(out() / "plots" / "gnuplot.log");
    EXPECT_TRUE(is_png(png));
    EXPECT_GT(fs::file_size(png), 5000u);
    EXPECT_NE(slurp(svg).find("<svg"), std::string::npos);
    EXPECT_GT(fs::file_size(svg), 5000u);
    EXPECT_NE(report.find(fmt::format("(plots/{}.png)", name)), std::string::npos);
  }
  // The loss, logged every step, is a line; cond_g1, diagnosed every 5 of 40 steps, shows its
  // measurements as points on it.
  EXPECT_NE(slurp(out() / "plots" / "loss.gp").find("with lines lw"), std::string::npos);
  EXPECT_EQ(slurp(out() / "plots" / "loss.gp").find("linespoints"), std::string::npos);
  EXPECT_NE(slurp(out() / "plots" / "cond_g1.gp").find("with linespoints pt 7"), std::string::npos);
  // No run measured the sharpness (it is opt-in): no plot of it, and no note about it.
  EXPECT_FALSE(fs::exists(out() / "plots" / "sharpness.png"));
  EXPECT_EQ(report.find("sharpness"), std::string::npos);
}

TEST_F(SweepReport, TheLossAxisEndsTenTimesAboveTheRunsThatDidNotDiverge) {
  // The runs at lr 2.0 diverge (to losses far above the others'); the axis keeps the
  // others readable, and the report says why the diverged lines leave it.
  if (!find_gnuplot()) GTEST_SKIP() << "gnuplot is not on PATH";
  double kept = 0, diverged = 0;
  for (const auto& point : expand_sweep(load_config_text(kSweep, "sweep.yaml"))) {
    const fs::path run = out() / "runs" / point.dir_name();
    const bool did_diverge = nlohmann::json::parse(slurp(run / "summary.json"))["status"] == "diverged";
    double& largest = did_diverge ? diverged : kept;
    const CsvTable metrics = read_csv(run / "metrics.csv");
    for (size_t i = 0; i < metrics.rows.size(); ++i)
      if (const auto loss = cell(metrics, i, "loss"); loss && std::isfinite(*loss)) largest = std::max(largest, *loss);
  }
  ASSERT_GT(diverged, 10 * kept) << "the fixture's large step no longer diverges far";
  const std::string top = fmt::format("{:.3g}", 10 * kept);
  EXPECT_NE(slurp(out() / "plots" / "loss.gp").find("set yrange [*:" + top + "]"), std::string::npos) << top;
  EXPECT_NE(slurp(out() / "report.md").find("loss: the axis ends at " + top), std::string::npos);
  EXPECT_EQ(slurp(out() / "plots" / "cond_g1.gp").find("set yrange"), std::string::npos) << "the loss plot only";
}

TEST_F(SweepReport, PlotsDrawnSideBySideAreReportedInDrawingOrderWithTheirFailures) {
  // A stand-in gnuplot that fails on the cond_g plots, cuts the sigma_min images short
  // while exiting 0 (as gnuplot does on a full disk), and draws the others whole after a
  // pause, so several run at once and finish out of order.
  TempDir copy;
  fs::copy(out(), copy / "sweep", fs::copy_options::recursive);
  fs::remove_all(copy / "sweep" / "plots");
  testing::write_text(
      copy / "fake-gnuplot",
      "#!/bin/sh\nname=\"plots/$(basename \"$1\" .gp)\"\n"
      "case \"$1\" in *cond_g*) echo \"cannot draw $1\"; exit 1;; esac\n"
      "case \"$1\" in *sigma_min*) printf '\\211PNG' > \"$name.png\"; printf '<svg>' > \"$name.svg\"; exit 0;; "
      "esac\n"
      "sleep 0.1\nprintf '\\211PNG\\0\\0\\0\\0IEND\\256\\102\\140\\202' > \"$name.png\"\n"
      "printf '<svg>\\n</svg>\\n' > \"$name.svg\"\n");
  fs::permissions(copy / "fake-gnuplot", fs::perms::owner_all);
  std::vector<PlotRun> runs;
  for (const auto& point : expand_sweep(load_config_text(kSweep, "sweep.yaml")))
    runs.push_back({fs::path("runs") / point.dir_name(), point.dir_name(), 0, "0", 0, false, 0.1});
  const PlotResult result = draw_plots(copy / "fake-gnuplot", copy / "sweep", runs, {});
  EXPECT_EQ(result.drawn, (std::vector<std::string>{"loss", "svals_g1"}));
  const std::string why = ": gnuplot failed or left an incomplete image (a full disk?); see plots/gnuplot.log";
  EXPECT_EQ(result.failed, (std::vector<std::string>{"cond_g1" + why, "sigma_min_g1" + why}));
  EXPECT_NE(slurp(copy / "sweep" / "plots" / "gnuplot.log").find("cannot draw plots/cond_g1.gp"), std::string::npos);
}

TEST_F(SweepReport, InitSingularValuesRebuildTheRunsAttentionOutput) {
  // The rebuilt G must have the extreme singular values the run itself recorded.
  const fs::path run = out() / "runs" / "model.residual.attention=true,train.lr=0.1" / "seed=0";
  const auto summary = nlohmann::json::parse(slurp(run / "summary.json"));
  const auto spectra = init_singular_values(run);
  ASSERT_EQ(spectra.size(), 1u);
  EXPECT_EQ(spectra[0].sizes(), torch::IntArrayRef({3, 4}));  // (N, min(n, d))
  EXPECT_NEAR(spectra[0].select(1, 0).max().item<double>(), summary["sigma_max_g"][0].get<double>(), 1e-10);
  EXPECT_NEAR(spectra[0].select(1, -1).min().item<double>(), summary["sigma_min_g"][0].get<double>(), 1e-10);
}

TEST_F(SweepReport, WithoutGnuplotTheTablesAreWrittenAndThePlotsSkipped) {
  TempDir empty;
  const std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  setenv("PATH", empty.path().c_str(), 1);
  std::stringstream log;
  fs::path report_path;
  EXPECT_NO_THROW(report_path = write_report(out(), log));
  setenv("PATH", path.c_str(), 1);
  const std::string report = slurp(report_path);
  EXPECT_NE(report.find("Plots skipped: gnuplot was not found"), std::string::npos);
  EXPECT_NE(report.find("## By swept setting"), std::string::npos);
  EXPECT_NE(log.str().find("plots skipped"), std::string::npos);
}

TEST(Report, PooledTargetsHaveNoWithinSequenceLossAndNoColumnForIt) {
  // The mean readout fits one target per sequence: no tokens for it to vary over.
  TempDir dir;
  RunOptions options = reported(dir / "pooled");
  run_experiment(load_config_text("data: {num_samples: 3, seq_len: 4, dim: 5, target_dim: 2}\n"
                                  "model: {ffn_width: 8, readout: mean}\ntrain: {max_iters: 5}\n",
                                  "pooled.yaml"),
                 options);
  const auto summary = nlohmann::json::parse(slurp(options.out / "summary.json"));
  ASSERT_TRUE(summary.contains("within_sequence_loss"));
  EXPECT_TRUE(summary["within_sequence_loss"].is_null());
  EXPECT_TRUE(summary.at("iters_to_half_within_sequence").is_null());
  EXPECT_EQ(slurp(options.out / "report.md").find("within-seq"), std::string::npos);
}

TEST(Report, SharpnessGivesEachStepSizeItsQuadraticEdgeAndAPlot) {
  // diagnostics.sharpness on a step-size sweep: the summary's sharpness is metrics.csv's at
  // iteration 0 and sharpness_max the column's largest finite value; the report's step-size
  // table adds 2 / sharpness at init over each line's runs, and lr x sharpness is drawn.
  TempDir dir;
  RunOptions options = reported(dir / "edge");
  const auto config = load_config_text(
      "data: {num_samples: 3, seq_len: 4, dim: 5, target_dim: 2}\n"
      "model: {ffn_width: 8}\ntrain: {max_iters: 30, rel_tolerance: 0.2}\n"
      "diagnostics: {every: 3, sharpness: true}\n"
      "sweep: {model.residual.attention: [true, false], train.lr: [0.1, 2.0], seeds: [0, 1]}\n",
      "edge.yaml");
  const auto records = run_experiment(config, options);
  std::map<std::string, std::vector<std::optional<double>>> stable_steps;  // attention -> 2 / sharpness
  const CsvTable sweep = read_csv(options.out / "sweep.csv");
  for (size_t r = 0; r < records.size(); ++r) {
    const auto& s = records[r].summary;
    const CsvTable metrics = read_csv(records[r].dir / "metrics.csv");
    const double at_init = *cell(metrics, 0, "sharpness");
    EXPECT_GT(at_init, 0.0);
    EXPECT_EQ(s["sharpness"].get<double>(), at_init);
    EXPECT_EQ(*cell(sweep, r, "sharpness"), at_init);
    double largest = 0;
    for (size_t row = 0; row < metrics.rows.size(); ++row)
      if (const auto v = cell(metrics, row, "sharpness"); v && std::isfinite(*v)) largest = std::max(largest, *v);
    EXPECT_EQ(s["sharpness_max"].get<double>(), largest);
    const auto at_end = cell(metrics, metrics.rows.size() - 1, "sharpness");  // the last row is diagnosed
    ASSERT_TRUE(at_end.has_value());
    if (std::isfinite(*at_end))
      EXPECT_EQ(s["sharpness_final"].get<double>(), *at_end);
    else
      EXPECT_TRUE(s["sharpness_final"].is_null());
    double loss_max = 0;
    for (size_t row = 0; row < metrics.rows.size(); ++row)
      if (const auto v = cell(metrics, row, "loss"); v && std::isfinite(*v)) loss_max = std::max(loss_max, *v);
    EXPECT_EQ(s["loss_max"].get<double>(), loss_max);
    stable_steps[records[r].point.values[0].second == "true" ? "on" : "off"].push_back(2 / at_init);
  }
  const auto table = markdown_table(slurp(options.out / "report.md"), "## Step sizes");
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(table[0].back(), "2 / sharpness at init");
  for (size_t row = 1; row < table.size(); ++row)
    EXPECT_EQ(table[row].back(), expected_cell(stable_steps.at(table[row][0])));
  if (find_gnuplot()) {
    EXPECT_TRUE(is_png(options.out / "plots" / "sharpness.png"));
  }
  // The console table after the sweep shows it too, to four digits.
  const std::string console = format_summary_table(config, records);
  EXPECT_NE(console.find("sharpness (init)"), std::string::npos) << console;
  EXPECT_NE(console.find(fmt::format("{:.4g}", records.back().summary["sharpness"].get<double>())), std::string::npos)
      << console;
}

TEST(Report, RateAndItsBoundsAreFittedAgainstSigmaMinG1) {
  // A scaled attention residual moves sigma_min_g1; the report fits each quantity as a
  // power of it. Recomputed here from the runs' summary.json, and the summary's values at
  // initialization checked against metrics.csv's first row.
  TempDir dir;
  RunOptions options = reported(dir / "scaled");
  const auto config = load_config_text(
      "data: {num_samples: 4, seq_len: 4, dim: 6, target: teacher, target_dim: 1}\n"
      "model: {ffn_width: 32}\ntrain: {lr: 0.05, max_iters: 300}\ndiagnostics: {every: 10, ntk: true}\n"
      "sweep: {model.residual.attention: [0.1, 0.3, 1.0], seeds: [0, 1]}\n",
      "scaled.yaml");
  const auto records = run_experiment(config, options);
  std::vector<double> log_sigma, log_ntk;
  for (const auto& record : records) {
    const auto& s = record.summary;
    const CsvTable metrics = read_csv(record.dir / "metrics.csv");
    for (const char* key : {"sigma_min_phi", "ntk_lambda_min"})
      EXPECT_NEAR(s[key].get<double>(), *cell(metrics, 0, key), 1e-12 * std::abs(*cell(metrics, 0, key))) << key;
    log_sigma.push_back(std::log(s["sigma_min_g"][0].get<double>()));
    log_ntk.push_back(std::log(s["ntk_lambda_min"].get<double>()));
  }
  const double n = static_cast<double>(log_sigma.size());
  const double mx = std::accumulate(log_sigma.begin(), log_sigma.end(), 0.0) / n;
  const double my = std::accumulate(log_ntk.begin(), log_ntk.end(), 0.0) / n;
  double sxx = 0, syy = 0, sxy = 0;
  for (size_t i = 0; i < log_sigma.size(); ++i) {
    sxx += (log_sigma[i] - mx) * (log_sigma[i] - mx);
    syy += (log_ntk[i] - my) * (log_ntk[i] - my);
    sxy += (log_sigma[i] - mx) * (log_ntk[i] - my);
  }
  const auto table = markdown_table(slurp(options.out / "report.md"), "## Against sigma_min_g1");
  const auto row =
      std::find_if(table.begin(), table.end(), [](const auto& r) { return r[0] == "ntk_lambda_min (init)"; });
  ASSERT_NE(row, table.end());
  EXPECT_EQ((*row)[1], "6");
  EXPECT_EQ((*row)[2], fmt::format("{:.3f}", sxy / sxx));
  EXPECT_EQ((*row)[3], fmt::format("{:.4f}", sxy / std::sqrt(sxx * syy)));
  EXPECT_GT(sxy, 0.0) << "the NTK's floor rises with sigma_min_g1";
  const CsvTable sweep = read_csv(options.out / "sweep.csv");
  EXPECT_FALSE(sweep.rows.front()[sweep.column("ntk_lambda_min")].empty());
  if (find_gnuplot()) {  // the same points, log-log, one per run and quantity
    EXPECT_TRUE(is_png(options.out / "plots" / "rate_vs_sigma_min_g1.png"));
    const std::string script = slurp(options.out / "plots" / "rate_vs_sigma_min_g1.gp");
    EXPECT_NE(script.find("set logscale x"), std::string::npos);
    EXPECT_NE(script.find(fmt::format("ntk_lambda_min (init) (slope {:.2f})", sxy / sxx)), std::string::npos);
  }
}

TEST(Report, RatesOfRunsThatTookDifferentStepsAreFittedPerUnitStepAndWithinEachValueOfAKey) {
  // lr from each run's NTK edge: every run takes its own step. The rate row is then
  // (1 - rate) / lr, recomputed here from the summaries; each residual gain gets its own fit.
  TempDir dir;
  RunOptions options = reported(dir / "edge");
  const auto records = run_experiment(
      load_config_text("data: {num_samples: 3, dim: 5, target: teacher, target_dim: 1}\nmodel: {ffn_width: 16}\n"
                       "train: {lr_edge: ntk, lr: 0.5, max_iters: 400, rel_tolerance: 1.0e-6}\n"
                       "diagnostics: {every: 50}\n"
                       "sweep: {model.residual.attention: [0.5, 1.0], data.seq_len: [2, 3, 4]}\n",
                       "edge.yaml"),
      options);
  std::vector<double> u, v;
  for (const auto& record : records) {
    const auto& s = record.summary;
    if (!s["converges_linearly"].get<bool>()) continue;
    u.push_back(std::log(s["sigma_min_g"][0].get<double>()));
    v.push_back(std::log((1 - s["linear_rate"].get<double>()) / s["lr"].get<double>()));
  }
  ASSERT_GE(u.size(), 4u) << "the sweep is sized to converge";
  const double n = static_cast<double>(u.size());
  const double mu = std::accumulate(u.begin(), u.end(), 0.0) / n, mv = std::accumulate(v.begin(), v.end(), 0.0) / n;
  double suu = 0, suv = 0;
  for (size_t i = 0; i < u.size(); ++i) suu += (u[i] - mu) * (u[i] - mu), suv += (u[i] - mu) * (v[i] - mv);
  const std::string report = slurp(options.out / "report.md");
  EXPECT_NE(report.find("so it is (1 - rate) / lr, the rate per unit step"), std::string::npos);
  const auto table = markdown_table(report, "## Against sigma_min_g1");
  ASSERT_GE(table.size(), 2u);
  EXPECT_EQ(table[1][0], "(1 - rate) / lr");
  EXPECT_EQ(table[1][1], std::to_string(u.size()));
  EXPECT_EQ(table[1][2], fmt::format("{:.3f}", suv / suu));
  EXPECT_TRUE(std::any_of(table.begin(), table.end(), [](const auto& row) {
    return row[0] == "(1 - rate) / lr, residual.attention=0.5" || row[0] == "(1 - rate) / lr, residual.attention=1";
  })) << report;
}

TEST(Report, ZippedKeysAreOneAxisOfTheSweepAndOfItsPlots) {
  // Each depth with its own step size: 2 (layers, lr) pairs x 2 residuals, not 2 x 2 x 2.
  TempDir dir;
  RunOptions options = reported(dir / "zipped");
  const auto records = run_experiment(
      load_config_text("data: {num_samples: 2, seq_len: 3, dim: 4, target_dim: 2}\nmodel: {ffn_width: 8}\n"
                       "train: {max_iters: 5}\n"
                       "sweep: {zip: {model.layers: [1, 2], train.lr: [0.1, 0.05]}, "
                       "model.residual.attention: [true, false]}\n",
                       "zipped.yaml"),
      options);
  ASSERT_EQ(records.size(), 4u);
  const CsvTable sweep = read_csv(options.out / "sweep.csv");
  ASSERT_EQ(sweep.rows.size(), 4u);
  for (size_t i = 0; i < sweep.rows.size(); ++i) {
    const auto& row = sweep.rows[i];
    const std::string lr = row[sweep.column("model.layers")] == "1" ? "0.1" : "0.05";
    EXPECT_EQ(row[sweep.column("train.lr")], lr);
    const auto run = load_config_file((records[i].dir / "config.yaml").string());  // what the run trained with
    EXPECT_EQ(fmt::format("{}", run.train.lr), lr);
    EXPECT_EQ(std::to_string(run.model.layers), row[sweep.column("model.layers")]);
  }
  const std::string report = slurp(options.out / "report.md");
  EXPECT_NE(report.find("4 settings of `model.layers` with `train.lr` (zipped), `model.residual.attention`"),
            std::string::npos)
      << report.substr(0, 400);
  EXPECT_EQ(report.find("## Step sizes"), std::string::npos) << "a zipped lr is no grid of step sizes";
  if (find_gnuplot()) {  // against the depth, one line per residual setting: the lr moves with the depth
    const std::string script = slurp(options.out / "plots" / "final_loss_vs_layers.gp");
    EXPECT_NE(script.find("set xlabel 'layers (with lr)'"), std::string::npos) << script;
    EXPECT_NE(script.find("title 'residual.attention=on'"), std::string::npos) << script;
    EXPECT_NE(script.find("title 'residual.attention=off'"), std::string::npos) << script;
    EXPECT_EQ(script.find("lr="), std::string::npos) << script;
    EXPECT_NE(script.find("set key outside right top"), std::string::npos) << "short entries: the key beside the plot";
    // The loss plot's entries name all three keys: its key goes below, leaving the width.
    const std::string loss = slurp(options.out / "plots" / "loss.gp");
    EXPECT_NE(loss.find("title 'layers=1, lr=0.1, residual.attention=on'"), std::string::npos) << loss;
    EXPECT_NE(loss.find("set key outside below center"), std::string::npos) << loss;
    EXPECT_EQ(loss.find("set key outside right"), std::string::npos) << loss;
  }
}

TEST(Report, ConsoleTablesShowFourDigitsOfEveryRealAndEveryDigitOfACount) {
  // A diverged loss can be a whole number (3282354725369853 in float64); it is still a loss.
  const ExperimentConfig config = load_config_text("sweep: {train.lr: [0.1]}\n", "exp.yaml");
  RunRecord record{expand_sweep(config).front(), "runs/x", {}};
  record.summary = {{"status", "diverged"},      {"iters", 1234567},
                    {"initial_loss", 2.0},       {"final_loss", 3282354725369853.0},
                    {"linear_rate", 48.187654},  {"cond_g", {2.79411}},
                    {"pl_ratio_median", nullptr}};
  const std::string table = format_summary_table(config, {record});
  // A diverged run has no rate to show, whatever its fit says.
  EXPECT_NE(table.find("0.1  0     diverged  1234567  3.282e+15   -         2.794           -"), std::string::npos)
      << table;
  EXPECT_EQ(table.find("sharpness"), std::string::npos) << "opt-in: no column without it";
  const std::string line = format_run_line(record, 1, 1);
  EXPECT_NE(line.find("diverged after 1234567 steps, loss 2 -> 3.282e+15, not linear"), std::string::npos) << line;
}

TEST(Report, SingleRunGetsItsOwnReportFromTheCommandLine) {
  TempDir dir;
  testing::write_text(dir / "run.yaml",
                      "data: {num_samples: 2, seq_len: 3, dim: 4, target_dim: 1}\n"
                      "model: {ffn_width: 6}\ntrain: {max_iters: 10}\n");
  ASSERT_EQ(testing::run_resgd(dir, "run run.yaml --out one").exit_code, 0);
  const auto result = testing::run_resgd(dir, "report one");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("report.md"), std::string::npos);
  const auto table = markdown_table(slurp(dir / "one" / "report.md"), "## By swept setting");
  ASSERT_EQ(table.size(), 2u);
  EXPECT_EQ(table[1][0], "1");  // runs
  if (find_gnuplot()) {
    EXPECT_TRUE(is_png(dir / "one" / "plots" / "loss.png"));
    EXPECT_EQ(slurp(dir / "one" / "plots" / "loss.gp").find("set yrange"), std::string::npos) << "nothing diverged";
  }

  const auto missing = testing::run_resgd(dir, "report nowhere");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("nowhere: not a directory"), std::string::npos) << missing.err;
  EXPECT_EQ(missing.out, "") << "no half line of success before the error";
}

}  // namespace
}  // namespace resgd
