// Which ResGD this is: `resgd --version`, and summary.json's resgd_version and resgd_commit.
#pragma once

namespace resgd {

/// The release, e.g. "0.2.0" (CMakeLists.txt's project version).
const char* resgd_version();
/// The git commit it was built from (`git describe --always --dirty`), "unknown" outside git.
const char* resgd_commit();
/// The LibTorch it was built against, e.g. "1.13.0" (torch/version.h).
const char* libtorch_version();

}  // namespace resgd
