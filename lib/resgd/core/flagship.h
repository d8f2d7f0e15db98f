// The flagship experiment, embedded so that `resgd` with no argument runs it anywhere.
#pragma once

namespace resgd {

/// The text of experiments/residual_vs_plain.yaml, as built into this binary.
const char* flagship_experiment_yaml();
inline constexpr const char* kFlagshipSource = "<embedded experiments/residual_vs_plain.yaml>";

}  // namespace resgd
