// The reference cannot drift: docs/reference.md is what the binary prints, every key and
// every column a run writes has an explanation, and each stated bound is the one validate
// enforces.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <regex>
#include <sstream>

#include "resgd/core/columns.h"
#include "resgd/core/config.h"
#include "test_util.h"

namespace resgd {
namespace {

namespace fs = std::filesystem;
using testing::run_resgd;
using testing::slurp;
using testing::TempDir;
using testing::write_text;

/// What a shell command prints; false where it cannot be started or fails.
bool printed_by(const std::string& command, std::string& printed) {
  std::FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return false;
  char buffer[4096];
  for (size_t got; (got = fread(buffer, 1, sizeof buffer, pipe)) > 0;) printed.append(buffer, got);
  return pclose(pipe) == 0;
}

TEST(Reference, DocsReferenceIsWhatTheBinaryPrints) {
  const std::string command = "bash '" RESGD_SOURCE_DIR "/scripts/reference.sh' '" RESGD_BINARY "'";
  std::string printed;
  ASSERT_TRUE(printed_by(command, printed));
  EXPECT_EQ(slurp(fs::path(RESGD_SOURCE_DIR) / "docs" / "reference.md"), printed)
      << "docs/reference.md is stale: bash scripts/reference.sh build/release/app/resgd > docs/reference.md";
}

TEST(Reference, TheReadmesTablesAreTheOnesDocsResultsMdMeasured) {
  // The flagship's run table and the experiments table are written by
  // scripts/update_results.sh from docs/results.md; neither is typed by hand.
  const std::string command = "bash '" RESGD_SOURCE_DIR "/scripts/readme_tables.sh'";
  std::string printed;
  ASSERT_TRUE(printed_by(command, printed));
  EXPECT_EQ(slurp(fs::path(RESGD_SOURCE_DIR) / "README.md"), printed)
      << "README.md's tables are not docs/results.md's: scripts/update_results.sh";
  EXPECT_NE(printed.find("| [residual_vs_plain](docs/results.md#residual_vs_plain) |"), std::string::npos);
  EXPECT_NE(printed.find("on                  0     converged"), std::string::npos);
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
  EXPECT_EQ(one.out,
            "model.ffn_width\n  integer; default 256; allowed > 0\n  m, the FFN's hidden width (W_1 is d x m)\n");
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
    EXPECT_NE(info->files.find(file), std::string::npos)
        << name << " is in " << file << ", its entry says " << info->files;
  }
  EXPECT_EQ(find_column("cond_g0"), nullptr);  // blocks count from 1
  EXPECT_EQ(find_column("no_such_column"), nullptr);
  const auto unknown = run_resgd(dir, "metrics --explain no_such_column");
  EXPECT_EQ(unknown.exit_code, 2);
}

}  // namespace
}  // namespace resgd

namespace resgd {
namespace {

/// GitHub's anchor for a heading: lower case, punctuation dropped but - and _, spaces to -.
std::string anchor_of(const std::string& heading) {
  std::string out;
  for (const char c : heading) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (c == ' ')
      out += '-';
  }
  return out;
}

TEST(Docs, EveryRelativeLinkAndDocumentReferenceResolves) {
  const fs::path root = RESGD_SOURCE_DIR;
  std::vector<fs::path> pages = {root / "README.md", root / "CHANGELOG.md"};
  for (const auto& entry : fs::directory_iterator(root / "docs"))
    if (entry.path().extension() == ".md") pages.push_back(entry.path());
  const std::regex link(R"(\]\(([^)\s]+)\))");
  size_t checked = 0;
  for (const auto& page : pages) {
    ASSERT_TRUE(fs::exists(page)) << page;
    const std::string text = slurp(page);
    for (std::sregex_iterator it(text.begin(), text.end(), link), end; it != end; ++it) {
      const std::string target = (*it)[1];
      if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0 || target.rfind("mailto:", 0) == 0)
        continue;
      const size_t hash = target.find('#');
      const fs::path file = hash == 0 ? page : page.parent_path() / target.substr(0, hash);
      EXPECT_TRUE(fs::exists(file)) << page.filename() << " links to " << target << ", which does not exist";
      if (hash != std::string::npos && fs::exists(file) && file.extension() == ".md") {
        std::stringstream lines(slurp(file));
        bool found = false;
        for (std::string line; std::getline(lines, line);)
          if (line.rfind('#', 0) == 0)
            found = found || anchor_of(line.substr(line.find_first_not_of('#') + 1)) == target.substr(hash + 1);
        EXPECT_TRUE(found) << page.filename() << " links to " << target << ": no such heading";
      }
      ++checked;
    }
    // The source files a page names exist.
    const std::regex source(R"((lib/resgd|tests|scripts|bench|fuzz|app)/[A-Za-z_/]+\.(cpp|h|sh|py))");
    for (std::sregex_iterator it(text.begin(), text.end(), source), end; it != end; ++it)
      EXPECT_TRUE(fs::exists(root / it->str())) << page.filename() << " names " << it->str();
  }
  EXPECT_GT(checked, 30u);
  // Every docs/<page>.md named in the code, scripts and experiment files exists.
  const std::regex reference(R"(docs/[A-Za-z_]+\.md)");
  for (const char* folder : {"lib", "app", "tests", "scripts", "bench", "experiments", "fuzz"})
    for (const auto& entry : fs::recursive_directory_iterator(root / folder)) {
      if (!entry.is_regular_file() || entry.path().extension() == ".pt" || entry.path().extension() == ".gz") continue;
      const std::string text = slurp(entry.path());
      for (std::sregex_iterator it(text.begin(), text.end(), reference), end; it != end; ++it)
        EXPECT_TRUE(fs::exists(root / it->str())) << entry.path() << " names " << it->str();
    }
}

}  // namespace
}  // namespace resgd
