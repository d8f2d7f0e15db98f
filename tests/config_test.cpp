// Experiment files: strict loading, positions in errors, --set, sweeps, the resolved dump.
#include "resgd/core/config.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "resgd/core/flagship.h"
#include "resgd/science/device.h"

namespace resgd {
namespace {

/// The ConfigError message of loading `text` as "exp.yaml", or "" if it loads.
std::string load_error(const std::string& text) {
  try {
    load_config_text(text, "exp.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, EmptyFileMeansDesignDefaults) {
  const ExperimentConfig c = load_config_text("", "exp.yaml");
  EXPECT_EQ(c.dtype, Dtype::float64);
  EXPECT_EQ(c.data.num_samples, 32);
  EXPECT_EQ(c.data.seq_len, 8);
  EXPECT_EQ(c.data.dim, 16);
  EXPECT_EQ(c.model.ffn_width, 256);
  EXPECT_EQ(c.model.residual_attention.value, 1.0);
  EXPECT_EQ(c.model.residual_ffn.value, 0.0);
  EXPECT_FALSE(c.model.temperature.has_value());
  EXPECT_EQ(c.model.heads, 1);
  EXPECT_EQ(c.train.lr, 0.01);
  EXPECT_EQ(c.train.max_iters, 2000);
  EXPECT_EQ(c.train.rel_tolerance, 1.0e-10);
  EXPECT_EQ(c.train.divergence_factor, 1.0e6);
  EXPECT_EQ(c.diagnostics.every, 10);
}

TEST(Config, FileValuesOverrideDefaults) {
  const ExperimentConfig c = load_config_text(
      "name: t\ndata: {dim: 5, target: teacher}\nmodel:\n  residual: {attention: false, ffn: 0.5}\n"
      "  init: {W_Q: 0}\ntrain: {lr: 2.5e-3}\n",
      "exp.yaml");
  EXPECT_EQ(c.name, "t");
  EXPECT_EQ(c.data.dim, 5);
  EXPECT_EQ(c.data.target, Target::teacher);
  EXPECT_EQ(c.model.residual_attention.value, 0.0);
  EXPECT_EQ(c.model.residual_ffn.value, 0.5);
  ASSERT_TRUE(c.model.init.W_Q.has_value());
  EXPECT_EQ(*c.model.init.W_Q, 0.0);
  EXPECT_FALSE(c.model.init.W_K.has_value());
  EXPECT_EQ(c.train.lr, 2.5e-3);
}

TEST(Config, UnknownKeyNamesFileLineColumnAndKnownKeys) {
  const std::string error = load_error("model:\n  layers: 2\n  ffn_widht: 3\n");
  EXPECT_NE(error.find("exp.yaml:3:3:"), std::string::npos) << error;
  EXPECT_NE(error.find("unknown key 'ffn_widht'"), std::string::npos) << error;
  EXPECT_NE(error.find("did you mean 'ffn_width'"), std::string::npos) << error;
  EXPECT_NE(error.find("layers, key_dim, ffn_width"), std::string::npos) << error;
}

TEST(Config, UnknownTopLevelSectionListsSections) {
  const std::string error = load_error("modle: {layers: 2}\n");
  EXPECT_NE(error.find("exp.yaml:1:1:"), std::string::npos) << error;
  EXPECT_NE(error.find("did you mean 'model'"), std::string::npos) << error;
  EXPECT_NE(error.find("data, model, train, diagnostics, compute, sweep"), std::string::npos) << error;
}

TEST(Config, WrongTypeNamesLineColumn) {
  const std::string error = load_error("train:\n  lr: fast\n");
  EXPECT_NE(error.find("exp.yaml:2:7: train.lr: expected a number, got 'fast'"), std::string::npos) << error;
  EXPECT_NE(load_error("data: {num_samples: 2.5}").find("expected an integer"), std::string::npos);
  EXPECT_NE(load_error("model: {attention: {causal: maybe}}").find("expected true or false"), std::string::npos);
  EXPECT_NE(load_error("model: {residual: 3x}").find("'model.residual' is a section"), std::string::npos);
}

TEST(Config, NonFiniteNumbersAreRejected) {
  EXPECT_NE(load_error("train: {lr: .nan}").find("must be a finite number"), std::string::npos);
  EXPECT_NE(load_error("train: {divergence_factor: .inf}").find("must be a finite number"), std::string::npos);
}

TEST(Config, DuplicateKeyIsAnError) {
  const std::string error = load_error("train:\n  lr: 0.1\n  lr: 0.2\n");
  EXPECT_NE(error.find("exp.yaml:3:3: duplicate key 'train.lr'"), std::string::npos) << error;
}

TEST(Config, DuplicateKeysAreRefusedInEverySpelling) {
  // Nested then dotted, dotted then nested, a dotted section, and top-level dotted twice.
  const std::pair<std::string, std::string> cases[] = {
      {"model: {residual: {attention: false}}\nmodel.residual.attention: true\n",
       "exp.yaml:2:1: duplicate key 'model.residual.attention' (also set at exp.yaml:1:20)"},
      {"model.residual.attention: true\nmodel: {residual: {attention: false}}\n",
       "exp.yaml:2:20: duplicate key 'model.residual.attention' (also set at exp.yaml:1:1)"},
      {"model.residual: {ffn: 1}\nmodel:\n  residual:\n    ffn: 0\n",
       "exp.yaml:4:5: duplicate key 'model.residual.ffn' (also set at exp.yaml:1:18)"},
      {"model:\n  residual.attention: 0\n  residual: {attention: 1}\n",
       "exp.yaml:3:14: duplicate key 'model.residual.attention' (also set at exp.yaml:2:3)"}};
  for (const auto& [yaml, expected] : cases) {
    const std::string error = load_error(yaml);
    EXPECT_NE(error.find(expected), std::string::npos) << yaml << "\n" << error;
  }
  // One section in two spellings is fine where they set different keys.
  const auto c = load_config_text("model.residual: {ffn: 1}\nmodel: {residual: {attention: 0}, ffn_width: 8}\n", "e");
  EXPECT_EQ(c.model.residual_ffn.value, 1.0);
  EXPECT_EQ(c.model.residual_attention.value, 0.0);
}

TEST(Config, YamlSyntaxErrorNamesPosition) {
  const std::string error = load_error("train: {lr: 0.1\nmodel: [\n");
  EXPECT_NE(error.find("exp.yaml:"), std::string::npos) << error;
  EXPECT_NE(error.find("YAML syntax error"), std::string::npos) << error;
}

TEST(Config, NonMapFileIsAnError) {
  EXPECT_NE(load_error("- 1\n- 2\n").find("must be a map of sections"), std::string::npos);
}

struct ImpossibleValue {
  std::string yaml, expected;
  friend std::ostream& operator<<(std::ostream& os, const ImpossibleValue& v) { return os << v.yaml; }
};

class ConfigImpossibleValue : public ::testing::TestWithParam<ImpossibleValue> {};

TEST_P(ConfigImpossibleValue, IsRejectedWithItsPosition) {
  const std::string error = load_error(GetParam().yaml);
  EXPECT_EQ(error.rfind("exp.yaml:1:", 0), 0u) << error;
  EXPECT_NE(error.find(GetParam().expected), std::string::npos) << error;
}

INSTANTIATE_TEST_SUITE_P(
    Values, ConfigImpossibleValue,
    ::testing::Values(
        ImpossibleValue{"data: {num_samples: -4}", "data.num_samples: must be a positive integer, got -4"},
        ImpossibleValue{"data: {seq_len: 0}", "data.seq_len: must be a positive integer"},
        ImpossibleValue{"data: {dim: 0}", "data.dim: must be a positive integer"},
        ImpossibleValue{"data: {target_dim: -1}", "data.target_dim: must be a positive integer"},
        ImpossibleValue{"data: {target: magic}", "unknown value 'magic'; expected one of: random, teacher, linear"},
        ImpossibleValue{"data: {noise: -0.1}", "data.noise: must be >= 0"},
        ImpossibleValue{"model: {layers: 0}", "model.layers: must be a positive integer"},
        ImpossibleValue{"model: {ffn_width: -8}", "model.ffn_width: must be a positive integer"},
        ImpossibleValue{"model: {key_dim: 0}", "model.key_dim: must be a positive integer"},
        ImpossibleValue{"model: {activation: swish}", "unknown value 'swish'; expected one of: relu, gelu"},
        ImpossibleValue{"model: {readout: max}", "model.readout: unknown value 'max'"},
        ImpossibleValue{"model: {layer_norm: post}",
                        "model.layer_norm: unknown value 'post'; expected one of: none, pre"},
        ImpossibleValue{"model: {attention: {temperature: 0}}", "model.attention.temperature: must be > 0"},
        ImpossibleValue{"model: {attention: {heads: 0}}", "model.attention.heads: must be a positive integer, got 0"},
        ImpossibleValue{"model: {attention: {heads: 3}}",
                        "model.attention.heads: 3 heads must divide the key size d_k = 16 and the token size d = 16"},
        ImpossibleValue{"model: {key_dim: 6, attention: {heads: 4}}", "4 heads must divide the key size d_k = 6"},
        ImpossibleValue{"model: {init: {W_V: -1}}", "model.init.W_V: an init std must be >= 0"},
        ImpossibleValue{"train: {lr: 0}", "train.lr: must be > 0, got 0"},
        ImpossibleValue{"train: {lr: -0.5}", "train.lr: must be > 0"},
        ImpossibleValue{"train: {max_iters: -1}", "train.max_iters: must be >= 0"},
        ImpossibleValue{"train: {loss: l1}", "train.loss: unknown value 'l1'"},
        ImpossibleValue{"train: {gradients: numeric}", "train.gradients: unknown value 'numeric'"},
        ImpossibleValue{"train: {log_every: 0}", "train.log_every: must be >= 1"},
        ImpossibleValue{"train: {divergence_factor: 0.5}", "train.divergence_factor: must be > 1"},
        ImpossibleValue{"device: tpu", "unknown device 'tpu'"},
        ImpossibleValue{"dtype: float16", "dtype: unknown value 'float16'"},
        ImpossibleValue{"seed: -3", "seed: must be >= 0"}));

TEST(Config, CudaWithoutGpuIsAConfigErrorWithPosition) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is present; the error path cannot be reached";
  const ExperimentConfig c = load_config_text("seed: 1\ndevice: cuda\n", "exp.yaml");
  try {
    resolve_device(c);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("exp.yaml:2:9: device: 'cuda' was asked for, but no usable CUDA device"), std::string::npos)
        << message;
  }
  EXPECT_EQ(resolve_device(load_config_text("device: auto", "exp.yaml")), torch::Device(torch::kCPU));
}

TEST(Config, SetOverridesWithTheSameChecks) {
  ExperimentConfig c;
  apply_override(c, "model.residual.attention=false");
  EXPECT_EQ(c.model.residual_attention.value, 0.0);
  apply_override(c, "model.key_dim=null");
  EXPECT_FALSE(c.model.key_dim.has_value());
  apply_override(c, "data.dim=12");
  EXPECT_EQ(c.data.dim, 12);
  EXPECT_THROW(apply_override(c, "model.layers=-1"), ConfigError);
  try {
    apply_override(c, "model.ffn_widht=3");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("--set model.ffn_widht=3: unknown key 'ffn_widht' in section 'model'"), std::string::npos)
        << message;
  }
  try {
    apply_override(c, "train.lr=abc");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--set train.lr=abc: train.lr: expected a number"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(apply_override(c, "novalue"), ConfigError);
}

TEST(Config, SetOverridesAreCheckedTogetherSoTheirOrderDoesNotMatter) {
  // From a teacher-target file to a tensors file: data.target applies to gaussian data
  // only, so data.kind=tensors alone is invalid, and is fine with the assignment after it.
  const std::string file = "data: {target: teacher, target_dim: 1}\n";
  ExperimentConfig c = load_config_text(file, "exp.yaml");
  apply_overrides(c, {"data.kind=tensors", "data.path=data.pt", "data.target=random"});
  EXPECT_EQ(c.data.kind, DataKind::tensors);
  EXPECT_EQ(c.data.target, Target::random);
  // The same check still holds for what the assignments leave.
  ExperimentConfig d = load_config_text(file, "exp.yaml");
  try {
    apply_overrides(d, {"data.kind=tensors", "data.path=data.pt"});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("exp.yaml:1:16: data.target: applies to gaussian data only"),
              std::string::npos)
        << e.what();
  }
  // Types are checked as each assignment is read, and name it.
  ExperimentConfig e = load_config_text(file, "exp.yaml");
  try {
    apply_overrides(e, {"train.lr=abc", "data.kind=nope"});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("--set train.lr=abc"), std::string::npos) << error.what();
  }
}

