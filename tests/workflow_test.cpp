// A researcher's workflow through the `resgd` command: overrides that never vanish, data
// files found from the experiment file, figures and fits a diverged run cannot spoil,
// compare, plot, report on a folder, the version, the install layout and the Python side.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <sstream>

#include "resgd/core/config.h"
#include "resgd/core/csv.h"
#include "resgd/science/tensor_io.h"
#include "test_util.h"

namespace resgd {
namespace {

namespace fs = std::filesystem;
using testing::markdown_table;
using testing::run_resgd;
using testing::slurp;
using testing::TempDir;
using testing::write_text;

// Small enough for a run in milliseconds; residual on at lr 0.1 converges.
const char* kTiny =
    "name: tiny\n"
    "data: {num_samples: 3, seq_len: 4, dim: 5, target_dim: 2}\n"
    "model: {ffn_width: 8}\n"
    "train: {max_iters: 60, rel_tolerance: 1.0e-3}\n"
    "diagnostics: {every: 5}\n";

nlohmann::json summary_of(const fs::path& run) { return nlohmann::json::parse(slurp(run / "summary.json")); }

bool is_whole_png(const fs::path& path) {
  const std::string bytes = slurp(path);
  static const std::string iend("IEND\xae\x42\x60\x82", 8);
  return bytes.rfind("\x89PNG\r\n\x1a\n", 0) == 0 && bytes.size() > 16 &&
         bytes.compare(bytes.size() - iend.size(), iend.size(), iend) == 0;
}

/// The column titled `title` of a markdown table (header first).
std::vector<std::string> column(const std::vector<std::vector<std::string>>& table, const std::string& title) {
  std::vector<std::string> out;
  const auto& header = table.at(0);
  const auto it = std::find(header.begin(), header.end(), title);
  EXPECT_NE(it, header.end()) << title;
  if (it == header.end()) return out;
  for (size_t r = 1; r < table.size(); ++r) out.push_back(table[r].at(static_cast<size_t>(it - header.begin())));
  return out;
}

// --- Overrides that never vanish -------------------------------------------------------------

TEST(Workflow, AnOverrideOfASweptKeyIsRefusedNamingBothPlacesAndTheWayOut) {
  TempDir dir;
  write_text(dir / "exp.yaml", std::string(kTiny) + "sweep:\n  model.residual.attention: [true, false]\n");
  const auto result = run_resgd(dir, "run exp.yaml --out out --set model.residual.attention=false");
  EXPECT_EQ(result.exit_code, 2) << result.err;
  for (const char* part : {"--set model.residual.attention=false", "exp.yaml:7:3",
                           "--set sweep.model.residual.attention=[false]", "--set sweep={}"})
    EXPECT_NE(result.err.find(part), std::string::npos) << part << " in: " << result.err;
  EXPECT_FALSE(fs::exists(dir / "out"));

  // The ways out it names both work: one run with the value asked for.
  for (const auto& [way, shown] :
       {std::pair{"--set sweep.model.residual.attention=[false]", "model.residual.attention: [false]"},
        {"--set sweep={} --set model.residual.attention=false", "attention: false"}}) {
    const auto ok = run_resgd(dir, std::string("validate exp.yaml ") + way);
    EXPECT_EQ(ok.exit_code, 0) << way << ": " << ok.err;
    EXPECT_NE(ok.err.find("1 run;"), std::string::npos) << ok.err;
    EXPECT_NE(ok.out.find(shown), std::string::npos) << ok.out;
  }
}

TEST(Workflow, ASeedBesideSweptSeedsAndAKeySetTwiceToTwoValuesAreRefused) {
  TempDir dir;
  write_text(dir / "exp.yaml", std::string(kTiny) + "sweep: {seeds: [0, 1]}\n");
  auto result = run_resgd(dir, "validate exp.yaml --set seed=3");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("sweep.seeds"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("--set sweep.seeds=[3]"), std::string::npos) << result.err;

  write_text(dir / "plain.yaml", kTiny);
  result = run_resgd(dir, "validate plain.yaml --set train.lr=0.1 --set train.lr=0.2");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--set train.lr=0.2"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("--set train.lr=0.1"), std::string::npos) << result.err;
  // The same value twice (a script that adds a flag to a command line) is no conflict.
  result = run_resgd(dir, "validate plain.yaml --set train.lr=0.1 --set train.lr=1e-1");
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

// --- Paths --------------------------------------------------------------------------------------

TEST(Workflow, ADataFileIsFoundBesideTheExperimentFileAndAMissingOneIsNamedResolved) {
  TempDir dir;
  fs::create_directories(dir / "study" / "data");
  const auto X = torch::randn({3, 4, 5}, torch::kFloat64), Y = torch::randn({3, 4, 2}, torch::kFloat64);
  save_tensors(dir / "study" / "data" / "mine.pt", {{"X", X}, {"Y", Y}});
  write_text(dir / "study" / "exp.yaml",
             "data: {kind: tensors, path: data/mine.pt}\nmodel: {ffn_width: 8}\ntrain: {max_iters: 3}\n");
  // From the folder above the study, from inside it, and from elsewhere: the same file.
  EXPECT_EQ(run_resgd(dir, "validate study/exp.yaml").exit_code, 0);
  const auto run = run_resgd(dir, "run study/exp.yaml --out out");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto config = load_config_file((dir / "out" / "config.yaml").string());
  EXPECT_EQ(fs::path(*config.data.path), fs::canonical(dir / "study" / "data" / "mine.pt"));

  write_text(dir / "study" / "missing.yaml", "data: {kind: tensors, path: data/other.pt}\n");
  const auto missing = run_resgd(dir, "validate study/missing.yaml");
  EXPECT_EQ(missing.exit_code, 2);
  const std::string resolved = (fs::canonical(dir / "study") / "data" / "other.pt").string();
  EXPECT_NE(missing.err.find("missing.yaml:1:29: data.path: " + resolved + ": no such file"), std::string::npos)
      << missing.err;
  EXPECT_NE(missing.err.find("experiment file's folder"), std::string::npos) << missing.err;

  // --set is relative to the working directory.
  const auto from_cwd = run_resgd(dir, "validate study/missing.yaml --set data.path=study/data/mine.pt");
  EXPECT_EQ(from_cwd.exit_code, 0) << from_cwd.err;
  const auto wrong = run_resgd(dir, "validate study/missing.yaml --set data.path=data/mine.pt");
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_NE(wrong.err.find("data/mine.pt: no such file (a relative --set data.path is read from the working"),
            std::string::npos)
      << wrong.err;
}

// --- Figures and fits a diverged run cannot spoil ------------------------------------------------

/// An lr grid over three decades, residual on and off, two seeds: every run at lr 5 diverges.
class LrGrid : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    write_text(
        *dir_ / "grid.yaml",
        std::string(kTiny) +
            "sweep: {model.residual.attention: [true, false], train.lr: [0.001, 0.01, 0.1, 5.0], seeds: [0, 1]}\n");
    const auto result = run_resgd(*dir_, "run grid.yaml --out grid --format png,pdf");
    exit_code_ = result.exit_code;
    output_ = new std::string(result.out);
    error_ = new std::string(result.err);
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete output_;
    delete error_;
  }
  // Here, not in SetUpTestSuite: a failure there would leave the tests skipped, not failed.
  void SetUp() override { ASSERT_EQ(exit_code_, 0) << *error_; }
  static fs::path out() { return dir_->path() / "grid"; }
  static TempDir* dir_;
  static std::string *output_, *error_;
  static int exit_code_;
};
TempDir* LrGrid::dir_ = nullptr;
std::string* LrGrid::output_ = nullptr;
std::string* LrGrid::error_ = nullptr;
int LrGrid::exit_code_ = -1;

TEST_F(LrGrid, MeansAndFitsLeaveTheDivergedRunsOutAndCountThem) {
  const std::string report = slurp(out() / "report.md");
  const auto table = markdown_table(report, "## By swept setting");
  ASSERT_EQ(table.size(), 9u) << report;
  const auto lrs = column(table, "lr"), diverged = column(table, "diverged"), final_loss = column(table, "final loss");
  for (size_t r = 0; r < lrs.size(); ++r) {
    SCOPED_TRACE(lrs[r]);
    if (lrs[r] == "5") {
      EXPECT_EQ(diverged[r], "2/2");
      EXPECT_EQ(final_loss[r], "-");  // no usable run: no mean of 1e20
    } else {
      EXPECT_EQ(diverged[r], "0/2");
      EXPECT_NE(final_loss[r], "-");
    }
  }
  // The residual settings: legends and tables name the key in full, true as on.
  const auto attention = column(table, "residual.attention");
  EXPECT_EQ(std::set<std::string>(attention.begin(), attention.end()), (std::set<std::string>{"on", "off"}));

  // Each diverged run shows no rate; the fit counts only the usable runs.
  const auto runs = markdown_table(report, "## Runs");
  const auto status = column(runs, "status"), rate = column(runs, "1 - rate");
  size_t usable = 0;
  for (size_t r = 0; r < status.size(); ++r) {
    if (status[r] == "diverged") {
      EXPECT_EQ(rate[r], "-");
    }
    usable += status[r] != "diverged";
  }
  EXPECT_EQ(usable, 12u);
  const auto fits = markdown_table(report, "## Against sigma_min_g1");
  for (const auto& count : column(fits, "runs")) EXPECT_LE(std::stoul(count), usable);
}

TEST_F(LrGrid, TheLrAxisIsLogarithmicWithATickAtEachValueAndTheDivergedAreMarked) {
  const std::string script = slurp(out() / "plots" / "final_loss_vs_lr.gp");
  EXPECT_NE(script.find("set logscale x"), std::string::npos) << script;
  EXPECT_NE(script.find("set xtics (0.001, 0.01, 0.1, 5)"), std::string::npos) << script;
  EXPECT_NE(script.find("set label 'x' at first 5,"), std::string::npos) << script;
  // The error bars' data hold no point at lr 5: its runs diverged.
  const std::string data = script.substr(script.find("$series0"), script.find("EOD") - script.find("$series0"));
  EXPECT_EQ(data.find("\n5,"), std::string::npos) << data;
  // Columns by name, never by number; a dash per seed with a legend entry for each.
  const std::string loss = slurp(out() / "plots" / "loss.gp");
  EXPECT_NE(loss.find("using 'iter':'loss'"), std::string::npos);
  EXPECT_NE(loss.find("title 'seed 1'"), std::string::npos);
  EXPECT_NE(loss.find("residual.attention=off, lr=5"), std::string::npos);
  EXPECT_NE(loss.find("diverged: where it left"), std::string::npos);
  // --format png,pdf: both, whole.
  EXPECT_TRUE(is_whole_png(out() / "plots" / "loss.png"));
  const std::string pdf = slurp(out() / "plots" / "loss.pdf");
  EXPECT_EQ(pdf.rfind("%PDF", 0), 0u);
  EXPECT_FALSE(fs::exists(out() / "plots" / "loss.svg"));
}

TEST_F(LrGrid, ThePrintedRunsShowARateOnlyWhereTheRunWasLinear) {
  EXPECT_NE(output_->find("1 - rate"), std::string::npos) << *output_;
  std::stringstream lines(*output_);
  size_t diverged = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find(": diverged after") == std::string::npos) continue;
    ++diverged;
    EXPECT_NE(line.find("not linear"), std::string::npos) << line;
  }
  EXPECT_EQ(diverged, 4u) << *output_;
}

