// Singular values for the diagnostics: docs/design.md, "Diagnostics".
#include "resgd/science/spectra.h"

#include "resgd/compute/compute.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

namespace resgd {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

torch::Tensor scalar_like(double value, const torch::Tensor& like) { return torch::full({}, value, like.options()); }

// smallest_singular_value's iteration (see spectra.h).
constexpr int64_t kMinIteratedSize = 32;  // below this an SVD costs less than the setup
constexpr int64_t kBlockVectors = 8;
constexpr int kMaxIterations = 20;

/// c x p start vectors, orthonormal: fixed, so a diagnosis never draws from (and never
/// moves) the run's random streams, and generic, so none is orthogonal to the smallest
/// singular vector but by accident.
torch::Tensor start_vectors(int64_t c, int64_t p, const torch::TensorOptions& options) {
  auto i = torch::arange(1, c + 1, options).unsqueeze(1);  // (c, 1)
  auto j = torch::arange(1, p + 1, options).unsqueeze(0);  // (1, p)
  return std::get<0>(torch::linalg_qr(torch::sin(i * (0.7548776662 * j) + j * j)));
}

/// The smallest singular value of upper-triangular Rn (c x c, largest entry about 1) by
/// inverse subspace iteration; nullopt where spectra.h says to take the SVD instead.
std::optional<double> iterate_smallest(const torch::Tensor& Rn, int& iterations) {
  const int64_t c = Rn.size(0), p = std::min(c, kBlockVectors);
  constexpr double eps = std::numeric_limits<double>::epsilon();  // float64 only (spectra.h)
  const double frobenius = Rn.norm().item<double>();
  // sigma_min(R) <= min |R_ii| (an eigenvalue of a triangular matrix): a pivot under the
  // band where the SVD decides anyway is a rank-deficient matrix (a dead unit, the
  // collapsed tokens of a deep plain model), whose exact zero pivots the solves below
  // would divide by.
  const double smallest_pivot = Rn.diagonal().abs().min().item<double>();
  if (smallest_pivot < 2 * zero_tolerance(Rn.scalar_type()) * frobenius) return std::nullopt;
  const auto Rn_t = Rn.t();
  auto X = start_vectors(c, p, Rn.options());
  double previous_residual = 0;
  for (int k = 1; k <= kMaxIterations; ++k) {
    iterations = k;
    auto Z = torch::linalg_solve_triangular(Rn, X, /*upper=*/true);     // Rn^{-1} X
    auto Y = torch::linalg_solve_triangular(Rn_t, Z, /*upper=*/false);  // (Rn^T Rn)^{-1} X
    // Rayleigh-Ritz on span(X): X^T (Rn^T Rn)^{-1} X = Z^T Z; eigenvalues ascending.
    const auto gram = Z.t().mm(Z);
    // Pivots above the band can still hide a sigma_min small enough for R^{-1} to
    // overflow; LAPACK's eigh throws on what that leaves.
    if (!torch::isfinite(gram).all().item<bool>()) return std::nullopt;
    auto [ritz, vectors] = torch::linalg_eigh(gram);
    const double theta_sq = ritz[p - 1].item<double>();                    // -> 1 / sigma_min(Rn)^2 from below
    if (!std::isfinite(theta_sq) || !(theta_sq > 0)) return std::nullopt;  // singular R
    auto w = vectors.select(1, p - 1);
    const double residual = (Y.mv(w) - theta_sq * X.mv(w)).norm().item<double>();
    const double sigma = 1.0 / std::sqrt(theta_sq);
    const double tol = 64 * eps * std::max(1.0, frobenius / sigma);
    if (residual <= tol * theta_sq) {
      // Deciding "counts as zero" needs sigma_max; ||Rn||_F bounds it, so the SVD is only
      // needed near the threshold.
      if (sigma < 2 * zero_tolerance(Rn.scalar_type()) * frobenius) return std::nullopt;
      return sigma;
    }
    // The residual shrinks by (sigma_min / sigma_{p+1})^2 per iteration; give up early
    // where that rate cannot reach tol within the budget.
    if (k >= 3) {
      const double rate = residual / previous_residual;
      if (!(rate < 1) || k + std::log(tol * theta_sq / residual) / std::log(rate) > kMaxIterations) return std::nullopt;
    }
    previous_residual = residual;
    X = std::get<0>(torch::linalg_qr(Y));
  }
  return std::nullopt;
}

/// A batch with the same singular values whose matrices are square: R of a QR of the tall
/// orientation where matrices are at least twice as long as wide, else the batch itself.
/// LAPACK's SVD makes that reduction too, matrix by matrix; one batched QR first costs less
/// on the CPU: per-sample G at the medium size (256 of 16 x 64, float32) 4.8 instead of
/// 6.8 ms, the stacked (4096 x 64) 1.4 instead of 2.1 ms. Square ones gain nothing.
torch::Tensor thin_to_square(const torch::Tensor& batch) {
  const int64_t r = batch.size(1), c = batch.size(2);
  if (!batch.is_cpu() || std::max(r, c) < 2 * std::min(r, c)) return batch;
  return std::get<1>(torch::linalg_qr(r >= c ? batch : batch.transpose(1, 2), "r"));  // (B, k, k)
}

/// Float32 batches on the CPU: singular values as the square roots of the eigenvalues of
/// each matrix's float64 Gram matrix (of its shorter side). The products of float32
/// entries are exact in float64, so a value carries about eps64 kappa^2 relative error
/// (kappa = sigma_max / sigma), where float32's own SVD carries eps32 kappa: less for
/// every kappa below eps32 / eps64 = 5e8, far past the float32 zero threshold (1e6). At
/// medium's sizes the per-sample spectra take 20-30% less time than by float32 QR and SVD.
///
/// The long side is converted in pieces, each zeroed where not finite and divided by its
/// matrix's `scale` (B, 1, 1) as float64, exactly what converting batch / scale would
/// give: no copy of the whole batch is made (the large size's features would take 256 MiB
/// at once in float64).
torch::Tensor singular_values_by_float64_gram(const torch::Tensor& batch, const torch::Tensor& scale) {
  constexpr int64_t kPieceEntries = int64_t{1} << 22;                             // 32 MiB of float64 per piece
  const auto M = batch.size(1) <= batch.size(2) ? batch : batch.transpose(1, 2);  // (B, k, l), k <= l
  const int64_t B = M.size(0), k = M.size(1), l = M.size(2);
  const auto scale_64 = scale.to(torch::kFloat64);
  auto gram = torch::zeros({B, k, k}, M.options().dtype(torch::kFloat64));
  const int64_t piece = std::max<int64_t>(1, kPieceEntries / (B * k));
  for (int64_t start = 0; start < l; start += piece) {
    const auto part =
        M.narrow(2, start, std::min(piece, l - start)).to(torch::kFloat64).nan_to_num_(0.0, 0.0, 0.0).div_(scale_64);
    compute::add_lower_gram_(gram, part);
  }
  // Eigenvalues ascending; a negative one is rounding of an exactly singular matrix.
  return torch::linalg_eigvalsh(gram, "L").clamp_min_(0).sqrt_().flip(1).to(batch.scalar_type());
}

}  // namespace