TEST(Config, SetDropsTheSweepWholeAndNamesTheKeysOfASection) {
  for (const char* drop : {"sweep={}", "sweep=null"}) {
    ExperimentConfig c = load_config_text("sweep: {model.layers: [1, 2], seeds: [0, 1]}\n", "exp.yaml");
    ASSERT_FALSE(c.sweep.empty());
    apply_override(c, drop);
    EXPECT_TRUE(c.sweep.empty()) << drop;
    EXPECT_EQ(expand_sweep(c).size(), 1u) << drop;  // one run: the file's point
  }
  auto error_of = [](const std::string& assignment) {
    ExperimentConfig c;
    try {
      apply_override(c, assignment);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("sweep=[1, 2]").find("only sweep={} (or sweep=null) is accepted whole"), std::string::npos);
  EXPECT_NE(error_of("sweep={train.lr: [0.1]}").find("--set sweep.KEY=[...]"), std::string::npos);
  const std::string section = error_of("model={}");
  EXPECT_NE(section.find("--set model={}: 'model' is a section, not a key: set one of its keys (layers, key_dim,"),
            std::string::npos)
      << section;
  EXPECT_EQ(section.find("did you mean"), std::string::npos) << section;
  EXPECT_NE(error_of("model.residual=1")
                .find("'model.residual' is a section, not a key: set one of its keys "
                      "(attention, ffn), e.g. --set model.residual.attention=..."),
            std::string::npos);
}

TEST(Config, SweepExpandsCartesianProductWithSeedsLast) {
  const ExperimentConfig c = load_config_text(
      "sweep:\n  model.residual.attention: [true, false]\n  train.lr: [0.1, 0.01]\n  seeds: [3, 4]\n", "exp.yaml");
  const auto points = expand_sweep(c);
  ASSERT_EQ(points.size(), 8u);
  EXPECT_EQ(points[0].dir_name(), "model.residual.attention=true,train.lr=0.1/seed=3");
  EXPECT_EQ(points[1].dir_name(), "model.residual.attention=true,train.lr=0.1/seed=4");
  EXPECT_EQ(points[7].dir_name(), "model.residual.attention=false,train.lr=0.01/seed=4");
  const ExperimentConfig last = config_for_point(c, points[7]);
  EXPECT_EQ(last.model.residual_attention.value, 0.0);
  EXPECT_EQ(last.train.lr, 0.01);
  EXPECT_EQ(last.seed, 4);
  EXPECT_TRUE(last.sweep.empty());
}

TEST(Config, ZippedKeysMoveTogetherAsOneAxis) {
  const ExperimentConfig c = load_config_text(
      "sweep:\n  model.residual.attention: [true, false]\n  zip:\n    model.layers: [1, 2, 3]\n"
      "    train.lr: [0.03, 0.012, 0.005]\n  seeds: [0, 1]\n",
      "exp.yaml");
  const auto points = expand_sweep(c);
  ASSERT_EQ(points.size(), 12u);  // 2 residuals x 3 (layers, lr) pairs x 2 seeds, not 2 x 3 x 3 x 2
  EXPECT_EQ(points[0].dir_name(), "model.residual.attention=true,model.layers=1,train.lr=0.03/seed=0");
  EXPECT_EQ(points[3].dir_name(), "model.residual.attention=true,model.layers=2,train.lr=0.012/seed=1");
  EXPECT_EQ(points[11].dir_name(), "model.residual.attention=false,model.layers=3,train.lr=0.005/seed=1");
  for (const auto& point : points) {
    const ExperimentConfig run = config_for_point(c, point);
    const double lr_of_depth[] = {0.03, 0.012, 0.005};
    EXPECT_EQ(run.train.lr, lr_of_depth[run.model.layers - 1]) << point.dir_name();
  }
  // The dump keeps the pairing, so a sweep directory's config.yaml expands to the same points.
  const std::string dumped = dump_yaml(c);
  EXPECT_NE(dumped.find("  zip:\n    model.layers: [1, 2, 3]\n    train.lr: [0.03, 0.012, 0.005]\n"), std::string::npos)
      << dumped;
  const auto again = expand_sweep(load_config_text(dumped, "dumped.yaml"));
  ASSERT_EQ(again.size(), points.size());
  for (size_t i = 0; i < points.size(); ++i) EXPECT_EQ(again[i].dir_name(), points[i].dir_name());
  // Zipped lists count once towards the run limit: 2 x 150 values are 150 runs, not 22500.
  std::string layers, lrs;
  for (int i = 1; i <= 150; ++i) {
    layers += (i > 1 ? ", " : "") + std::to_string(i);
    lrs += (i > 1 ? ", " : "") + std::to_string(0.001 * i);
  }
  EXPECT_EQ(expand_sweep(load_config_text("sweep: {zip: {model.layers: [" + layers + "], train.lr: [" + lrs + "]}}\n",
                                          "exp.yaml"))
                .size(),
            150u);
}

TEST(Config, ZippedListsOfDifferentLengthsAreRefusedWhereTheyStand) {
  const std::string lengths = load_error("sweep:\n  zip:\n    model.layers: [1, 2, 3]\n    train.lr: [0.1, 0.01]\n");
  EXPECT_NE(lengths.find("exp.yaml:4:15: sweep.zip.train.lr: 2 values, but sweep.zip.model.layers has 3"),
            std::string::npos)
      << lengths;
  EXPECT_NE(load_error("sweep: {train.lr: [0.1], zip: {train.lr: [0.2]}}").find("duplicate key 'sweep.train.lr'"),
            std::string::npos);
  EXPECT_NE(load_error("sweep: {zip: {seeds: [0, 1]}}").find("'seeds' cannot be zipped"), std::string::npos);
  EXPECT_NE(load_error("sweep: {zip: {train.lr: 0.1}}").find("sweep.zip.train.lr: expected a non-empty list, got"),
            std::string::npos);
  EXPECT_NE(load_error("sweep: {zip: [1, 2]}").find("sweep.zip: expected a map of dotted keys to lists"),
            std::string::npos);
  EXPECT_NE(load_error("sweep: {zip: {model.depth: [1]}}").find("'model.depth' is not a key that can be swept"),
            std::string::npos);
}

TEST(Config, TwoPointsThatWouldShareARunDirectoryAreRefused) {
  // Each would train into runs/<name>/seed=<s> at once (with --jobs 2, into the same files).
  const std::string twice = load_error("sweep:\n  train.lr: [0.1, 0.2, 0.1]\n");
  EXPECT_NE(twice.find("exp.yaml:2:24: sweep.train.lr: 0.1 is listed twice; each run needs a directory of its own"),
            std::string::npos)
      << twice;
  // A data file names a run by its file name alone.
  const std::string renamed = load_error("data: {kind: tensors, path: a.pt}\nsweep: {data.path: [x/a.pt, y/a.pt]}\n");
  EXPECT_NE(renamed.find("exp.yaml:2:29: sweep.data.path: x/a.pt and y/a.pt give one directory name"),
            std::string::npos)
      << renamed;
  const std::string pair = load_error("sweep:\n  zip: {model.layers: [1, 2, 1], train.lr: [0.1, 0.2, 0.1]}\n");
  EXPECT_NE(pair.find("exp.yaml:2:30: sweep.zip: entries 1 and 3 (model.layers=1, train.lr=0.1) are one point"),
            std::string::npos)
      << pair;
  EXPECT_NE(load_error("sweep: {seeds: [0, 1, 0]}").find("sweep.seeds: seed 0 is listed twice"), std::string::npos);
  // A zipped value may repeat where its partners differ; different points, different directories.
  const auto points =
      expand_sweep(load_config_text("sweep: {zip: {model.layers: [1, 1], train.lr: [0.1, 0.2]}}\n", "exp.yaml"));
  ASSERT_EQ(points.size(), 2u);
  EXPECT_NE(points[0].dir_name(), points[1].dir_name());
}

TEST(Config, ASetOfASweepKeepsTheFilesOrderOfAxesAndItsDirectoryNames) {
  ExperimentConfig c = load_config_text(
      "sweep: {train.lr: [0.01, 0.02], zip: {data.dim: [4, 8], model.layers: [1, 2]}, model.ffn_width: [8, 16]}\n",
      "exp.yaml");
  auto keys = [&] {
    std::vector<std::string> out;
    for (const auto& axis : c.sweep.axes) out.push_back(axis.key);
    return out;
  };
  const auto order = keys();
  ASSERT_EQ(order, (std::vector<std::string>{"train.lr", "data.dim", "model.layers", "model.ffn_width"}));
  apply_override(c, "sweep.train.lr=[0.03, 0.04, 0.05]");
  EXPECT_EQ(keys(), order);
  EXPECT_EQ(expand_sweep(c)[0].dir_name(), "train.lr=0.03,data.dim=4,model.layers=1,model.ffn_width=8/seed=0");
  apply_override(c, "sweep.zip={data.dim: [16, 32], model.layers: [3, 4]}");
  EXPECT_EQ(keys(), order);
  apply_override(c, "sweep.model.ffn_width=[32]");
  EXPECT_EQ(keys(), order);
  EXPECT_EQ(expand_sweep(c).back().dir_name(), "train.lr=0.05,data.dim=32,model.layers=4,model.ffn_width=32/seed=0");
  apply_override(c, "sweep.data.seq_len=[2, 4]");  // a new key goes last
  EXPECT_EQ(keys().back(), "data.seq_len");
}

TEST(Config, SetReplacesTheZipWholeOrMovesOneKeyOutOfIt) {
  ExperimentConfig c = load_config_text("sweep: {zip: {model.layers: [1, 2], train.lr: [0.1, 0.01]}}\n", "exp.yaml");
  apply_override(c, "sweep.zip={model.layers: [3, 4, 5], data.dim: [4, 8, 16]}");
  auto points = expand_sweep(c);
  ASSERT_EQ(points.size(), 3u);  // train.lr left the sweep with the old zip
  EXPECT_EQ(points[2].dir_name(), "model.layers=5,data.dim=16/seed=0");
  // A list of its own for a zipped key would drop its pairing with model.layers: refused,
  // naming the zip and a command that keeps the pairing.
  try {
    apply_override(c, "sweep.data.dim=[4, 8]");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("sweep.data.dim: is zipped in sweep.zip"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--set 'sweep.zip={model.layers: [3, 4, 5], data.dim: [4, 4, 4]}'"),
              std::string::npos)
        << e.what();
  }
  ASSERT_EQ(expand_sweep(c).size(), 3u) << "the refused --set changed nothing";
  // The advice for a --set of a zipped key's value, followed, keeps every point's pairing.
  try {
    apply_override(c, "data.dim=32");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string advice = "--set 'sweep.zip={model.layers: [3, 4, 5], data.dim: [32, 32, 32]}'";
    ASSERT_NE(std::string(e.what()).find(advice), std::string::npos) << e.what();
    apply_override(c, "sweep.zip={model.layers: [3, 4, 5], data.dim: [32, 32, 32]}");
    points = expand_sweep(c);
    ASSERT_EQ(points.size(), 3u);
    EXPECT_EQ(points[2].dir_name(), "model.layers=5,data.dim=32/seed=0");
  }
  apply_override(c, "sweep.zip={}");           // drops the zipped keys
  apply_override(c, "sweep.data.dim=[4, 8]");  // a key of no zip: a Cartesian axis
  points = expand_sweep(c);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[1].dir_name(), "data.dim=8/seed=0");
  try {
    apply_override(c, "sweep.zip.train.lr=[0.1, 0.2, 0.3]");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("zipped lists are set together: --set sweep.zip={KEY: [...], KEY: [...]}"),
              std::string::npos)
        << e.what();
  }
}