// --- compare, plot, report on a folder -------------------------------------------------------

TEST(Workflow, AGainSweptThroughNumbersIsWrittenAsNumbersNotOnOff) {
  // gamma_a at 0.5 and 1 in one sweep, 2 in another: merged, 1 is the number 1 among them,
  // in sweep.csv and in the report; a sweep of true and false alone stays on and off.
  TempDir dir;
  write_text(dir / "g.yaml", std::string(kTiny) + "sweep: {model.residual.attention: [0.5, 1.0]}\n");
  ASSERT_EQ(run_resgd(dir, "run g.yaml --out a").exit_code, 0);
  ASSERT_EQ(run_resgd(dir, "run g.yaml --out b --set 'sweep.model.residual.attention=[2.0]'").exit_code, 0);
  const auto merged = run_resgd(dir, "compare a b --out c");
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  const CsvTable sweep = read_csv(dir / "c" / "sweep.csv");
  std::set<std::string> values;
  for (const auto& row : sweep.rows) values.insert(row[sweep.column("model.residual.attention")]);
  EXPECT_EQ(values, (std::set<std::string>{"0.5", "1", "2"}));
  const std::string report = slurp(dir / "c" / "report.md");
  EXPECT_EQ(report.find("| on |"), std::string::npos) << report;
  EXPECT_NE(report.find("| 1 |"), std::string::npos) << report;
  write_text(dir / "onoff.yaml", std::string(kTiny) + "sweep: {model.residual.attention: [true, false]}\n");
  ASSERT_EQ(run_resgd(dir, "run onoff.yaml --out d").exit_code, 0);
  EXPECT_NE(slurp(dir / "d" / "report.md").find("| on |"), std::string::npos);
}

