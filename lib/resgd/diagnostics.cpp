// Diagnostics: DESIGN.md, "Diagnostics".
#include "resgd/diagnostics.h"

#include <cmath>
#include <limits>

namespace resgd {

double linear_rate(const std::vector<int64_t>& iters, const std::vector<double>& losses,
                   std::optional<int64_t> iters_to_tol) {
  if (iters.empty()) return std::numeric_limits<double>::quiet_NaN();
  const int64_t end = iters_to_tol.value_or(iters.back());
  const double start = 0.1 * static_cast<double>(end);
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int64_t count = 0;
  for (size_t i = 0; i < iters.size(); ++i) {
    const double x = static_cast<double>(iters[i]);
    if (x < start || iters[i] > end || !(losses[i] > 0) || !std::isfinite(losses[i])) continue;
    const double y = std::log(losses[i]);
    sx += x, sy += y, sxx += x * x, sxy += x * y, ++count;
  }
  const double n = static_cast<double>(count);
  const double denom = n * sxx - sx * sx;
  if (count < 2 || denom <= 0) return std::numeric_limits<double>::quiet_NaN();
  return std::exp((n * sxy - sx * sy) / denom);
}

std::vector<std::string> diagnostic_columns(int64_t, bool) { return {}; }

std::vector<double> compute_diagnostics(const DiagnosticsInput&) { return {}; }

}  // namespace resgd