TEST(Config, SweepValuesAreCheckedWhereTheyStand) {
  const std::string type_error = load_error("sweep:\n  train.lr: [0.1, abc]\n");
  EXPECT_NE(type_error.find("exp.yaml:2:19: train.lr: expected a number, got 'abc'"), std::string::npos) << type_error;
  EXPECT_NE(load_error("sweep: {model.depth: [1, 2]}").find("not a key that can be swept"), std::string::npos);
  EXPECT_NE(load_error("sweep: {seed: [1, 2]}").find("use 'seeds'"), std::string::npos);
  EXPECT_NE(load_error("sweep: {train.lr: 0.1}").find("expected a non-empty list"), std::string::npos);
  // A value of the right type but impossible is refused when its point is built, with its position.
  const ExperimentConfig c = load_config_text("sweep:\n  train.lr: [0.1, -1]\n", "exp.yaml");
  const auto points = expand_sweep(c);
  try {
    config_for_point(c, points[1]);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("exp.yaml:2:19: train.lr: must be > 0"), std::string::npos) << e.what();
  }
}

TEST(Config, DumpLoadsBackToTheSameConfiguration) {
  ExperimentConfig c = load_config_text(
      "name: round-trip\ndata: {target_std: 0.25, path: null}\nmodel: {key_dim: 3, attention: {temperature: 1.5}}\n"
      "train: {lr: 0.0123456789012345, rel_tolerance: 1.0e-12}\nsweep: {data.dim: [4, 8], seeds: [0, 1]}\n",
      "exp.yaml");
  const std::string dumped = dump_yaml(c);
  const ExperimentConfig again = load_config_text(dumped, "dumped.yaml");
  EXPECT_EQ(dump_yaml(again), dumped);
  EXPECT_EQ(again.train.lr, 0.0123456789012345);
  EXPECT_EQ(config_hash(again), config_hash(c));
  apply_override(c, "train.lr=0.5");
  EXPECT_NE(config_hash(again), config_hash(c));
}