TEST(Workflow, CompareMergesACoarseAndAFineLrGridIntoOneSweepWithTheBestStableLrPerArm) {
  TempDir dir;
  const std::string arms = "model.residual.attention: [true, false], ";
  write_text(dir / "coarse.yaml", std::string(kTiny) + "sweep: {" + arms + "train.lr: [0.01, 0.1, 5.0]}\n");
  write_text(dir / "fine.yaml", std::string(kTiny) + "sweep: {" + arms + "train.lr: [0.2, 0.5, 1.0, 5.0]}\n");
  ASSERT_EQ(run_resgd(dir, "run coarse.yaml --out coarse").exit_code, 0);
  ASSERT_EQ(run_resgd(dir, "run fine.yaml --out fine").exit_code, 0);
  const auto result = run_resgd(dir, "compare coarse fine --out both");
  ASSERT_EQ(result.exit_code, 0) << result.err;

  // Every run of both, lr 5 (in both grids) once.
  const CsvTable csv = read_csv(dir / "both" / "sweep.csv");
  EXPECT_EQ(csv.rows.size(), 2u * 6u);
  std::set<std::string> runs;
  for (const auto& row : csv.rows) runs.insert(row[0]);
  EXPECT_EQ(runs.size(), 12u);
  EXPECT_TRUE(runs.count("../coarse/runs/model.residual.attention=true,train.lr=0.01/seed=0")) << *runs.begin();
  const std::string report = slurp(dir / "both" / "report.md");
  EXPECT_NE(report.find("counted once"), std::string::npos) << report;

  // The best stable lr per arm, recomputed from the summaries.
  const auto steps = markdown_table(report, "## Step sizes");
  ASSERT_EQ(steps.size(), 3u) << report;
  for (size_t r = 1; r < steps.size(); ++r) {
    const bool residual = steps[r][0] == "on";
    double converging = 0, diverging = INFINITY;
    for (const auto& row : csv.rows) {
      if ((row[csv.column("model.residual.attention")] == "true") != residual) continue;
      const double lr = std::stod(row[csv.column("train.lr")]);
      const std::string status = row[csv.column("status")];
      if (status == "converged") converging = std::max(converging, lr);
      if (status == "diverged") diverging = std::min(diverging, lr);
    }
    EXPECT_EQ(steps[r][1], converging > 0 ? fmt::format("{:.4g}", converging) : "-") << steps[r][0];
    EXPECT_EQ(steps[r][2], std::isfinite(diverging) ? fmt::format("{:.4g}", diverging) : "-") << steps[r][0];
  }
  // Paths in report.md are relative to it.
  EXPECT_EQ(report.find(dir.path().string()), std::string::npos);
  EXPECT_NE(report.find("../fine/runs/"), std::string::npos);

  // The comparison is a directory of runs like any other: report, status, plot and compare
  // read it (the directories it compared), the same 12 runs.
  const std::string before = slurp(dir / "both" / "report.md");
  ASSERT_EQ(run_resgd(dir, "report both").exit_code, 0);
  EXPECT_EQ(slurp(dir / "both" / "report.md"), before);
  const auto status = run_resgd(dir, "status both");
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("coarse (compared):\n"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("fine (compared):\n"), std::string::npos) << status.out;
  EXPECT_EQ(run_resgd(dir, "plot both --y loss").exit_code, 0);
  EXPECT_EQ(run_resgd(dir, "plot both --x train.lr --y final_loss --logx").exit_code, 0);
  ASSERT_EQ(run_resgd(dir, "compare both coarse --out again").exit_code, 0);
  EXPECT_EQ(read_csv(dir / "again" / "sweep.csv").rows.size(), 12u);

  // A sweep of another experiment (another max_iters) is refused, naming the key.
  write_text(dir / "other.yaml", std::string(kTiny) + "sweep: {train.lr: [0.01]}\n");
  ASSERT_EQ(run_resgd(dir, "run other.yaml --out other --set train.max_iters=61").exit_code, 0);
  const auto refused = run_resgd(dir, "compare coarse other --out mixed");
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("differ in train.max_iters (60 and 61)"), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir / "mixed"));

  // Its own earlier output it writes again; a directory of the user's files it refuses,
  // leaving them as they were.
  EXPECT_EQ(run_resgd(dir, "compare coarse fine --out both").exit_code, 0) << "compare again into its own output";
  fs::create_directories(dir / "notes");
  write_text(dir / "notes" / "report.md", "my notes\n");
  const auto kept = run_resgd(dir, "compare coarse fine --out notes");
  EXPECT_EQ(kept.exit_code, 1) << kept.err;
  EXPECT_NE(kept.err.find("notes: exists and holds files that resgd compare did not write"), std::string::npos)
      << kept.err;
  EXPECT_EQ(slurp(dir / "notes" / "report.md"), "my notes\n");
  EXPECT_FALSE(fs::exists(dir / "notes" / "sweep.csv"));
}

