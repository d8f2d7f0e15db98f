// The code's shape, read from the source tree: modules that include one another in one
// direction only, a science path free of machine tuning, a GD loop that fits on a screen.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace resgd {
namespace {

namespace fs = std::filesystem;
const fs::path kLib = fs::path(RESGD_SOURCE_DIR) / "lib";

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Each module (a header and its source, named as included: "resgd/model") with the
/// modules it includes.
std::map<std::string, std::set<std::string>> module_includes() {
  std::map<std::string, std::set<std::string>> includes;
  const std::regex include("#include \"(resgd/[^\"]+)\\.h\"");
  for (const auto& entry : fs::recursive_directory_iterator(kLib / "resgd")) {
    const auto extension = entry.path().extension();
    if (extension != ".h" && extension != ".cpp") continue;
    const std::string module = fs::relative(entry.path(), kLib).replace_extension().string();
    const std::string text = read(entry.path());
    auto& set = includes[module];
    for (std::sregex_iterator it(text.begin(), text.end(), include), end; it != end; ++it)
      if ((*it)[1] != module) set.insert((*it)[1]);
  }
  return includes;
}

TEST(Layout, NoModuleIncludesItselfThroughAnother) {
  const auto includes = module_includes();
  ASSERT_GT(includes.size(), 20u) << "the source tree was not found at " << kLib;
  std::map<std::string, int> state;  // 1: on the path being walked, 2: done
  std::vector<std::string> path;
  std::function<void(const std::string&)> walk = [&](const std::string& module) {
    state[module] = 1;
    path.push_back(module);
    if (includes.count(module))
      for (const auto& next : includes.at(module)) {
        if (state[next] == 1) {
          std::string cycle;
          for (auto it = std::find(path.begin(), path.end(), next); it != path.end(); ++it) cycle += *it + " -> ";
          ADD_FAILURE() << "an include cycle: " << cycle << next;
        } else if (state[next] == 0) {
          walk(next);
        }
      }
    path.pop_back();
    state[module] = 2;
  };
  for (const auto& [module, unused] : includes)
    if (state[module] == 0) walk(module);
}

TEST(Layout, AWingIncludesOnlyItselfAndTheWingsBelowIt) {
  // lib/resgd/<wing>/ is a library (lib/CMakeLists.txt) linking only the wings below it;
  // an include that points up (or across, report <-> cluster) would tie them together.
  const std::map<std::string, std::set<std::string>> below = {{"core", {}},
                                                              {"compute", {"core"}},
                                                              {"science", {"core", "compute"}},
                                                              {"run", {"core", "compute", "science"}},
                                                              {"report", {"core", "compute", "science", "run"}},
                                                              {"cluster", {"core", "compute", "science", "run"}}};
  auto wing_of = [](const std::string& module) { return module.substr(6, module.find('/', 6) - 6); };  // resgd/W/x
  size_t modules = 0;
  for (const auto& [module, included] : module_includes()) {
    if (module == "resgd/pch") continue;  // the precompiled third-party headers
    const std::string wing = wing_of(module);
    ASSERT_TRUE(below.count(wing)) << module << " lies outside the wings " << kLib;
    ++modules;
    for (const auto& other : included) {
      const std::string other_wing = wing_of(other);
      EXPECT_TRUE(other_wing == wing || below.at(wing).count(other_wing))
          << module << " (" << wing << ") includes " << other << " (" << other_wing << "), a wing above or beside it";
    }
  }
  EXPECT_GT(modules, 30u);
}

TEST(Layout, TheCoreWingAndTheFrontBinaryHoldNoLibTorch) {
  // `resgd --version`, `--help` and `validate` answer under a small ulimit -v because the
  // front binary links core alone: no LibTorch header may reach it.
  const std::regex torch("#include <(torch|ATen|c10|caffe2)/");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kLib / "resgd" / "core"))
    if (entry.path().extension() != ".in") files.push_back(entry.path());  // version.cpp.in: torch/version.h's macros
  const fs::path app = fs::path(RESGD_SOURCE_DIR) / "app";
  for (const char* file : {"front.cpp", "cli.h", "cli.cpp", "commands/explain.cpp", "commands/validate.h"})
    files.push_back(app / file);
  ASSERT_GT(files.size(), 15u);
  for (const auto& file : files) {
    const std::string text = read(file);
    ASSERT_FALSE(text.empty()) << file;
    EXPECT_FALSE(std::regex_search(text, torch)) << file << " includes a LibTorch header";
    const std::regex wing("#include \"resgd/(compute|science|run|report|cluster)/");
    EXPECT_FALSE(std::regex_search(text, wing)) << file << " includes a wing above core";
  }
}

TEST(Layout, TheSciencePathHoldsNoMachineTuning) {
  // The model, its hand-derived backward, the GD loop and the diagnostics multiply through
  // the compute seam (resgd/compute/) and know nothing of kernels, threads or allocators.
  const std::regex tuning(
      "dlsym|openblas|dnnl|onednn|mallopt|setpriority|set_num_threads|omp_|std::thread|"
      "compute/(process|onednn|loops|row_blocks)\\.h");
  for (const char* module : {"model", "analytic_grad", "training", "diagnostics", "spectra", "data", "schedule"}) {
    for (const char* extension : {".h", ".cpp"}) {
      const fs::path file = kLib / "resgd" / "science" / (std::string(module) + extension);
      const std::string text = read(file);
      ASSERT_FALSE(text.empty()) << file;
      std::smatch found;
      if (std::string(module) == "schedule") continue;  // the worker thread is the schedule itself
      EXPECT_FALSE(std::regex_search(text, found, tuning)) << file << " holds '" << found.str() << "'";
    }
  }
}

TEST(Layout, TheGdLoopFitsOnAScreen) {
  // train() is the loop: gradients, the logged row and its stop rule, the update.
  const std::string text = read(kLib / "resgd" / "science" / "training.cpp");
  const size_t start = text.find("\nTrainResult train(");
  ASSERT_NE(start, std::string::npos);
  const size_t end = text.find("\n}\n", start);
  const auto lines = std::count(text.begin() + static_cast<long>(start), text.begin() + static_cast<long>(end), '\n');
  EXPECT_LE(lines, 55) << "train() has grown to " << lines << " lines";
}

}  // namespace
}  // namespace resgd
