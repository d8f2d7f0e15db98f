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

TEST(Layout, TheSciencePathHoldsNoMachineTuning) {
  // The model, its hand-derived backward, the GD loop and the diagnostics multiply through
  // the compute seam (resgd/compute/) and know nothing of kernels, threads or allocators.
  const std::regex tuning(
      "dlsym|openblas|dnnl|onednn|mallopt|setpriority|set_num_threads|omp_|std::thread|"
      "compute/(process|onednn|loops|row_blocks)\\.h");
  for (const char* module : {"model", "analytic_grad", "training", "diagnostics", "spectra", "data", "schedule"}) {
    for (const char* extension : {".h", ".cpp"}) {
      const fs::path file = kLib / "resgd" / (std::string(module) + extension);
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
  const std::string text = read(kLib / "resgd" / "training.cpp");
  const size_t start = text.find("\nTrainResult train(");
  ASSERT_NE(start, std::string::npos);
  const size_t end = text.find("\n}\n", start);
  const auto lines = std::count(text.begin() + static_cast<long>(start), text.begin() + static_cast<long>(end), '\n');
  EXPECT_LE(lines, 55) << "train() has grown to " << lines << " lines";
}

}  // namespace
}  // namespace resgd