TEST(Workflow, PlotDrawsAnyColumnByNameColouredByAKey) {
  TempDir dir;
  write_text(dir / "exp.yaml",
             std::string(kTiny) + "sweep: {model.residual.attention: [true, false], seeds: [0, 1]}\n");
  ASSERT_EQ(run_resgd(dir, "run exp.yaml --out sweep").exit_code, 0);
  const auto result = run_resgd(dir, "plot sweep --y cond_g1 --by model.residual.attention --logy");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const fs::path image = dir / "sweep" / "plots" / "cond_g1_by_model.residual.attention.png";
  EXPECT_TRUE(is_whole_png(image)) << result.out;
  const std::string script = slurp(dir / "sweep" / "plots" / "cond_g1_by_model.residual.attention.gp");
  EXPECT_NE(script.find("'residual.attention=on'"), std::string::npos) << script;
  EXPECT_NE(script.find("'residual.attention=off'"), std::string::npos) << script;
  EXPECT_NE(script.find("set logscale y"), std::string::npos);

  // Any column against any other, into a file of one's own; a column no run has is named.
  const auto chosen = run_resgd(dir,
                                "plot sweep/runs/model.residual.attention=true/seed=0 --y grad_norm --x elapsed_s "
                                "--out figures/grad.svg");
  ASSERT_EQ(chosen.exit_code, 0) << chosen.err;
  EXPECT_NE(slurp(dir / "figures" / "grad.svg").find("</svg>"), std::string::npos);
  const auto unknown = run_resgd(dir, "plot sweep --y cond_g7");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("no run has a metrics.csv column 'cond_g7'; the columns are: iter, loss"),
            std::string::npos)
      << unknown.err;
}

