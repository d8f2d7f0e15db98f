// libFuzzer target for the pickle inside a .pt file: the input is data.pkl itself, zipped
// as torch.save zips it (so that no mutation is spent on the zip), then read as
// load_tensors_from_bytes reads a file: the nesting, size and memo checks of pt_format.h,
// LibTorch's unpickler, the dictionary-of-tensors checks. Build and run: fuzz/build.sh,
// fuzz/run.sh.
//
// An IoError is the expected answer to a bad pickle; any other exception, a crash (a stack
// overflow on a deep nesting among them) or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "forged_tensor_files.h"
#include "resgd/science/tensor_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string pickle(reinterpret_cast<const char*>(data), size);
  try {
    for (const auto& [name, tensor] :
         resgd::load_tensors_from_bytes(resgd::testing::file_of_pickle(pickle), "fuzz.pt")) {
      (void)name;
      (void)tensor.numel();
    }
  } catch (const resgd::IoError&) {
    // the expected answer to a bad pickle
  }
  return 0;
}