double zero_tolerance(torch::ScalarType dtype) { return dtype == torch::kFloat64 ? 1e-13 : 1e-6; }

torch::Tensor singular_values(const torch::Tensor& batch) {
  TORCH_CHECK(batch.dim() == 3 && batch.size(0) > 0 && batch.size(1) > 0 && batch.size(2) > 0,
              "singular_values needs a non-empty (B, r, c) batch, got ", batch.sizes());
  TORCH_CHECK(batch.is_floating_point(), "singular_values needs floating point, got ", batch.dtype());
  // sigma(M) = s sigma(M / s): scaling each matrix to max |entry| in [1, 2) keeps the SVD clear of
  // overflow and underflow in a run that is blowing up or dying out. The max also finds
  // the matrices with a NaN or an inf (it propagates both) without an isfinite pass over
  // every entry (0.1-0.2 ms for a 256 x 256 matrix); they are marked NaN afterwards, and
  // since LAPACK throws on them their entries are zeroed first.
  // The scale is a power of two, so dividing by it is exact: a float32 entry rounded here
  // would carry float32's error into every value, whatever route follows.
  // max |entry| from the largest and the least entry: two passes that copy nothing, where
  // batch.abs() would be a copy of the whole batch.
  auto scale =
      torch::maximum(batch.amax({1, 2}, /*keepdim=*/true), batch.amin({1, 2}, /*keepdim=*/true).neg());  // (B, 1, 1)
  auto finite = torch::isfinite(scale).flatten();                                                        // (B,)
  scale = torch::where((scale > 0).logical_and_(finite.view_as(scale)), torch::exp2(torch::floor(torch::log2(scale))),
                       scalar_like(1.0, scale));
  const bool by_gram = batch.is_cpu() && batch.scalar_type() == torch::kFloat32;
  auto s = (by_gram ? singular_values_by_float64_gram(batch, scale)
                    : torch::linalg_svdvals(thin_to_square(batch.nan_to_num(0.0, 0.0, 0.0).div_(scale)))) *
           scale.flatten(1);         // (B, k), descending
  auto largest = s.narrow(1, 0, 1);  // (B, 1)
  s = torch::where(s >= zero_tolerance(s.scalar_type()) * largest, s, scalar_like(0.0, s));
  return torch::where(finite.unsqueeze(1), s, scalar_like(kNaN, s));
}

