// The reference cannot drift: docs/reference.md is what the binary prints, every key and
// every column a run writes has an explanation, and each stated bound is the one validate
// enforces.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "resgd/columns.h"
#include "resgd/config.h"
#include "test_util.h"

namespace resgd {
namespace {

namespace fs = std::filesystem;
using testing::run_resgd;
using testing::slurp;
using testing::TempDir;
using testing::write_text;

TEST(Reference, DocsReferenceIsWhatTheBinaryPrints) {
  const std::string command = "bash '" RESGD_SOURCE_DIR "/scripts/reference.sh' '" RESGD_BINARY "'";
  std::FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string printed;
  char buffer[4096];
  for (size_t got; (got = fread(buffer, 1, sizeof buffer, pipe)) > 0;) printed.append(buffer, got);
  ASSERT_EQ(pclose(pipe), 0);
  EXPECT_EQ(slurp(fs::path(RESGD_SOURCE_DIR) / "docs" / "reference.md"), printed)
      << "docs/reference.md is stale: bash scripts/reference.sh build/release/app/resgd > docs/reference.md";
}

TEST(Reference, EveryKeyHasATypeADefaultAndAMeaning) {
  const auto infos = key_infos();
  ASSERT_EQ(infos.size(), known_keys().size());
  for (const auto& info : infos) {
    EXPECT_FALSE(info.type.empty()) << info.key;
    EXPECT_FALSE(info.default_value.empty()) << info.key;
    EXPECT_GT(info.meaning.size(), 10u) << info.key;
  }
  const auto one = run_resgd(TempDir(), "config --explain model.ffn_width");
  EXPECT_EQ(one.exit_code, 0);
  EXPECT_EQ(one.out, "model.ffn_width\n  integer; default 256; allowed > 0\n  m, the FFN's hidden width (W_1 is d x m)\n");
  const auto unknown = run_resgd(TempDir(), "config --explain model.width");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown key 'model.width'"), std::string::npos) << unknown.err;
}

TEST(Reference, EachStatedBoundIsTheOneValidateEnforces) {
  // "> x": x refused, just above accepted; ">= x": x accepted, just below refused.
  size_t probed = 0;
  for (const auto& info : key_infos()) {
    const bool strict = info.allowed.rfind("> ", 0) == 0, inclusive = info.allowed.rfind(">= ", 0) == 0;
    if (!strict && !inclusive) continue;
    const double bound = std::stod(info.allowed.substr(strict ? 2 : 3));
    const bool integer = info.type.rfind("integer", 0) == 0;
    const double step = integer ? 1.0 : 1e-6;
    auto valid = [&](double value) {
      ExperimentConfig c;
      std::ostringstream text;
      text.precision(17);
      text << value;
      try {
        apply_override(c, info.key + "=" + text.str());
        validate(c);
        return true;
      } catch (const ConfigError&) {
        return false;
      }
    };
    EXPECT_EQ(valid(bound), inclusive) << info.key << " at " << bound;
    EXPECT_EQ(valid(strict ? bound + step : bound - step), strict) << info.key << " beside " << bound;
    ++probed;
  }
  EXPECT_GE(probed, 25u);
}

TEST(Reference, EveryColumnARunWritesIsExplainedForTheFileItIsIn) {
  TempDir dir;
  write_text(dir / "exp.yaml",
             "data: {num_samples: 4, seq_len: 4, dim: 8, target_dim: 2}\nmodel: {ffn_width: 16, layers: 2}\n"
             "train: {max_iters: 10, lr: 0.01}\n"
             "diagnostics: {every: 5, ntk: true, sharpness: true, linearized: true}\n"
             "sweep:\n  model.residual.attention: [true, false]\n");
  ASSERT_EQ(run_resgd(dir, "run exp.yaml --out out").exit_code, 0);
  auto header = [](const fs::path& csv) {
    std::stringstream line(slurp(csv).substr(0, slurp(csv).find('\n')));
    std::vector<std::string> names;
    for (std::string name; std::getline(line, name, ',');) names.push_back(name);
    return names;
  };
  const fs::path run = dir / "out" / "runs" / "model.residual.attention=true" / "seed=0";
  std::vector<std::pair<std::string, std::string>> written;  // column, file
  for (const auto& name : header(run / "metrics.csv")) written.emplace_back(name, "metrics.csv");
  const auto summary = nlohmann::json::parse(slurp(run / "summary.json"));
  for (const auto& item : summary.items()) written.emplace_back(item.key(), "summary.json");
  for (const auto& name : header(dir / "out" / "sweep.csv"))
    if (name != "model.residual.attention") written.emplace_back(name, "sweep.csv");  // a swept key
  for (const auto& [name, file] : written) {
    const ColumnInfo* info = find_column(name);
    ASSERT_NE(info, nullptr) << name << " (" << file << ") has no explanation in columns.cpp";
    EXPECT_NE(info->files.find(file), std::string::npos) << name << " is in " << file << ", its entry says " << info->files;
  }
  EXPECT_EQ(find_column("cond_g0"), nullptr);  // blocks count from 1
  EXPECT_EQ(find_column("no_such_column"), nullptr);
  const auto unknown = run_resgd(dir, "metrics --explain no_such_column");
  EXPECT_EQ(unknown.exit_code, 2);
}

}  // namespace
}  // namespace resgd