TEST(Workflow, TwentyFourSettingsGetTwentyFourColoursAndALegendInTheValuesOrder) {
  // 6 ffn widths x 4 gains: every setting its own colour (the seeds share it and differ in
  // dash), the legend outside the axes; --by a number lists its values ascending, whatever
  // the file's order.
  TempDir dir;
  write_text(dir / "exp.yaml",
             std::string(kTiny) +
                 "sweep: {model.ffn_width: [64, 8, 16, 4, 32, 48], model.residual.attention: [0.5, 1.0, 1.5, 2.0]}\n");
  ASSERT_EQ(run_resgd(dir, "run exp.yaml --out sweep --set train.max_iters=3").exit_code, 0);
  const std::string loss = slurp(dir / "sweep" / "plots" / "loss.gp");
  std::set<std::string> colours;
  for (size_t at = 0; (at = loss.find("lc rgb '#", at)) != std::string::npos; ++at)
    colours.insert(loss.substr(at + 8, 7));
  EXPECT_EQ(colours.size(), 24u) << loss;
  EXPECT_NE(loss.find("set key outside"), std::string::npos);
  EXPECT_TRUE(is_whole_png(dir / "sweep" / "plots" / "loss.png"));

  ASSERT_EQ(run_resgd(dir, "plot sweep --y loss --by model.ffn_width").exit_code, 0);
  const std::string by = slurp(dir / "sweep" / "plots" / "loss_by_model.ffn_width.gp");
  size_t last = 0;
  for (const char* width :
       {"'ffn_width=4'", "'ffn_width=8'", "'ffn_width=16'", "'ffn_width=32'", "'ffn_width=48'", "'ffn_width=64'"}) {
    const size_t at = by.find(std::string("title ") + width);
    ASSERT_NE(at, std::string::npos) << width << "\n" << by;
    EXPECT_GT(at, last) << width;
    last = at;
  }
}

