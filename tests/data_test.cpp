// Data sets: shapes, scales, target kinds, independence from the student, the digits and
// .pt files, and clear errors for missing or malformed files.
#include "resgd/science/data.h"

#include <gtest/gtest.h>

#include <cmath>

#include "resgd/science/tensor_io.h"
#include "test_util.h"

namespace resgd {
namespace {

TEST(Data, TargetsDoNotDependOnTheStudentsSwitchesOrStepSize) {
  ExperimentConfig base;
  base.data.num_samples = 4;
  base.data.dim = 6;
  base.data.target = Target::teacher;
  base.data.target_dim = 2;
  base.model.ffn_width = 9;
  const Dataset reference = make_dataset(base, torch::kCPU, torch::kFloat64);
  for (int variant = 0; variant < 10; ++variant) {
    ExperimentConfig c = base;
    if (variant == 0) c.model.residual_attention.value = 0.0;
    if (variant == 1) c.model.residual_ffn.value = 1.0;
    if (variant == 2) c.model.init.W_Q = 0.0;
    if (variant == 3) c.train.lr = 0.5;
    if (variant == 4) c.model.heads = 3;
    if (variant == 5) c.model.layer_norm = LayerNorm::pre;
    if (variant == 6) c.model.activation = Activation::gelu;
    if (variant == 7) c.model.temperature = 0.25;
    if (variant == 8) c.model.causal = true;
    if (variant == 9) c.model.output_scale = 0.0;
    const Dataset d = make_dataset(c, torch::kCPU, torch::kFloat64);
    EXPECT_TRUE(torch::equal(d.X, reference.X)) << "variant " << variant;
    EXPECT_TRUE(torch::equal(d.Y, reference.Y)) << "variant " << variant;
  }
  ExperimentConfig other_seed = base;
  other_seed.seed = 1;
  EXPECT_FALSE(torch::equal(make_dataset(other_seed, torch::kCPU, torch::kFloat64).Y, reference.Y));
}

TEST(Data, ShapesScalesAndTargetKindsFollowTheConfig) {
  ExperimentConfig c;
  c.data.num_samples = 400;
  c.data.seq_len = 5;
  c.data.dim = 10;
  c.data.target_dim = 3;
  Dataset d = make_dataset(c, torch::kCPU, torch::kFloat64);
  EXPECT_EQ(d.X.sizes(), torch::IntArrayRef({400, 5, 10}));
  EXPECT_EQ(d.Y.sizes(), torch::IntArrayRef({400, 5, 3}));
  EXPECT_NEAR(d.X.std().item<double>(), 1.0 / std::sqrt(10.0), 0.01);  // tokens N(0, 1/d)
  EXPECT_NEAR(d.Y.std().item<double>(), 1.0 / std::sqrt(3.0), 0.02);   // targets N(0, 1/d_y)

  c.data.normalize_tokens = true;
  c.model.readout = Readout::mean;
  c.data.target = Target::linear;
  d = make_dataset(c, torch::kCPU, torch::kFloat32);
  EXPECT_EQ(d.X.scalar_type(), torch::kFloat32);
  EXPECT_EQ(d.Y.sizes(), torch::IntArrayRef({400, 3}));
  EXPECT_TRUE(torch::allclose(d.X.norm(2, {-1}), torch::ones({400, 5}), 1e-5, 1e-5));
}

ExperimentConfig digits_config(int64_t target_dim, const std::string& readout) {
  ExperimentConfig c = load_config_text("data: {kind: digits, num_samples: 50, seq_len: 8, dim: 8, target_dim: " +
                                            std::to_string(target_dim) + "}\nmodel: {readout: " + readout + "}\n",
                                        "digits.yaml");
  return c;
}

TEST(Data, DigitsAreEightRowsOfEightPixelsInTheUnitIntervalWithOneHotOrNumericLabels) {
  Dataset d = make_dataset(digits_config(10, "mean"), torch::kCPU, torch::kFloat64);
  EXPECT_EQ(d.X.sizes(), torch::IntArrayRef({50, 8, 8}));
  EXPECT_EQ(d.Y.sizes(), torch::IntArrayRef({50, 10}));
  EXPECT_EQ(d.X.min().item<double>(), 0.0);
  EXPECT_EQ(d.X.max().item<double>(), 1.0);                 // pixel 16 / 16
  EXPECT_TRUE(torch::equal(d.X * 16, (d.X * 16).round()));  // integer pixels / 16
  EXPECT_TRUE(torch::equal(d.Y.sum(1), torch::ones({50}, torch::kFloat64)));
  const auto labels = d.Y.argmax(1);
  EXPECT_EQ(labels[0].item<int64_t>(), 0);  // the file opens 0, 1, 2, ...
  EXPECT_EQ(labels[1].item<int64_t>(), 1);

  d = make_dataset(digits_config(1, "tokens"), torch::kCPU, torch::kFloat32);
  EXPECT_EQ(d.Y.sizes(), torch::IntArrayRef({50, 8, 1}));  // the label copied to every token
  EXPECT_EQ(d.X.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(d.Y.select(1, 0).squeeze(1).to(torch::kLong), labels));
  EXPECT_TRUE(torch::equal(d.Y, d.Y.select(1, 3).unsqueeze(1).expand_as(d.Y)));
}

TEST(Data, DigitsShapeMistakesNameTheKeyAndItsPosition) {
  testing::expect_error<ConfigError>(
      [] { load_config_text("data:\n  kind: digits\n  dim: 16\n  target_dim: 10\n", "d.yaml"); },
      "d.yaml:3:8: data.dim: must be 8 for digits");
  testing::expect_error<ConfigError>(
      [] { load_config_text("data: {kind: digits, dim: 8, target_dim: 3}\n", "d.yaml"); },
      "data.target_dim: must be 10 (one-hot label) or 1");
  testing::expect_error<ConfigError>(
      [] { load_config_text("data: {kind: digits, dim: 8, target_dim: 1, target: teacher}\n", "d.yaml"); },
      "data.target: applies to gaussian data only");
  testing::expect_error<ConfigError>([] { load_config_text("data: {kind: tensors}\n", "t.yaml"); }, "data.path");
  ExperimentConfig c = digits_config(10, "mean");
  apply_override(c, "data.num_samples=5000");
  testing::expect_error<ConfigError>([&] { make_dataset(c, torch::kCPU, torch::kFloat64); }, "holds only 1797");
}

TEST(Data, DigitsNeedNoSizesAndTheirDefaultsFollowTheKind) {
  // 8 rows of 8 pixels and one-hot labels, unless the experiment says otherwise.
  ExperimentConfig c = load_config_text("data: {kind: digits, num_samples: 20}\nmodel: {readout: mean}\n", "d.yaml");
  EXPECT_EQ((std::vector<int64_t>{c.data.seq_len, c.data.dim, c.data.target_dim}), (std::vector<int64_t>{8, 8, 10}));
  const Dataset d = make_dataset(c, torch::kCPU, torch::kFloat64);
  EXPECT_EQ(d.X.sizes(), torch::IntArrayRef({20, 8, 8}));
  EXPECT_EQ(d.Y.sizes(), torch::IntArrayRef({20, 10}));
  apply_override(c, "data.target_dim=1");  // the label as a number: set, so kept
  EXPECT_EQ(c.data.target_dim, 1);
  apply_override(c, "data.kind=gaussian");  // the plain defaults come back for what was never set
  EXPECT_EQ((std::vector<int64_t>{c.data.seq_len, c.data.dim, c.data.target_dim}), (std::vector<int64_t>{8, 16, 1}));
  // A sweep across kinds gives each point its kind's sizes.
  const ExperimentConfig sweep = load_config_text("sweep: {data.kind: [gaussian, digits]}\n", "d.yaml");
  const auto points = expand_sweep(sweep);
  EXPECT_EQ(config_for_point(sweep, points[0]).data.dim, 16);
  EXPECT_EQ(config_for_point(sweep, points[1]).data.dim, 8);
  EXPECT_EQ(config_for_point(sweep, points[1]).data.target_dim, 10);
}

TEST(Data, AMissingOrMalformedDigitsFileNamesThePath) {
  testing::TempDir dir;
  ExperimentConfig c = digits_config(10, "mean");
  c.data.path = (dir / "nowhere.csv.gz").string();
  testing::expect_error<IoError>([&] { make_dataset(c, torch::kCPU, torch::kFloat64); },
                                 (dir / "nowhere.csv.gz").string() + ": cannot read: No such file or directory");
  testing::write_text(dir / "bad.csv", "0,0,3\n");  // too few values
  testing::expect_error<IoError>([&] { load_digits(dir / "bad.csv"); },
                                 (dir / "bad.csv").string() + ":1: expected 65 integers");
}

TEST(Data, TensorsComeFromAPtFileCheckedAgainstTheConfig) {
  testing::TempDir dir;
  const auto X = torch::randn({6, 3, 5}, torch::kFloat32), Y = torch::randn({6, 3, 2}, torch::kFloat32);
  save_tensors(dir / "data.pt", {{"X", X}, {"Y", Y}});
  ExperimentConfig c = load_config_text("data: {kind: tensors, path: " + (dir / "data.pt").string() +
                                            ", num_samples: 4, seq_len: 3, dim: 5, target_dim: 2}\n",
                                        "t.yaml");
  const Dataset d = make_dataset(c, torch::kCPU, torch::kFloat64);
  EXPECT_TRUE(torch::equal(d.X, X.slice(0, 0, 4).to(torch::kFloat64)));  // the first num_samples
  EXPECT_TRUE(torch::equal(d.Y, Y.slice(0, 0, 4).to(torch::kFloat64)));

  apply_override(c, "data.dim=7");
  testing::expect_error<ConfigError>(
      [&] { make_dataset(c, torch::kCPU, torch::kFloat64); },
      "--set data.dim=7: data.dim: is 7, but " + (dir / "data.pt").string() + " has d = 5");
  apply_override(c, "data.dim=5");
  apply_override(c, "model.readout=mean");  // needs Y of shape (N, d_y)
  testing::expect_error<IoError>([&] { make_dataset(c, torch::kCPU, torch::kFloat64); }, "Y has shape [6, 3, 2]");
  apply_override(c, "model.readout=tokens");

  const std::pair<std::string, std::vector<std::pair<std::string, torch::Tensor>>> broken[] = {
      {"no tensor 'Y'", {{"X", X}}},
      {"X has dtype Long", {{"X", X.to(torch::kLong)}, {"Y", Y}}},
      {"X has shape [6, 15]", {{"X", X.reshape({6, 15})}, {"Y", Y}}},
      {"Y contains NaN or inf", {{"X", X}, {"Y", Y.clone().fill_(NAN)}}}};
  for (const auto& [needle, tensors] : broken) {
    save_tensors(dir / "data.pt", tensors);
    testing::expect_error<IoError>([&] { make_dataset(c, torch::kCPU, torch::kFloat64); }, needle);
  }
  testing::write_text(dir / "data.pt", "not a tensor file");
  testing::expect_error<IoError>([&] { make_dataset(c, torch::kCPU, torch::kFloat64); },
                                 (dir / "data.pt").string() + ": not a readable tensor file");
}

TEST(Data, ATensorsFileGivesTheSizesTheExperimentLeavesUnset) {
  testing::TempDir dir;
  const auto X = torch::randn({6, 3, 5}, torch::kFloat64), Y = torch::randn({6, 3, 2}, torch::kFloat64);
  save_tensors(dir / "data.pt", {{"X", X}, {"Y", Y}});
  const std::string file = "data: {kind: tensors, path: " + (dir / "data.pt").string();
  ExperimentConfig c = load_config_text(file + "}\n", "t.yaml");
  read_data_sizes(c);
  EXPECT_EQ(c.data.num_samples, 6);  // all of the file, not the default 32
  EXPECT_EQ(c.data.seq_len, 3);
  EXPECT_EQ(c.data.dim, 5);
  EXPECT_EQ(c.data.target_dim, 2);
  EXPECT_TRUE(torch::equal(make_dataset(c, torch::kCPU, torch::kFloat64).X, X));
  EXPECT_NE(dump_yaml(c).find("  num_samples: 6\n  seq_len: 3\n  dim: 5\n"), std::string::npos) << dump_yaml(c);

  // What the experiment sets stays set: a mismatch is its error, a smaller N takes a prefix.
  ExperimentConfig mismatch = load_config_text(file + ", num_samples: 4, dim: 7}\n", "t.yaml");
  testing::expect_error<ConfigError>([&] { read_data_sizes(mismatch); },
                                     ": data.dim: is 7, but " + (dir / "data.pt").string() + " has d = 5");
  ExperimentConfig prefix = load_config_text(file + ", num_samples: 4}\n", "t.yaml");
  read_data_sizes(prefix);
  EXPECT_EQ(prefix.data.num_samples, 4);
  EXPECT_EQ(prefix.data.seq_len, 3);
  EXPECT_TRUE(torch::equal(make_dataset(prefix, torch::kCPU, torch::kFloat64).X, X.slice(0, 0, 4)));

  // A file the run would refuse is refused here already, with make_dataset's message.
  save_tensors(dir / "data.pt", {{"X", X.reshape({6, 15})}, {"Y", Y}});
  ExperimentConfig flat = load_config_text(file + "}\n", "t.yaml");
  testing::expect_error<IoError>([&] { read_data_sizes(flat); }, "X has shape [6, 15]");
}

}  // namespace
}  // namespace resgd
