// libFuzzer target for the .pt reader (io.cpp load_tensors_from_bytes, which load_tensors
// calls on a file's bytes): torch::pickle_load, then the dictionary-of-tensors checks.
// Build and run: fuzz/build.sh, fuzz/run.sh.
//
// An IoError is the expected answer to a bad file; any other exception, a crash or a
// sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "resgd/science/tensor_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    for (const auto& [name, tensor] : resgd::load_tensors_from_bytes(bytes, "fuzz.pt")) {
      (void)name;
      (void)tensor.numel();
    }
  } catch (const resgd::IoError&) {
    // the expected answer to a bad file
  }
  return 0;
}