TEST(Workflow, ReportOnAFolderOfRunsReportsThemAndNamesWhatItCannotRead) {
  TempDir dir;
  write_text(dir / "exp.yaml", kTiny);
  ASSERT_EQ(run_resgd(dir, "run exp.yaml --out cmp/residual").exit_code, 0);
  ASSERT_EQ(run_resgd(dir, "run exp.yaml --out cmp/plain --set model.residual.attention=false").exit_code, 0);
  fs::create_directories(dir / "cmp" / "notes");
  fs::create_directories(dir / "cmp" / "broken");
  write_text(dir / "cmp" / "broken" / "config.yaml", "model: {layers: [\n");
  const auto result = run_resgd(dir, "report cmp");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::string report = slurp(dir / "cmp" / "report.md");
  const auto runs = markdown_table(report, "## Runs");
  ASSERT_EQ(runs.size(), 3u) << report;
  EXPECT_EQ(column(runs, "run"), (std::vector<std::string>{"plain", "residual"}));
  const auto settings = markdown_table(report, "## By swept setting");
  EXPECT_EQ(settings.at(0).at(0), "residual.attention") << "the key the runs differ in";
  EXPECT_NE(report.find("`notes`: not a run or sweep directory"), std::string::npos) << report;
  EXPECT_NE(report.find("`broken`: cannot be read"), std::string::npos) << report;
}

// --- Costs you can see --------------------------------------------------------------------------

TEST(Workflow, TheRunEstimatesItsTimeAndWarnsWhereDiagnosticsWouldDominate) {
  TempDir dir;
  write_text(dir / "exp.yaml", kTiny);
  const std::string long_run = "--set train.max_iters=200 --set train.rel_tolerance=0 ";
  auto result = run_resgd(dir, "run exp.yaml --out plain " + long_run + "--set diagnostics.every=0");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("estimate: at most"), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("warning: the diagnostics"), std::string::npos) << result.out;

  result = run_resgd(
      dir, "run exp.yaml --out heavy " + long_run + "--set diagnostics.sharpness=true --set diagnostics.every=1");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("warning: the diagnostics would take"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("a larger diagnostics.sharpness_every"), std::string::npos) << result.out;
  // Said once, before the runs.
  EXPECT_EQ(result.out.find("warning:"), result.out.rfind("warning:"));

  // The sharpness measured every 50 steps only: its cells are empty in between.
  result = run_resgd(dir, "run exp.yaml --out light " + long_run +
                              "--set diagnostics.sharpness=true "
                              "--set diagnostics.every=10 --set diagnostics.sharpness_every=50");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const CsvTable metrics = read_csv(dir / "light" / "metrics.csv");
  std::vector<std::string> measured;
  for (const auto& row : metrics.rows)
    if (!row[metrics.column("sharpness")].empty()) measured.push_back(row[0]);
  EXPECT_EQ(measured, (std::vector<std::string>{"0", "50", "100", "150", "200"}));
  EXPECT_FALSE(metrics.rows[10][metrics.column("sigma_min_g1")].empty()) << "iteration 10: the spectra's cadence";
}