SpectrumStats spectrum_stats(const torch::Tensor& batch) {
  auto s = singular_values(batch);  // (B, k); a NaN row makes every statistic NaN
  SpectrumStats out;
  out.sigma_min = s.select(1, -1).min();
  out.sigma_max = s.select(1, 0).max();
  // Exactly rank-deficient means inf, also for the zero matrix (0 / 0).
  out.cond = torch::where(out.sigma_min == 0, scalar_like(kInf, s), out.sigma_max / out.sigma_min);
  return out;
}

torch::Tensor smallest_psd_eigenvalue(const torch::Tensor& K) {
  TORCH_CHECK(K.dim() == 2 && K.size(0) == K.size(1) && K.size(0) > 0,
              "smallest_psd_eigenvalue needs a non-empty square matrix, got ", K.sizes());
  TORCH_CHECK(K.is_floating_point(), "smallest_psd_eigenvalue needs floating point, got ", K.dtype());
  const auto entry_finite = torch::isfinite(K);
  const auto finite = entry_finite.all();
  // In float64, scaled to largest entry 1 (NaN and inf zeroed: LAPACK throws on them): a
  // float32 kernel of a run blowing up reaches 3e38, where K + K^T, the eigenvalues and
  // LAPACK's float32 eigh would overflow.
  auto clean = torch::where(entry_finite, K, scalar_like(0.0, K)).to(torch::kFloat64);
  auto scale = clean.abs().max();
  scale = torch::where(scale > 0, scale, scalar_like(1.0, scale));
  clean = clean / scale;
  auto lambda = torch::linalg_eigvalsh(0.5 * (clean + clean.t()));  // ascending
  auto lambda_min = lambda.select(0, 0), lambda_max = lambda.select(0, -1);
  // A negative or relatively tiny eigenvalue is rounding (about -3e-15 of the largest for
  // an exactly singular kernel), so it counts as zero, like a singular value.
  const double tol = zero_tolerance(K.scalar_type());
  lambda_min = torch::where(lambda_min < tol * lambda_max, scalar_like(0.0, lambda_min), lambda_min * scale);
  return torch::where(finite, lambda_min, scalar_like(kNaN, lambda_min));
}

