// Singular values for the diagnostics: docs/design.md, "Diagnostics". Batched spectra through
// LAPACK's SVD (float32 through float64 Gram matrices on the CPU), and the smallest
// singular value of one large matrix (the stacked features behind sigma_min_phi) by a QR
// and inverse subspace iteration, several times cheaper than an SVD for square features
// and never less exact than the tolerance stated below.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <limits>

namespace resgd {

/// Relative threshold under which a singular value counts as zero: 1e-13 for float64,
/// 1e-6 otherwise (float32 and narrower).
double zero_tolerance(torch::ScalarType dtype);

/// Singular values of every matrix of a (B, r, c) batch, descending: (B, min(r, c)).
/// Values below zero_tolerance times their matrix's largest are set to exactly 0; a matrix
/// with a non-finite entry gives a row of NaN. Float32 batches on the CPU are computed from
/// their float64 Gram matrices: relative error about 1e-16 kappa^2 for a value sigma
/// (kappa = sigma_max / sigma), below float32's own SVD (6e-8 kappa) wherever the value is
/// not counted as zero; other batches by LAPACK's SVD.
torch::Tensor singular_values(const torch::Tensor& batch);

/// Extreme singular values over a batch of matrices, as 0-d tensors on the batch's device.
struct SpectrumStats {
  torch::Tensor sigma_min;  // smallest over the batch of each matrix's min(r, c)-th value
  torch::Tensor sigma_max;  // largest over the batch of each matrix's largest value
  torch::Tensor cond;       // sigma_max / sigma_min; inf when sigma_min is 0
};

/// SpectrumStats of a (B, r, c) batch; pass (1, N*n, d) for a stacked matrix.
SpectrumStats spectrum_stats(const torch::Tensor& batch);

/// The smallest eigenvalue of a symmetric positive semi-definite matrix K (n, n), e.g. the
/// NTK Gram J J^T, as a 0-d float64 tensor: 0 below zero_tolerance(K's dtype) times the
/// largest (negative ones are rounding), NaN if K has a non-finite entry. Computed in
/// float64 from K scaled to largest entry 1, so entries up to the dtype's largest are fine.
torch::Tensor smallest_psd_eigenvalue(const torch::Tensor& K);

/// The smallest singular value of one matrix, and how it was found.
struct SmallestSingularValue {
  torch::Tensor value;    // 0-d, the matrix's dtype and device; as spectrum_stats' sigma_min
  int iterations = 0;     // inverse subspace iterations run; 0 where none were tried
  bool iterated = false;  // true: the converged iteration's value; false: an SVD's
};

/// The min(r, c)-th singular value of M (r, c), with spectrum_stats' conventions: 0 below
/// zero_tolerance times the largest, NaN if M has a non-finite entry.
///
/// For float64 on the CPU with min(r, c) >= 32: R from a QR of M (or M^T), then block
/// inverse iteration with 8 vectors on (R^T R)^{-1}, two triangular solves per iteration.
/// It stops when the Ritz residual is at most tol * theta^2, tol = 64 eps kappa, eps =
/// 2.2e-16 and kappa = ||R||_F / sigma >= cond_2(M); the value is then within about tol / 2
/// relative of the true one (LAPACK's SVD is as exact: eps kappa). Where that would take
/// more than 20 iterations (a cluster of small singular values), or the value is within a
/// small factor of the zero threshold, it takes the SVD of R instead. Elsewhere (float32,
/// small matrices, other devices, entries beyond 2^+-500, where the QR could overflow) it
/// is spectrum_stats' sigma_min.
SmallestSingularValue smallest_singular_value(const torch::Tensor& M);

/// The largest eigenvalue of a symmetric operator, and how it was found.
struct LargestEigenvalue {
  double value = std::numeric_limits<double>::quiet_NaN();       // NaN unless converged
  double ritz_value = std::numeric_limits<double>::quiet_NaN();  // the last estimate, converged or not
  double residual = std::numeric_limits<double>::quiet_NaN();    // ||A y - ritz_value y||, y its unit Ritz vector
  int iterations = 0;                                            // products with the operator
  bool converged = false;
};

/// The largest (algebraic, not absolute) eigenvalue of the symmetric operator `apply`
/// (a vector of start's length, dtype and device to one of the same) by Lanczos from
/// `start`, every new vector orthogonalized against all earlier ones twice (no ghost
/// copies of converged values). It stops when the top Ritz pair's residual is at most
/// `tolerance` times the largest |Ritz value| (the operator's norm as seen so far), when
/// the Krylov space is invariant, or after `max_iterations` products or the dimension,
/// whichever is fewer; unconverged, `value` stays NaN. A Ritz value never exceeds the
/// largest eigenvalue (interlacing) and lies within its residual of an eigenvalue; for an
/// eigenvalue separated by a gap from the rest the error is about residual^2 / gap. A
/// non-finite product stops it unconverged.
LargestEigenvalue largest_eigenvalue(const std::function<torch::Tensor(const torch::Tensor&)>& apply,
                                     const torch::Tensor& start, int max_iterations, double tolerance);

}  // namespace resgd