// --- Identity, install, Python ------------------------------------------------------------------

TEST(Workflow, TheVersionIsPrintedAndRecordedInEverySummary) {
  TempDir dir;
  const auto version = run_resgd(dir, "--version");
  ASSERT_EQ(version.exit_code, 0) << version.err;
  EXPECT_EQ(version.out.rfind("resgd ", 0), 0u) << version.out;
  EXPECT_NE(version.out.find("(commit "), std::string::npos) << version.out;
  write_text(dir / "exp.yaml", kTiny);
  const auto run = run_resgd(dir, "run exp.yaml --out out");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // The default first line is short: device, dtype, BLAS, backend.
  const std::string first = run.out.substr(0, run.out.find('\n'));
  EXPECT_LT(first.size(), 80u) << first;
  const auto summary = summary_of(dir / "out");
  const std::string expected = fmt::format("resgd {} (commit {})", summary.at("resgd_version").get<std::string>(),
                                           summary.at("resgd_commit").get<std::string>());
  EXPECT_EQ(version.out.rfind(expected, 0), 0u) << version.out << " vs " << expected;
}

TEST(Workflow, AnInstalledResgdFindsItsBundledDigitsAwayFromTheSourceTree) {
  TempDir dir;
  const std::string install = fmt::format("cmake --install '{}' --prefix '{}' >'{}' 2>&1", RESGD_BUILD_DIR,
                                          (dir / "prefix").string(), (dir / "install.log").string());
  ASSERT_EQ(std::system(install.c_str()), 0) << slurp(dir / "install.log");
  const fs::path installed = dir / "prefix" / "bin" / "resgd";
  ASSERT_TRUE(fs::exists(installed));
  EXPECT_TRUE(fs::exists(dir / "prefix" / "share" / "resgd" / "digits.csv.gz"));
  EXPECT_TRUE(fs::exists(dir / "prefix" / "share" / "resgd" / "experiments" / "digits.yaml"));
  // Run from a folder with no data/ in sight: the installed copy is the one found.
  fs::create_directories(dir / "elsewhere");
  const std::string run = fmt::format(
      "cd '{}' && '{}' run ../prefix/share/resgd/experiments/digits.yaml --set sweep={{}} --set data.num_samples=16 "
      "--set model.ffn_width=8 --set train.max_iters=2 --out out >'{}' 2>&1",
      (dir / "elsewhere").string(), installed.string(), (dir / "run.log").string());
  EXPECT_EQ(std::system(run.c_str()), 0) << slurp(dir / "run.log");
  EXPECT_TRUE(fs::exists(dir / "elsewhere" / "out" / "summary.json")) << slurp(dir / "run.log");
}

/// A python3 that has torch and yaml, if this machine has one.
std::optional<std::string> python_with_torch() {
  for (const char* python : {"python3", "/usr/bin/python3"}) {
    const std::string probe = fmt::format("{} -c 'import torch, yaml' >/dev/null 2>&1", python);
    if (std::system(probe.c_str()) == 0) return std::string(python);
  }
  return std::nullopt;
}

/// The ```python block of a Markdown file.
std::string python_block(const fs::path& markdown) {
  const std::string text = slurp(markdown);
  const size_t start = text.find("```python\n");
  const size_t end = text.find("```", start + 10);
  return start == std::string::npos || end == std::string::npos ? "" : text.substr(start + 10, end - start - 10);
}

