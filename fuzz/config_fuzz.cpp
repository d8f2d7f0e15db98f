// libFuzzer target for the experiment-file loader (config_*.cpp): YAML text, then --set
// assignments, then sweep expansion. Build and run: fuzz/build.sh, fuzz/run.sh.
//
// Input: the YAML text, optionally followed by NUL-separated `key=value` assignments
// (as `--set` would pass them). A ConfigError is the expected answer to bad input; any
// other exception, a crash or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "resgd/core/config.h"

namespace {
// Bounds the sweep expansion per input so one input cannot take the fuzzer's memory.
constexpr size_t kMaxPointsPerInput = 64;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  try {
    resgd::ExperimentConfig config = resgd::load_config_text(input.substr(0, nul), "fuzz.yaml");
    for (size_t start = nul; start != std::string::npos && start < input.size();) {
      const size_t end = input.find('\0', start + 1);
      resgd::apply_override(config, input.substr(start + 1, end == std::string::npos ? end : end - start - 1));
      start = end;
    }
    (void)resgd::dump_yaml(config);
    (void)resgd::config_hash(config);
    const auto points = resgd::expand_sweep(config);
    for (size_t i = 0; i < points.size() && i < kMaxPointsPerInput; ++i) {
      (void)points[i].dir_name();
      (void)resgd::config_for_point(config, points[i]);
    }
  } catch (const resgd::ConfigError&) {
    // the expected answer to a bad file
  }
  return 0;
}
