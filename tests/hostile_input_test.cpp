// Hostile input through the real `resgd` binary (issue 6): malformed experiment files and
// .pt data files. Each must end in one clear line naming the file and an exit code, never a
// crash, a hang or an allocation the size of the mistake. Every file lives in a TempDir.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <ostream>
#include <string>

#include "forged_tensor_files.h"
#include "resgd/science/tensor_io.h"
#include "test_util.h"

namespace resgd {
namespace {

using namespace std::string_literals;  // "...\0..."s keeps the NUL bytes
using testing::run_resgd;
using testing::TempDir;
namespace fs = std::filesystem;

constexpr int kExitConfigError = 2;
constexpr int kExitFailure = 1;

/// One malformed experiment: the file's text, the arguments after `resgd validate`, and a
/// piece of the one-line error. The directory `adir/` exists in every case's TempDir.
struct HostileFile {
  std::string name, file_text, args, expected_error;
  friend std::ostream& operator<<(std::ostream& os, const HostileFile& h) {
    return os << h.name << ": resgd validate " << h.args << " (expect '" << h.expected_error << "')";
  }
};

std::string repeat(const std::string& piece, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += piece;
  return out;
}

/// `depth` block maps, each indented below the previous: k:\n  k:\n    k: ...
std::string nested_block_maps(int depth) {
  std::string out;
  for (int i = 0; i < depth; ++i) out += std::string(2 * static_cast<size_t>(i), ' ') + "k:\n";
  return out;
}

/// A sweep of 7 axes of 10 values each: 10^7 runs.
std::string huge_sweep() {
  std::string out = "sweep: {";
  for (const char* key : {"model.init.W_Q", "model.init.W_K", "model.init.W_V", "model.init.W_1", "model.init.W_2",
                          "train.lr", "model.leaky_slope"})
    out += std::string(key) + ": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], ";
  return out + "seeds: [0]}\n";
}

class HostileExperimentFile : public ::testing::TestWithParam<HostileFile> {};

TEST_P(HostileExperimentFile, ExitsTwoWithOneClearLine) {
  TempDir dir;
  testing::write_text(dir / "exp.yaml", GetParam().file_text);
  fs::create_directory(dir / "adir");
  const auto result = run_resgd(dir, "validate " + GetParam().args);
  EXPECT_EQ(result.exit_code, kExitConfigError) << result.err;  // -1 would mean a crash
  EXPECT_NE(result.err.find("resgd: error: " + GetParam().expected_error), std::string::npos) << result.err;
  EXPECT_EQ(result.out, "") << "nothing is printed for a bad configuration";
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, HostileExperimentFile,
    ::testing::Values(
        // Not a map.
        HostileFile{"List", "- data\n- model\n", "exp.yaml",
                    "exp.yaml:1:1: an experiment file must be a map of sections (known keys: name, seed"},
        HostileFile{"Scalar", "residual_vs_plain\n", "exp.yaml",
                    "exp.yaml:1:1: an experiment file must be a map of sections"},
        HostileFile{"TwoDocuments", "name: a\n---\nname: b\n", "exp.yaml",
                    "exp.yaml:2:1: a second YAML document ('---'); an experiment file holds one"},
        // Syntax errors.
        HostileFile{"UnclosedFlowMap", "data: {dim: 4\n", "exp.yaml",
                    "exp.yaml:2:1: YAML syntax error: end of map flow not found"},
        HostileFile{"TabIndentation", "data:\n\tdim: 4\n", "exp.yaml", "exp.yaml:2:5: YAML syntax error"},
        HostileFile{"ClosingBracketForBrace", "data: {dim: 4]\n", "exp.yaml", "exp.yaml:1:14: YAML syntax error"},
        // Deep nesting: yaml-cpp's depth guard, never a stack overflow.
        HostileFile{"TenThousandBrackets", repeat("[", 10000), "exp.yaml",
                    "exp.yaml:1:1: YAML nesting too deep for the parser"},
        HostileFile{"TenThousandBraces", repeat("{", 10000), "exp.yaml",
                    "exp.yaml:1:1: YAML nesting too deep for the parser"},
        HostileFile{"ClosedDeepBrackets", "name: " + repeat("[", 10000) + repeat("]", 10000) + "\n", "exp.yaml",
                    "exp.yaml:1:20007: YAML nesting too deep for the parser"},
        HostileFile{"DeepBlockMaps", nested_block_maps(3000), "exp.yaml",
                    "exp.yaml:499:999: YAML nesting too deep for the parser"},
        // Numbers out of range, NaN and inf.
        HostileFile{"IntegerBeyondInt64", "data: {dim: 99999999999999999999999}\n", "exp.yaml",
                    "exp.yaml:1:13: data.dim: expected an integer, got '99999999999999999999999'"},
        HostileFile{"NegativeIntegerBeyondInt64", "seed: -99999999999999999999999\n", "exp.yaml",
                    "exp.yaml:1:7: seed: expected an integer, got '-99999999999999999999999'"},
        HostileFile{"FloatBeyondDouble", "train: {lr: 1e400}\n", "exp.yaml",
                    "exp.yaml:1:13: train.lr: expected a number, got '1e400'"},
        HostileFile{"NanStepSize", "train: {lr: .nan}\n", "exp.yaml",
                    "exp.yaml:1:13: train.lr: must be a finite number, got '.nan'"},
        HostileFile{"InfStepSize", "train: {lr: .inf}\n", "exp.yaml",
                    "exp.yaml:1:13: train.lr: must be a finite number, got '.inf'"},
        HostileFile{"MinusInfTolerance", "train: {tolerance: -.inf}\n", "exp.yaml",
                    "exp.yaml:1:20: train.tolerance: must be a finite number, got '-.inf'"},
        HostileFile{"NanInitStd", "model: {init: {W_Q: .NaN}}\n", "exp.yaml",
                    "exp.yaml:1:21: model.init.W_Q: must be a finite number, got '.NaN'"},
        HostileFile{"NanResidualGain", "model: {residual: {attention: .nan}}\n", "exp.yaml",
                    "exp.yaml:1:31: model.residual.attention: expected true, false or a number, got '.nan'"},
        // Duplicate keys, at the top and nested.
        HostileFile{"DuplicateTopLevelKey", "name: a\nseed: 1\nname: b\n", "exp.yaml",
                    "exp.yaml:3:1: duplicate key 'name'"},
        HostileFile{"DuplicateSection", "data: {dim: 4}\ndata: {seq_len: 2}\n", "exp.yaml",
                    "exp.yaml:2:1: duplicate key 'data'"},
        HostileFile{"DuplicateNestedKey", "data: {dim: 4, dim: 5}\n", "exp.yaml",
                    "exp.yaml:1:16: duplicate key 'data.dim'"},
        HostileFile{"DuplicateDeepKey", "model:\n  residual:\n    ffn: true\n    ffn: false\n", "exp.yaml",
                    "exp.yaml:4:5: duplicate key 'model.residual.ffn'"},
        HostileFile{"DuplicateSweepKey", "sweep: {train.lr: [0.1], train.lr: [0.2]}\n", "exp.yaml",
                    "exp.yaml:1:26: duplicate key 'sweep.train.lr'"},
        // Wrong types.
        HostileFile{"WordForInteger", "data: {dim: four}\n", "exp.yaml",
                    "exp.yaml:1:13: data.dim: expected an integer, got 'four'"},
        HostileFile{"FractionForInteger", "model: {layers: 1.5}\n", "exp.yaml",
                    "exp.yaml:1:17: model.layers: expected an integer, got '1.5'"},
        HostileFile{"NumberForBool", "model: {attention: {causal: 3}}\n", "exp.yaml",
                    "exp.yaml:1:29: model.attention.causal: expected true or false, got '3'"},
        HostileFile{"MapForNumber", "train: {lr: {value: 0.1}}\n", "exp.yaml",
                    "exp.yaml:1:13: train.lr: expected a number, got a map"},
        HostileFile{"ListForString", "model: {activation: [relu]}\n", "exp.yaml",
                    "exp.yaml:1:21: model.activation: expected a string, got a list"},
        HostileFile{"ListForSection", "data: [1, 2]\n", "exp.yaml",
                    "exp.yaml:1:7: 'data' is a section: expected a map with keys kind, num_samples"},
        HostileFile{"NumberForSection", "train: 5\n", "exp.yaml",
                    "exp.yaml:1:8: 'train' is a section: expected a map with keys lr, lr_edge, max_iters"},
        HostileFile{"ListAsKey", "? [a, b]\n: 1\n", "exp.yaml", "exp.yaml:1:3: keys must be plain names"},
        // Unknown keys, in every section.
        HostileFile{"UnknownTopLevelKey", "nmae: x\n", "exp.yaml",
                    "exp.yaml:1:1: unknown key 'nmae' (did you mean 'name'?)"},
        HostileFile{"UnknownDataKey", "data: {dims: 3}\n", "exp.yaml",
                    "exp.yaml:1:8: unknown key 'dims' in section 'data' (did you mean 'dim'?)"},
        HostileFile{"UnknownModelKey", "model: {layer: 3}\n", "exp.yaml",
                    "exp.yaml:1:9: unknown key 'layer' in section 'model' (did you mean 'layers'?)"},
        HostileFile{"UnknownResidualKey", "model: {residual: {attn: 1}}\n", "exp.yaml",
                    "exp.yaml:1:20: unknown key 'attn' in section 'model.residual'"},
        HostileFile{"UnknownAttentionKey", "model: {attention: {temp: 1}}\n", "exp.yaml",
                    "exp.yaml:1:21: unknown key 'temp' in section 'model.attention'"},
        HostileFile{"UnknownFfnKey", "model: {ffn: {scale: 1}}\n", "exp.yaml",
                    "exp.yaml:1:15: unknown key 'scale' in section 'model.ffn'"},
        HostileFile{"UnknownInitKey", "model: {init: {W_X: 1}}\n", "exp.yaml",
                    "exp.yaml:1:16: unknown key 'W_X' in section 'model.init' (did you mean 'W_Q'?)"},
        HostileFile{"UnknownTrainKey", "train: {lrr: 3}\n", "exp.yaml",
                    "exp.yaml:1:9: unknown key 'lrr' in section 'train' (did you mean 'lr'?)"},
        HostileFile{"UnknownDiagnosticsKey", "diagnostics: {evry: 3}\n", "exp.yaml",
                    "exp.yaml:1:15: unknown key 'evry' in section 'diagnostics' (did you mean 'every'?)"},
        // Sizes: refused before anything is allocated, with the estimate.
        HostileFile{"SizesBeyondMemory", "data: {num_samples: 100000000, seq_len: 100000, dim: 1000}\n", "exp.yaml",
                    "exp.yaml:1:21: data.num_samples: the run would need about 4.66e+10 GiB of memory, most of it the "
                    "attention scores"},
        HostileFile{"SizesBeyondInt64Product",
                    "data: {num_samples: 9223372036854775807, seq_len: 9223372036854775807}\n", "exp.yaml",
                    "exp.yaml:1:21: data.num_samples: the run would need about 3.51e+49 GiB of memory"},
        HostileFile{"NegativeSequenceLength", "data: {seq_len: -3}\n", "exp.yaml",
                    "exp.yaml:1:17: data.seq_len: must be a positive integer, got -3"},
        HostileFile{"NegativeSampleCount", "data: {num_samples: -9223372036854775808}\n", "exp.yaml",
                    "exp.yaml:1:21: data.num_samples: must be a positive integer, got -9223372036854775808"},
        // Empty strings.
        HostileFile{"EmptyName", "name: ''\n", "exp.yaml", "exp.yaml:1:7: name: must not be empty"},
        HostileFile{"EmptyActivation", "model: {activation: \"\"}\n", "exp.yaml",
                    "exp.yaml:1:21: model.activation: unknown value ''; expected one of: relu"},
        HostileFile{"EmptyDataPath", "data: {kind: tensors, path: ''}\n", "exp.yaml",
                    "exp.yaml:1:29: data.path: tensors data needs the .pt file"},
        // Sweeps.
        HostileFile{"SweepOfEmptyList", "sweep: {train.lr: []}\n", "exp.yaml",
                    "exp.yaml:1:19: sweep.train.lr: expected a non-empty list"},
        HostileFile{"SweepOfUnknownKey", "sweep: {train.lrr: [0.1]}\n", "exp.yaml",
                    "exp.yaml:1:9: sweep: 'train.lrr' is not a key that can be swept"},
        HostileFile{"SweepNotAMap", "sweep: [train.lr]\n", "exp.yaml",
                    "exp.yaml:1:8: sweep: expected a map of dotted keys to lists of values"},
        HostileFile{"SweepOfTenMillionRuns", huge_sweep(), "exp.yaml",
                    "exp.yaml:1:26: sweep: the product of the swept values gives 1e+07 runs, more than 10000"},
        // Not a YAML text file at all.
        HostileFile{"BinaryGarbageWithNul",
                    "\x7f"
                    "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0>\0"s,
                    "exp.yaml", "exp.yaml:1:8: not a text file (NUL byte)"},
        HostileFile{"BinaryGarbage", "\x89PNG\r\n\x1a\n\xff\xfe\xfd\x01\x02\x03: \"\\q\x80\x81\"\n", "exp.yaml",
                    "exp.yaml:"},
        HostileFile{"Directory", "{}\n", "adir",
                    "adir: is a directory, not a regular file; an experiment file is a YAML text file"},
        HostileFile{"MissingFile", "{}\n", "missing.yaml", "missing.yaml: cannot read: No such file or directory"},
        HostileFile{"CharacterDevice", "{}\n", "/dev/zero", "/dev/zero: is a character device, not a regular file"},
        // --set.
        HostileFile{"SetEmptyValueForNumber", "{}\n",
                    "exp.yaml --set train.lr=", "--set train.lr=: train.lr: expected a number, got null"},
        HostileFile{"SetUnknownKey", "{}\n", "exp.yaml --set train.lrr=0.1",
                    "--set train.lrr=0.1: unknown key 'lrr' in section 'train' (did you mean 'lr'?)"},
        HostileFile{"SetUnknownSection", "{}\n", "exp.yaml --set optimizer.lr=0.1",
                    "--set optimizer.lr=0.1: unknown section 'optimizer'"},
        HostileFile{"SetNan", "{}\n", "exp.yaml --set train.lr=.nan",
                    "--set train.lr=.nan: train.lr: must be a finite number"},
        HostileFile{"SetWithoutEquals", "{}\n", "exp.yaml --set train.lr", "--set train.lr: expected key=value"},
        HostileFile{"SetDeepNesting", "{}\n", "exp.yaml --set 'train.lr=" + repeat("[", 3000) + "'",
                    "--set train.lr=" + repeat("[", 3000) +
                        ": cannot parse the value as YAML: nesting too deep for the parser"}),
    [](const ::testing::TestParamInfo<HostileFile>& param_info) { return param_info.param.name; });

// A quoted sweep value is a string that YAML would read otherwise ('[x' opens a list): the
// point must get the same string back, and an impossible one is a configuration error (2).
TEST(HostileSweep, QuotedValueReachesItsPointAsTheSameString) {
  TempDir dir;
  testing::write_text(dir / "exp.yaml", "sweep: {model.activation: ['[x']}\n");
  const auto result = run_resgd(dir, "run exp.yaml --out out --device cpu");
  EXPECT_EQ(result.exit_code, kExitConfigError) << result.err;
  EXPECT_NE(result.err.find("resgd: error: exp.yaml:1:28: model.activation: unknown value '[x'"), std::string::npos)
      << result.err;
}

// A FIFO (or a device) as the experiment file or as a data file: refused at once, naming
// the path, where a read would wait for a writer forever. `timeout` turns a hang into a
// failure instead of a stuck suite.
TEST(HostileFifo, AFifoAsTheExperimentOrADataFileIsRefusedAtOnce) {
  TempDir dir;
  ASSERT_EQ(mkfifo((dir / "fifo").c_str(), 0600), 0);
  const auto as_experiment = run_resgd(dir, "validate fifo", "timeout 30");
  EXPECT_EQ(as_experiment.exit_code, kExitConfigError) << as_experiment.err;
  EXPECT_NE(as_experiment.err.find("resgd: error: fifo: is a FIFO (named pipe), not a regular file"), std::string::npos)
      << as_experiment.err;
  for (const std::string kind : {"tensors", "digits"}) {
    for (const std::string path : {"fifo", "/dev/zero"}) {
      testing::write_text(dir / "exp.yaml", "data: {kind: " + kind + ", path: " + path + "}\ntrain: {max_iters: 1}\n");
      for (const std::string command : {"validate exp.yaml", "run exp.yaml --out out --device cpu"}) {
        const auto result = run_resgd(dir, command, "timeout 30");
        EXPECT_EQ(result.exit_code, kExitFailure) << kind << " " << path << " " << command << ": " << result.err;
        const std::string resolved = path[0] == '/' ? path : (dir / path).string();  // from the file's folder
        EXPECT_NE(result.err.find("resgd: error: " + resolved + ": is a "), std::string::npos) << result.err;
        EXPECT_FALSE(fs::exists(dir / "out")) << "nothing is written for a data file that cannot be read";
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// .pt files for data.kind tensors: an IoError naming the path, exit 1, no crash.

/// One hostile data file: how to write it, and a piece of the error after the path.
struct HostileTensorFile {
  std::string name;
  std::function<void(const fs::path&)> write;
  std::string expected_error;
  friend std::ostream& operator<<(std::ostream& os, const HostileTensorFile& h) {
    return os << h.name << " (expect 'data.pt: " << h.expected_error << "')";
  }
};

void save_valid(const fs::path& path) {
  torch::manual_seed(0);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  save_tensors(path, {{"X", torch::randn({4, 3, 2}, f64)}, {"Y", torch::randn({4, 3, 1}, f64)}});
}

void save_ivalue(const fs::path& path, const torch::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  testing::write_text(path, std::string(bytes.begin(), bytes.end()));
}

/// A valid file cut to `fraction` of its length.
std::function<void(const fs::path&)> truncated(double fraction) {
  return [fraction](const fs::path& path) {
    save_valid(path);
    const std::string bytes = testing::slurp(path);
    testing::write_text(path, bytes.substr(0, static_cast<size_t>(fraction * double(bytes.size()))));
  };
}

const char* kTensorsExperiment =
    "name: hostile\n"
    "data: {kind: tensors, path: data.pt, num_samples: 4, seq_len: 3, dim: 2, target_dim: 1}\n"
    "model: {ffn_width: 4}\n"
    "train: {max_iters: 1}\n";

class HostileDataFile : public ::testing::TestWithParam<HostileTensorFile> {};

TEST(HostileDataBaseline, ValidTensorFileRuns) {  // the baseline the hostile cases below break
  TempDir dir;
  save_valid(dir / "data.pt");
  testing::write_text(dir / "exp.yaml", kTensorsExperiment);
  const auto result = run_resgd(dir, "run exp.yaml --out out --device cpu");
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

TEST_P(HostileDataFile, ExitsOneNamingThePath) {
  TempDir dir;
  GetParam().write(dir / "data.pt");
  testing::write_text(dir / "exp.yaml", kTensorsExperiment);
  const auto result = run_resgd(dir, "run exp.yaml --out out --device cpu");
  EXPECT_EQ(result.exit_code, kExitFailure) << result.err;  // -1 would mean a crash
  // data.path is read from the experiment file's folder, and named as resolved.
  EXPECT_NE(result.err.find("resgd: error: " + (dir / "data.pt").string() + ": " + GetParam().expected_error),
            std::string::npos)
      << result.err;
  EXPECT_EQ(result.err.find("internal error"), std::string::npos) << result.err;
}

// The hand-written files of forged_tensor_files.h: the honest one is read as torch.save
// would have written it, so what the forged ones are refused for is what they forge.
TEST(HostileDataBaseline, AnHonestHandWrittenFileReadsBackItsValues) {
  const auto tensors = load_tensors_from_bytes(
      testing::forged_tensor_file({testing::honest_tensor("X", {4, 3, 2}), testing::honest_tensor("Y", {4, 3, 1})}),
      "honest.pt");
  ASSERT_EQ(tensors.size(), 2u);
  const auto& X = tensors.at("X");
  ASSERT_EQ(X.sizes(), torch::IntArrayRef({4, 3, 2}));
  EXPECT_TRUE(torch::equal(X, torch::arange(24, torch::kFloat64).add_(0.5).view({4, 3, 2})));
  TempDir dir;
  testing::write_text(dir / "data.pt", testing::forged_tensor_file({testing::honest_tensor("X", {4, 3, 2}),
                                                                    testing::honest_tensor("Y", {4, 3, 1})}));
  testing::write_text(dir / "exp.yaml", kTensorsExperiment);
  const auto result = run_resgd(dir, "run exp.yaml --out out --device cpu");
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

/// Each forged file of forged_tensor_files.h, refused naming the tensor.
std::vector<HostileTensorFile> forged_tensor_cases() {
  std::vector<HostileTensorFile> cases = {
      {"ZipEntryLargerThanTheFile",
       [](const fs::path& p) { testing::write_text(p, testing::file_with_an_oversized_zip_entry()); },
       "not a readable tensor file (torch.save / pickle format): its zip entry 'archive/data/0' declares 4294967280 "
       "bytes"}};
  // A nesting deeper than any tensor file's: LibTorch builds and frees it recursively, and
  // 200,000 levels overflowed its stack (a crash, exit 139). Refused before it is built.
  const std::string too_deep =
      "not a readable tensor file (torch.save / pickle format): its pickle is not a tensor file's: it nests "
      "values more than 100 deep";
  cases.push_back({"PickleOfTuplesNested200000Deep",
                   [](const fs::path& p) {
                     testing::write_text(p, testing::file_of_pickle(testing::pickle_of_nested_tuples(200000)));
                   },
                   too_deep});
  cases.push_back({"PickleOfListsNested200000Deep",
                   [](const fs::path& p) {
                     testing::write_text(p, testing::file_of_pickle(testing::pickle_of_nested_lists(200000)));
                   },
                   too_deep});
  cases.push_back({"PickleOfTuples101Deep",  // one past the limit
                   [](const fs::path& p) {
                     testing::write_text(p, testing::file_of_pickle(testing::pickle_of_nested_tuples(100)));
                   },
                   too_deep});
  cases.push_back(
      {"PickleOfTuples100DeepIsReadAndIsNoDictionary",  // the limit itself passes the scan
       [](const fs::path& p) { testing::write_text(p, testing::file_of_pickle(testing::pickle_of_nested_tuples(99))); },
       "expected a dictionary of tensors, found Tuple"});
  cases.push_back({"PickleNestingThroughTheMemo",
                   [](const fs::path& p) {
                     testing::write_text(p, testing::file_of_pickle(testing::pickle_growing_a_placed_list(200000)));
                   },
                   "not a readable tensor file (torch.save / pickle format): its pickle is not a tensor file's: it "
                   "changes a value after placing it inside another"});
  cases.push_back({"PickleLargerThanAnyTensorFilesNames",
                   [](const fs::path& p) {
                     std::string pickle = "\x80\x02";
                     pickle += 'B';  // BINBYTES of 65 MiB: a length it holds, but more than names need
                     const uint32_t length = 65u << 20;
                     pickle.append(reinterpret_cast<const char*>(&length), 4);
                     pickle.append(length, 'x');
                     testing::write_text(p, testing::file_of_pickle(pickle + "."));
                   },
                   "not a readable tensor file (torch.save / pickle format): its pickle is 68157448 bytes, more "
                   "than the 67108864"});
  // What fuzz/pickle_fuzz found in LibTorch's own unpickler (reads of freed or wild memory,
  // an abort on a garbage tag): each refused by the pickle check before LibTorch reads it.
  for (const auto& entry : fs::directory_iterator(RESGD_SOURCE_DIR "/fuzz/regressions")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("pickle-", 0) != 0) continue;
    std::string test_name = "Fuzzed_" + entry.path().stem().string().substr(7);
    std::replace(test_name.begin(), test_name.end(), '-', '_');
    cases.push_back({test_name,
                     [path = entry.path()](const fs::path& p) {
                       testing::write_text(p, testing::file_of_pickle(testing::slurp(path)));
                     },
                     "not a readable tensor file (torch.save / pickle format): its pickle is not a tensor file's: "});
  }
  for (const auto& file : testing::forged_files())
    cases.push_back({file.name, [file](const fs::path& p) { testing::write_text(p, testing::forged_file_bytes(file)); },
                     std::string("not a readable tensor file (torch.save / pickle format): ") +
                         (file.refused_by_libtorch ? "" : "tensor 'X'")});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Forged, HostileDataFile, ::testing::ValuesIn(forged_tensor_cases()),
                         [](const ::testing::TestParamInfo<HostileTensorFile>& param_info) {
                           return param_info.param.name;
                         });

INSTANTIATE_TEST_SUITE_P(
    Hostile, HostileDataFile,
    ::testing::Values(
        HostileTensorFile{"Empty", [](const fs::path& p) { testing::write_text(p, ""); }, "not a readable tensor file"},
        HostileTensorFile{"TruncatedToHalf", truncated(0.5), "not a readable tensor file"},
        HostileTensorFile{"TruncatedToTenPercent", truncated(0.1), "not a readable tensor file"},
        HostileTensorFile{"LastByteMissing", truncated(0.999), "not a readable tensor file"},
        HostileTensorFile{"Garbage", [](const fs::path& p) { testing::write_text(p, "\x80\x02garbage\xff\x00\x01"s); },
                          "not a readable tensor file"},
        HostileTensorFile{"ZipDirectoryPastTheEnd",  // found by fuzz/tensors_fuzz: read past the buffer
                          [](const fs::path& p) {
                            fs::copy_file(RESGD_SOURCE_DIR "/fuzz/regressions/tensors-zip-directory-past-end.pt", p);
                          },
                          "not a readable tensor file"},
        HostileTensorFile{"RecordSizeBeyondMemory",  // found by fuzz/tensors_fuzz: a 26 GB memo in 1 kB
                          [](const fs::path& p) {
                            fs::copy_file(RESGD_SOURCE_DIR "/fuzz/regressions/tensors-record-size-beyond-memory.pt", p);
                          },
                          "not a readable tensor file (torch.save / pickle format): its pickle is not a tensor "
                          "file's: it stores memo entry 1668571944 where it has 1"},
        HostileTensorFile{"PickleStringPastItsEnd",  // found by fuzz/tensors_fuzz: a 4 GB string in 378 bytes
                          [](const fs::path& p) {
                            fs::copy_file(RESGD_SOURCE_DIR "/fuzz/regressions/tensors-pickle-string-past-end.pt", p);
                          },
                          "not a readable tensor file (torch.save / pickle format): its pickle is not a tensor "
                          "file's: it declares a string of 4294967289 bytes"},
        HostileTensorFile{"PickleMemoIndexBeyondItsLength",  // found by fuzz/tensors_fuzz: a memo of 1.6e9 entries
                          [](const fs::path& p) {
                            fs::copy_file(
                                RESGD_SOURCE_DIR "/fuzz/regressions/tensors-pickle-memo-index-beyond-pickle.pt", p);
                          },
                          "not a readable tensor file (torch.save / pickle format): its pickle is not a tensor file's: "
                          "it stores memo entry"},
        HostileTensorFile{"MangledTypeTag",  // found by fuzz/tensors_fuzz: LibTorch's type parser throws
                          [](const fs::path& p) {
                            fs::copy_file(RESGD_SOURCE_DIR "/fuzz/regressions/tensors-mangled-type-tag.pt", p);
                          },
                          "not a readable tensor file"},
        HostileTensorFile{"YamlInsteadOfPickle", [](const fs::path& p) { testing::write_text(p, "X: [1, 2]\n"); },
                          "not a readable tensor file"},
        HostileTensorFile{"DictOfStrings",
                          [](const fs::path& p) {
                            c10::Dict<std::string, std::string> dict;
                            dict.insert("X", "not a tensor");
                            save_ivalue(p, dict);
                          },
                          "expected a dictionary of name -> tensor, found String -> String"},
        HostileTensorFile{"ListOfTensors",
                          [](const fs::path& p) { save_ivalue(p, c10::List<torch::Tensor>({torch::ones({2})})); },
                          "expected a dictionary of tensors, found GenericList"},
        HostileTensorFile{"BareTensor",
                          [](const fs::path& p) {
                            save_ivalue(p, torch::ones({4, 3, 2}));
                          },
                          "expected a dictionary of tensors, found Tensor"},
        HostileTensorFile{"IntegerKeys",
                          [](const fs::path& p) {
                            c10::Dict<int64_t, torch::Tensor> dict;
                            dict.insert(0, torch::ones({2}));
                            save_ivalue(p, dict);
                          },
                          "expected a dictionary of name -> tensor, found Int -> Tensor"},
        HostileTensorFile{"MissingY",
                          [](const fs::path& p) {
                            save_tensors(p, {{"X", torch::ones({4, 3, 2})}});
                          },
                          "no tensor 'Y'"},
        HostileTensorFile{
            "IntegerX",
            [](const fs::path& p) {
              save_tensors(p, {{"X", torch::ones({4, 3, 2}, torch::kInt64)}, {"Y", torch::ones({4, 3, 1})}});
            },
            "X has dtype Long, not a floating-point type"},
        HostileTensorFile{
            "NanInY",
            [](const fs::path& p) {
              save_tensors(p, {{"X", torch::ones({4, 3, 2})}, {"Y", torch::full({4, 3, 1}, std::nan(""))}});
            },
            "Y contains NaN or inf"}),
    [](const ::testing::TestParamInfo<HostileTensorFile>& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace resgd