SmallestSingularValue smallest_singular_value(const torch::Tensor& M) {
  TORCH_CHECK(M.dim() == 2 && M.size(0) > 0 && M.size(1) > 0,
              "smallest_singular_value needs a non-empty (r, c) matrix, got ", M.sizes());
  TORCH_CHECK(M.is_floating_point(), "smallest_singular_value needs floating point, got ", M.dtype());
  SmallestSingularValue out;
  auto by_svd = [&] {
    out.value = spectrum_stats(M.unsqueeze(0)).sigma_min;
    return out;
  };
  // Float32 goes through the float64 Gram matrix (singular_values), cheaper than this QR.
  if (!M.is_cpu() || M.scalar_type() != torch::kFloat64 || std::min(M.size(0), M.size(1)) < kMinIteratedSize)
    return by_svd();
  const auto A = M.size(0) >= M.size(1) ? M : M.t();  // sigma_min(M) = sigma_min(M^T)
  // The scale from one pass without a copy; it also finds NaN and inf (aminmax propagates
  // them), for which LAPACK would throw.
  const auto [lowest, highest] = torch::aminmax(A);
  const double low = lowest.item<double>(), high = highest.item<double>();
  if (!std::isfinite(low) || !std::isfinite(high)) {
    out.value = scalar_like(kNaN, M);
    return out;
  }
  const double scale = std::max(-low, high);
  // Far from 1 (a run blowing up or dying out) the QR's column norms, up to sqrt(r) times
  // the scale, could overflow or underflow; the SVD path scales each matrix first.
  int exponent = 0;
  std::frexp(scale, &exponent);
  if (scale == 0 || std::abs(exponent) > 500) return by_svd();
  const auto R = std::get<1>(torch::linalg_qr(A, "r"));  // (c, c)
  const auto Rn = R / scale;                             // largest entry about 1, so the solves stay in range
  if (auto sigma = iterate_smallest(Rn, out.iterations)) {
    out.value = scalar_like(*sigma * scale, M);
    out.iterated = true;
  } else {
    out.value = spectrum_stats(Rn.unsqueeze(0)).sigma_min * scale;
  }
  return out;
}

LargestEigenvalue largest_eigenvalue(const std::function<torch::Tensor(const torch::Tensor&)>& apply,
                                     const torch::Tensor& start, int max_iterations, double tolerance) {
  TORCH_CHECK(start.dim() == 1 && start.numel() > 0, "largest_eigenvalue needs a non-empty start vector, got ",
              start.sizes());
  TORCH_CHECK(start.is_floating_point(), "largest_eigenvalue needs floating point, got ", start.dtype());
  TORCH_CHECK(max_iterations > 0, "largest_eigenvalue needs max_iterations > 0, got ", max_iterations);
  const int64_t n = start.numel();
  const int64_t steps = std::min<int64_t>(max_iterations, n);
  LargestEigenvalue out;
  const double start_norm = start.norm().item<double>();
  if (!std::isfinite(start_norm) || start_norm == 0) return out;

  torch::NoGradGuard no_grad;
  // The Lanczos vectors, one per row. Room for 16 at first, doubled as needed: it usually
  // converges within that, and 101 rows of a large model's parameters would be gigabytes.
  auto Q = torch::zeros({std::min<int64_t>(steps + 1, 16), n}, start.options());
  Q[0].copy_(start / start_norm);
  std::vector<double> alpha, beta;  // T's diagonal and off-diagonal
  for (int64_t j = 0; j < steps; ++j) {
    const auto q = Q[j];
    auto w = apply(q);
    out.iterations = static_cast<int>(j + 1);
    alpha.push_back(w.dot(q).item<double>());
    // Projecting out every earlier vector removes alpha_j q_j and beta_{j-1} q_{j-1}
    // (the three-term recurrence) and the rounding that would let converged Ritz values
    // reappear; a second pass cleans what the first left ("twice is enough").
    const auto basis = Q.narrow(0, 0, j + 1);
    for (int pass = 0; pass < 2; ++pass) w = w - basis.t().mv(basis.mv(w));
    const double b = w.norm().item<double>();
    if (!std::isfinite(alpha.back()) || !std::isfinite(b)) return out;

    // Ritz values of T_{j+1}, ascending; the top pair's residual is b |last entry of its vector|.
    auto T = torch::diag(torch::tensor(alpha, torch::kFloat64));
    if (j > 0) {
      auto off = torch::tensor(beta, torch::kFloat64);
      T = T + torch::diag(off, 1) + torch::diag(off, -1);
    }
    auto [theta, vectors] = torch::linalg_eigh(T);
    out.ritz_value = theta[j].item<double>();
    out.residual = b * std::abs(vectors[j][j].item<double>());
    const double norm_seen = std::max(std::abs(theta[0].item<double>()), std::abs(out.ritz_value));
    if (out.residual <= tolerance * norm_seen || j + 1 == n) {
      out.converged = true;
      out.value = out.ritz_value;
      return out;
    }
    beta.push_back(b);
    if (j + 1 == Q.size(0))
      Q = torch::cat({Q, torch::zeros({std::min(Q.size(0), steps + 1 - Q.size(0)), n}, Q.options())});
    Q[j + 1].copy_(w / b);
  }
  return out;
}

}  // namespace resgd