TEST(Workflow, DataFilesThatPythonsTorchSaveWroteAreRead) {
  // The pickle check lets through what torch.save writes for a dictionary of tensors
  // (float64, float32, a view of a larger storage); what LibTorch cannot read (Python's
  // OrderedDict) is a clear error, never a crash.
  const auto python = python_with_torch();
  if (!python) GTEST_SKIP() << "no python3 with torch and yaml here (Debian: python3-torch python3-yaml)";
  TempDir dir;
  write_text(dir / "save.py",
             "import collections, torch\n"
             "g = torch.Generator().manual_seed(0)\n"
             "X = torch.randn(4, 3, 2, dtype=torch.float64, generator=g)\n"
             "Y = torch.randn(4, 3, 1, dtype=torch.float64, generator=g)\n"
             "torch.save({'X': X, 'Y': Y}, 'float64.pt')\n"
             "torch.save({'X': X.float(), 'Y': Y.float()}, 'float32.pt')\n"
             "big = torch.randn(8, 3, 2, dtype=torch.float64, generator=g)\n"
             "torch.save({'X': big[2:6], 'Y': Y}, 'view.pt')\n"
             "torch.save(collections.OrderedDict([('X', X), ('Y', Y)]), 'ordered.pt')\n");
  ASSERT_EQ(std::system(fmt::format("cd '{}' && {} save.py", dir.path().string(), *python).c_str()), 0);
  for (const std::string name : {"float64", "float32", "view", "ordered"}) {
    write_text(dir / (name + ".yaml"), "data: {kind: tensors, path: " + name +
                                           ".pt, num_samples: 4, seq_len: 3, dim: 2, target_dim: 1}\n"
                                           "model: {ffn_width: 4}\ntrain: {max_iters: 2}\n");
    const auto r = run_resgd(dir, "run " + name + ".yaml --out " + name);
    if (name == "ordered") {
      EXPECT_EQ(r.exit_code, 1) << r.err;
      EXPECT_NE(r.err.find("ordered.pt: not a readable tensor file"), std::string::npos) << r.err;
    } else {
      EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    }
  }
}

TEST(Workflow, ThePythonSnippetRebuildsTheFinalLossFromFinalPtAlone) {
  TempDir dir;
  const std::string snippet = python_block(fs::path(RESGD_SOURCE_DIR) / "docs" / "python.md");
  ASSERT_FALSE(snippet.empty()) << "docs/python.md has no python block";
  write_text(dir / "rebuild.py", snippet);
  // final.pt holds the run's configuration as YAML text, beside the tensors.
  write_text(dir / "exp.yaml", kTiny);
  ASSERT_EQ(run_resgd(dir, "run exp.yaml --out plain").exit_code, 0);
  const std::string config_text = dump_yaml(load_config_file((dir / "plain" / "config.yaml").string()), false);
  EXPECT_NE(slurp(dir / "plain" / "tensors" / "final.pt").find(config_text), std::string::npos);
  EXPECT_EQ(load_tensors(dir / "plain" / "tensors" / "final.pt").count("config"), 0u) << "texts are passed over";

  const auto python = python_with_torch();
  if (!python) GTEST_SKIP() << "no python3 with torch and yaml here (Debian: python3-torch python3-yaml)";
  // Every branch of the equations: heads, layer norm, a causal mask, two blocks with the FFN
  // residual, gelu; then the mean readout and loss with a set temperature and leaky_relu.
  const std::vector<std::string> variants = {
      "--set data.dim=6 --set model.attention.heads=2 --set model.layer_norm=pre --set model.attention.causal=true "
      "--set model.layers=2 --set model.residual.ffn=0.5 --set model.activation=gelu",
      "--set model.readout=mean --set train.loss=mean --set model.attention.temperature=1.5 "
      "--set model.activation=leaky_relu --set model.residual.attention=0.3"};
  for (size_t v = 0; v < variants.size(); ++v) {
    const std::string out = fmt::format("run{}", v);
    const auto run = run_resgd(dir, fmt::format("run exp.yaml --out {} {}", out, variants[v]));
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const std::string command = fmt::format("cd '{}' && {} rebuild.py {} >'{}' 2>&1", dir.path().string(), *python, out,
                                            (dir / "python.log").string());
    ASSERT_EQ(std::system(command.c_str()), 0) << slurp(dir / "python.log");
    const std::string printed = slurp(dir / "python.log");
    ASSERT_EQ(printed.rfind("loss ", 0), 0u) << printed;
    const double rebuilt = std::stod(printed.substr(5));
    const double final_loss = summary_of(dir / out).at("final_loss").get<double>();
    EXPECT_NEAR(rebuilt, final_loss, 1e-12 * final_loss) << variants[v];
  }
}

}  // namespace
}  // namespace resgd