TEST(Config, TheDefaultsAreTheDocumentedOnes) {
  // Written out by hand from the documented defaults (docs/design.md and the keys users
  // rely on), not from the key registry: a key renamed, dropped or given a new default
  // shows here.
  const std::string expected =
      "name: example\nseed: 0\ndevice: auto\ndtype: float64\n"
      "data:\n  kind: gaussian\n  num_samples: 32\n  seq_len: 8\n  dim: 16\n  normalize_tokens: false\n"
      "  target: random\n  target_dim: 16\n  target_std: null\n  noise: 0\n  path: null\n"
      "model:\n  layers: 1\n  key_dim: null\n  ffn_width: 256\n  activation: relu\n  leaky_slope: 0.01\n"
      "  readout: tokens\n  layer_norm: none\n  residual:\n    attention: true\n    ffn: false\n"
      "  attention:\n    heads: 1\n    temperature: null\n    causal: false\n  ffn:\n    output_scale: 1\n"
      "  init:\n    W_Q: null\n    W_K: null\n    W_V: null\n    W_1: null\n    W_2: null\n"
      "train:\n  lr: 0.01\n  lr_edge: none\n  max_iters: 2000\n  tolerance: 0\n  rel_tolerance: 1e-10\n"
      "  divergence_factor: 1000000\n  stall_window: 10\n  loss: sum\n  gradients: autograd\n  log_every: 1\n  "
      "checkpoint_every: 0\n  "
      "freeze: none\n"
      "diagnostics:\n  every: 10\n  ntk: false\n  ntk_every: null\n  ntk_max_entries: 50000000\n  ntk_spectrum: false\n"
      "  sharpness: false\n"
      "  sharpness_every: null\n"
      "  linearized: false\n"
      "compute:\n  backend: tuned\n";
  EXPECT_EQ(dump_yaml(ExperimentConfig{}), expected);
  // Every key a file may set is one of those lines, and each reads back from its own text.
  for (const auto& key : known_keys()) {
    ExperimentConfig c;
    EXPECT_NO_THROW(apply_override(c, key + "=" + value_text(c, key))) << key;
  }
}

TEST(Config, ChoicesAreTheirNamesAndOnlyThose) {
  ExperimentConfig c;
  apply_overrides(c, {"model.readout=mean", "train.loss=mean", "model.activation=leaky_relu",
                      "compute.backend=reference", "dtype=float32", "model.layer_norm=pre"});
  EXPECT_EQ(c.model.readout, Readout::mean);
  EXPECT_EQ(c.train.loss, Loss::mean);
  EXPECT_EQ(c.model.activation, Activation::leaky_relu);
  EXPECT_EQ(c.compute.backend, Backend::reference);
  EXPECT_EQ(c.dtype, Dtype::float32);
  EXPECT_EQ(c.model.layer_norm, LayerNorm::pre);
  try {
    apply_override(c, "compute.backend=fast");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "--set compute.backend=fast: compute.backend: unknown value 'fast'; expected one of: tuned, reference");
  }
  // The backend sets up the process once: a sweep cannot move it.
  try {
    load_config_text("sweep: {compute.backend: [tuned, reference]}\n", "e.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("e.yaml:1:9: sweep: 'compute.backend' is not a key that can be swept"),
              std::string::npos)
        << e.what();
  }
}

TEST(Config, EmbeddedFlagshipIsAValidSixRunSweep) {
  const ExperimentConfig c = load_config_text(flagship_experiment_yaml(), kFlagshipSource);
  EXPECT_EQ(c.name, "residual_vs_plain");
  EXPECT_EQ(expand_sweep(c).size(), 6u);
}

}  // namespace
}  // namespace resgd
