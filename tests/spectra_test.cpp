// Tests of the spectra behind the diagnostics (spectra.h): known spectra built as
// U diag(s) V^T, and the iterated smallest singular value against LAPACK's SVD.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sys/resource.h>

#include <cmath>
#include <limits>
#include <thread>

#include "resgd/compute/process.h"
#include "resgd/science/model.h"
#include "resgd/science/spectra.h"

namespace resgd {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

torch::Tensor randn(torch::IntArrayRef sizes, int64_t seed) {
  auto generator = make_generator(seed, "spectra_test");
  return torch::randn(sizes, generator, kF64);
}

/// An r x c matrix (r >= c) with singular values s (c,): U diag(s) V^T, U and V from QR.
/// For s (B, c), a batch (B, r, c) of such matrices, one per row of s.
torch::Tensor with_spectrum(int64_t r, const torch::Tensor& s, int64_t seed) {
  const int64_t c = s.size(-1);
  auto batch = s.sizes().vec();
  batch.pop_back();  // () or (B,)
  auto shape = [&](int64_t rows) {
    auto sizes = batch;
    sizes.insert(sizes.end(), {rows, c});
    return sizes;
  };
  auto U = std::get<0>(torch::linalg_qr(randn(shape(r), seed)));
  auto V = std::get<0>(torch::linalg_qr(randn(shape(c), seed + 1)));
  return U.mul(s.unsqueeze(-2)).matmul(V.transpose(-2, -1));
}

/// Stacked features as the model makes them: relu(G W), G (r, d), W (d, m).
torch::Tensor features(int64_t r, int64_t d, int64_t m, int64_t seed) {
  return torch::relu(randn({r, d}, seed).mm(randn({d, m}, seed + 1)) / std::sqrt(static_cast<double>(d)));
}

double svd_sigma_min(const torch::Tensor& M) { return spectrum_stats(M.unsqueeze(0)).sigma_min.item<double>(); }

double relative_error(double value, double truth) { return std::abs(value - truth) / std::abs(truth); }

TEST(Spectra, SpectrumReportsKnownSingularValues) {
  const auto s = torch::tensor({5.0, 2.0, 1.0, 0.5, 3.0, 3.0, 0.1, 0.01, 7.0, 1.0, 1.0, 0.2}, kF64).view({3, 4});
  const auto M = with_spectrum(6, s, 2);  // (3, 6, 4)

  EXPECT_TRUE(torch::allclose(singular_values(M), s, /*rtol=*/1e-12, /*atol=*/0));
  const auto stats = spectrum_stats(M);
  EXPECT_NEAR(stats.sigma_min.item<double>(), 0.01, 1e-13);
  EXPECT_NEAR(stats.sigma_max.item<double>(), 7.0, 1e-12);
  EXPECT_NEAR(stats.cond.item<double>(), 700.0, 1e-9);
  // A wide matrix reports its min(r, c)-th value: the same spectrum, transposed.
  EXPECT_NEAR(spectrum_stats(M.transpose(1, 2)).sigma_min.item<double>(), 0.01, 1e-13);
}

TEST(Spectra, ThinMatricesReportKnownSingularValues) {
  // Tall and wide batches take a QR before the SVD: the same spectrum either way round.
  const auto s = torch::tensor({9.0, 4.0, 1.0, 1e-3, 2.0, 2.0, 2.0, 2.0}, kF64).view({2, 4});
  const auto M = with_spectrum(40, s, 4);  // (2, 40, 4)
  EXPECT_TRUE(torch::allclose(singular_values(M), s, /*rtol=*/1e-12, /*atol=*/0));
  EXPECT_TRUE(torch::allclose(singular_values(M.transpose(1, 2)), s, /*rtol=*/1e-12, /*atol=*/0));
  EXPECT_TRUE(torch::allclose(singular_values(M.transpose(1, 2).contiguous()), s, 1e-12, 0));
  // Exactly rank-deficient stays exactly 0 through the QR.
  const auto rank_one = randn({3, 1, 5}, 6).expand({3, 12, 5});
  EXPECT_TRUE((singular_values(rank_one).narrow(1, 1, 4) == 0).all().item<bool>());
}

TEST(Spectra, NonFiniteMatricesReadNanAndTheirNeighboursDoNot) {
  // One batch: finite, with an inf, with a NaN, and finite at 1e300 (no overflow).
  auto M = randn({4, 5, 3}, 6);
  const auto finite_values = torch::linalg_svdvals(M);
  M[1][2][0] = kInf;
  M[2][0][1] = kNaN;
  M[3].mul_(1e300);
  const auto s = singular_values(M);
  EXPECT_TRUE(torch::allclose(s[0], finite_values[0], 1e-13, 0));
  EXPECT_TRUE(torch::isnan(s[1]).all().item<bool>());
  EXPECT_TRUE(torch::isnan(s[2]).all().item<bool>());
  EXPECT_TRUE(torch::allclose(s[3] / 1e300, finite_values[3], 1e-13, 0));
  EXPECT_TRUE(std::isnan(spectrum_stats(M).sigma_min.item<double>()));

  // Float32 takes the Gram route, which zeroes and scales piece by piece: -inf this time,
  // and 1e30 (its squares, 1e60, are past float32's range but not float64's).
  auto M32 = randn({4, 5, 3}, 7).to(torch::kFloat32);
  const auto finite32 = torch::linalg_svdvals(M32.to(torch::kFloat64));
  M32[1][4][2] = -kInf;
  M32[2][3][0] = kNaN;
  M32[3].mul_(1e30f);
  const auto s32 = singular_values(M32).to(torch::kFloat64);
  EXPECT_TRUE(torch::allclose(s32[0], finite32[0], 2e-7, 0));
  EXPECT_TRUE(torch::isnan(s32[1]).all().item<bool>());
  EXPECT_TRUE(torch::isnan(s32[2]).all().item<bool>());
  EXPECT_TRUE(torch::allclose(s32[3] / 1e30, finite32[3], 2e-7, 0));
}

TEST(Spectra, IteratedSmallestMatchesAKnownSpectrumTallSquareAndWide) {
  // 119 values from 10 down to 1, then 0.01: far below the rest, so the iteration converges.
  const auto s = torch::cat({torch::linspace(10.0, 1.0, 119, kF64), torch::full({1}, 0.01, kF64)});
  for (int64_t rows : {120, 300}) {
    const auto M = with_spectrum(rows, s, 10 + rows);
    for (const auto& matrix : {M, M.t()}) {
      const auto found = smallest_singular_value(matrix);
      EXPECT_TRUE(found.iterated) << rows;
      EXPECT_GT(found.iterations, 0);
      EXPECT_LE(found.iterations, 5);
      EXPECT_EQ(found.value.dim(), 0);
      EXPECT_EQ(found.value.scalar_type(), torch::kFloat64);
      // The construction itself is exact to about eps * sigma_max = 2e-15, 2e-13 relative.
      EXPECT_LT(relative_error(found.value.item<double>(), 0.01), 1e-12) << rows;
      EXPECT_LT(relative_error(found.value.item<double>(), svd_sigma_min(matrix)), 1e-12) << rows;
    }
  }
}

TEST(Spectra, IteratedSmallestMatchesTheSvdOnFeatureMatrices) {
  // Square features are the case the iteration is for (the small bench size is 256 x 256).
  const auto square = smallest_singular_value(features(256, 16, 256, 20));
  EXPECT_TRUE(square.iterated);
  EXPECT_LT(relative_error(square.value.item<double>(), svd_sigma_min(features(256, 16, 256, 20))), 1e-12);
  // Tall and wide (the flagship's 64 x 512 stacks), iterated or not: the same value.
  for (const auto& M : {features(512, 16, 200, 21), features(64, 64, 512, 22), features(96, 8, 96, 23)}) {
    const auto found = smallest_singular_value(M);
    EXPECT_LT(relative_error(found.value.item<double>(), svd_sigma_min(M)), 1e-12)
        << M.sizes() << " iterated " << found.iterated << " after " << found.iterations;
  }
}

TEST(Spectra, AClusterOfSmallValuesFallsBackToTheSvd) {
  // Twelve values within 1% of 0.01: more than the 8 vectors hold, so the iteration would
  // crawl; it gives up and the SVD of R answers.
  const auto s = torch::cat({torch::linspace(10.0, 1.0, 88, kF64), torch::linspace(0.0101, 0.01, 12, kF64)});
  const auto found = smallest_singular_value(with_spectrum(150, s, 30));
  EXPECT_FALSE(found.iterated);
  EXPECT_GT(found.iterations, 0);
  EXPECT_LT(found.iterations, 20);  // gave up from the rate, before the budget ran out
  EXPECT_LT(relative_error(found.value.item<double>(), 0.01), 1e-11);
}

TEST(Spectra, SmallestCountsZeroWhereTheSvdDoes) {
  auto s = torch::linspace(10.0, 1.0, 64, kF64);
  s[63] = 1e-11;  // 1e-12 of the largest: small but above the 1e-13 threshold
  const auto above = smallest_singular_value(with_spectrum(80, s, 40));
  EXPECT_GT(above.value.item<double>(), 0.0);
  EXPECT_LT(relative_error(above.value.item<double>(), 1e-11), 1e-2);  // eps * sigma_max absolute

  s[63] = 1e-15;  // 1e-16 of the largest: zero
  EXPECT_EQ(smallest_singular_value(with_spectrum(80, s, 41)).value.item<double>(), 0.0);

  auto repeated = randn({100, 64}, 42);
  repeated.select(1, 5).copy_(repeated.select(1, 9));  // two equal columns: exactly singular
  const auto singular = smallest_singular_value(repeated);
  EXPECT_EQ(singular.value.item<double>(), 0.0);
  EXPECT_FALSE(singular.iterated);

  EXPECT_EQ(smallest_singular_value(torch::zeros({40, 40}, kF64)).value.item<double>(), 0.0);

  // A zero column (a dead unit of relu features) leaves an exact 0 on R's diagonal, where
  // the triangular solves would divide by zero; wide, as a plain deep model's collapsed
  // features are (tokens x units), and tall.
  auto dead = features(64, 16, 512, 43);
  dead.select(0, 3).zero_();
  for (const auto& M : {dead, dead.t()}) {
    const auto found = smallest_singular_value(M);
    EXPECT_EQ(found.value.item<double>(), 0.0);
    EXPECT_EQ(found.iterations, 0);  // the pivots alone sent it to the SVD
  }

  // Unit pivots, -1 above them: the inverse grows as 2^c, so the solves overflow although
  // no pivot is small (sigma_min about 1e-170, zero beside sigma_max about 360).
  const int64_t c = 560;
  const auto unit_pivots = torch::eye(c, kF64) - torch::ones({c, c}, kF64).triu(1);
  EXPECT_EQ(smallest_singular_value(unit_pivots).value.item<double>(), 0.0);
}

TEST(Spectra, SmallestOfNonFiniteIsNanAndExtremeScalesDoNotOverflow) {
  const auto M = features(128, 16, 96, 50);
  const double reference = svd_sigma_min(M);
  for (double bad : {kInf, -kInf, kNaN}) {
    auto broken = M.clone();
    broken[7][3] = bad;
    EXPECT_TRUE(std::isnan(smallest_singular_value(broken).value.item<double>())) << bad;
  }
  // 1e300 * sqrt(128) would overflow a column norm of the QR, and 1e-300 squared underflows.
  for (double factor : {1e300, 1e-300, 1e200}) {
    const auto found = smallest_singular_value(M * factor);
    EXPECT_LT(relative_error(found.value.item<double>() / factor, reference), 1e-12) << factor;
  }
  for (double factor : {1e30, 1e-30}) {  // float32: about 2^+-100
    const auto found = smallest_singular_value((M * factor).to(torch::kFloat32));
    EXPECT_LT(relative_error(found.value.item<double>() / factor, reference), 1e-3) << factor;
  }
}

TEST(Spectra, Float32SpectraAreTheFloat32MatricesOwnToFloat32Rounding) {
  // The truth is the float64 SVD of the float32 matrix itself (its entries converted
  // exactly). The float64 Gram route leaves only the final rounding to float32 (6e-8);
  // float32's own SVD carries 6e-8 times the condition number and more.
  const auto s = torch::tensor({50.0, 4.0, 1.0, 0.3, 1e-2, 8.0, 8.0, 2.0, 2.0, 1e-3}, kF64).view({2, 5});
  const auto M = with_spectrum(24, s, 61).to(torch::kFloat32);  // (2, 24, 5): kappa 5e3 and 8e3
  const auto truth = torch::linalg_svdvals(M.to(torch::kFloat64));
  for (const auto& batch : {M, M.transpose(1, 2)}) {
    const auto found = singular_values(batch);
    EXPECT_EQ(found.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::allclose(found.to(torch::kFloat64), truth, /*rtol=*/2e-7, /*atol=*/0)) << found;
  }
  const double svd32_error =
      ((torch::linalg_svdvals(M).to(torch::kFloat64) - truth).abs() / truth).max().item<double>();
  EXPECT_GT(svd32_error, 1e-5);  // the route this replaces: several digits fewer

  // sigma_min_phi's matrix, tall and square, and one whose long side takes several pieces.
  for (const auto& features32 :
       {features(256, 16, 256, 60).to(torch::kFloat32), features(4096, 16, 96, 62).to(torch::kFloat32),
        features(12000, 24, 400, 63).to(torch::kFloat32)}) {
    const double exact = svd_sigma_min(features32.to(torch::kFloat64));
    const auto found = smallest_singular_value(features32);
    EXPECT_EQ(found.value.scalar_type(), torch::kFloat32);
    EXPECT_FALSE(found.iterated);
    EXPECT_LT(relative_error(found.value.item<double>(), exact), 2e-7) << features32.sizes();
  }
  // Exactly rank-deficient stays exactly 0: the Gram's rounding is far under the threshold.
  const auto rank_one = randn({3, 1, 40}, 64).expand({3, 300, 40}).to(torch::kFloat32);
  EXPECT_TRUE((singular_values(rank_one).narrow(1, 1, 39) == 0).all().item<bool>());
  EXPECT_EQ(spectrum_stats(rank_one).cond.item<double>(), kInf);
}

TEST(OnThisMachine, Float32SpectraOnAWorkerThreadCopyNoWholeBatch) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's allocator maps and unmaps large blocks itself";
#endif
  // A run's diagnoses are computed on a worker thread, whose own glibc arena maps a block
  // of 64 MiB or more afresh and gives back any heap of it once wholly free: a copy of the
  // whole batch (the large size's 128 MiB features) faulted in every page of it at every
  // diagnosis, about 11 us each. The Gram route copies pieces of 32 MiB instead: at most
  // one piece's 8,192 pages come afresh.
  compute::configure_process(Backend::tuned);
  const auto batch = torch::randn({1, 81920, 256}).mul_(1e20f);  // 80 MiB of float32; 20,480 pages
  auto minor_faults = [] {
    rusage usage{};
    getrusage(RUSAGE_THREAD, &usage);
    return usage.ru_minflt;
  };
  // Both calls on one thread: a second new thread could get a fresh heap of its own.
  long second_call_faults = -1;
  std::thread worker([&] {
    const auto diagnose = [&] {
      const long before = minor_faults();
      const auto s = singular_values(batch);
      EXPECT_GT(s[0][255].item<float>(), 0);  // a random 81920 x 256 matrix: well conditioned
      return minor_faults() - before;
    };
    diagnose();  // a new thread's heap grows once
    second_call_faults = diagnose();
  });
  worker.join();
  EXPECT_GE(second_call_faults, 0);
  EXPECT_LT(second_call_faults, 10240) << "a copy of the batch would fault 20,480 pages";
  // Four pieces, each scaled by 2^-66 as it is converted: the float64 SVD's values.
  const auto truth = torch::linalg_svdvals(batch.to(torch::kFloat64));
  EXPECT_TRUE(torch::allclose(singular_values(batch).to(torch::kFloat64), truth, 2e-7, 0));
}

TEST(Spectra, SmallestPsdEigenvalueIsKnownNearTheDtypesLargestAndCountsZeroOrNan) {
  const auto A = randn({12, 40}, 70);
  auto K = A.mm(A.t());
  K = K / K.abs().max();  // largest entry 1; eigenvalues well apart from 0
  const double lambda_min = torch::linalg_eigvalsh(K).min().item<double>();
  ASSERT_GT(lambda_min, 0.05);
  EXPECT_LT(relative_error(smallest_psd_eigenvalue(K).item<double>(), lambda_min), 1e-14);
  // Entries past half the dtype's largest (a float32 kernel of a diverging run): the
  // symmetrisation must not overflow, nor LAPACK fail.
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const double largest = dtype == torch::kFloat64 ? std::numeric_limits<double>::max()
                                                    : static_cast<double>(std::numeric_limits<float>::max());
    const double scale = 0.9 * largest;
    const auto found = smallest_psd_eigenvalue((K * scale).to(dtype)).item<double>();
    EXPECT_LT(relative_error(found / scale, lambda_min), dtype == torch::kFloat64 ? 1e-12 : 1e-5) << dtype;
  }
  const auto thin = randn({12, 5}, 71);  // rank 5 of 12: exactly singular, rounding either sign
  EXPECT_EQ(smallest_psd_eigenvalue(thin.mm(thin.t())).item<double>(), 0.0);
  auto broken = K.clone();
  broken[2][3] = kNaN;
  EXPECT_TRUE(std::isnan(smallest_psd_eigenvalue(broken).item<double>()));
  EXPECT_THROW(smallest_psd_eigenvalue(randn({3, 4}, 72)), c10::Error);
}

TEST(Spectra, SmallMatricesTakeTheSvdAndBadShapesAreRefused) {
  const auto M = randn({20, 12}, 70);
  const auto found = smallest_singular_value(M);
  EXPECT_EQ(found.iterations, 0);
  EXPECT_FALSE(found.iterated);
  EXPECT_EQ(found.value.item<double>(), svd_sigma_min(M));
  EXPECT_THROW(smallest_singular_value(randn({2, 3, 4}, 71)), c10::Error);
  EXPECT_THROW(smallest_singular_value(torch::ones({40, 40}, torch::kInt64)), c10::Error);
  EXPECT_THROW(smallest_singular_value(torch::empty({0, 40}, kF64)), c10::Error);
}

/// Q diag(lambda) Q^T for a random orthogonal Q: a symmetric matrix with spectrum lambda.
torch::Tensor symmetric_with_spectrum(const torch::Tensor& lambda, int64_t seed) {
  const int64_t n = lambda.size(0);
  auto Q = std::get<0>(torch::linalg_qr(randn({n, n}, seed)));
  return Q.mul(lambda.unsqueeze(0)).mm(Q.t());
}

TEST(Spectra, LanczosFindsTheLargestAlgebraicEigenvalueNotTheLargestInSize) {
  // Top eigenvalue 3, a gap, then the bulk in [-1, 2] and -10: power iteration would
  // return -10; Lanczos must return 3, within its stated residual and far closer.
  auto lambda = torch::cat({torch::tensor({3.0, -10.0}, kF64), torch::linspace(-1.0, 2.0, 198, kF64)});
  const auto A = symmetric_with_spectrum(lambda, 80);
  const auto top = largest_eigenvalue([&](const torch::Tensor& v) { return A.mv(v); }, randn({200}, 81), 100, 1e-8);
  ASSERT_TRUE(top.converged);
  EXPECT_EQ(top.value, top.ritz_value);
  EXPECT_LE(top.value, 3.0 + 1e-12);   // a Ritz value never exceeds the largest eigenvalue
  EXPECT_NEAR(top.value, 3.0, 1e-12);  // residual^2 / gap
  EXPECT_LE(top.residual, 1e-8 * 10.0 * 1.0000001);
  EXPECT_LT(top.iterations, 100);
  EXPECT_GT(top.iterations, 16);  // past the room first made for the Lanczos vectors
}

TEST(Spectra, LanczosIsExactOnceTheKrylovSpaceIsInvariant) {
  // Dimension 5: at most 5 products, then exact to rounding.
  const auto A = symmetric_with_spectrum(torch::tensor({-4.0, -1.0, 0.5, 0.5, 2.0}, kF64), 82);
  const auto top = largest_eigenvalue([&](const torch::Tensor& v) { return A.mv(v); }, randn({5}, 83), 100, 1e-15);
  ASSERT_TRUE(top.converged);
  EXPECT_LE(top.iterations, 5);
  EXPECT_NEAR(top.value, 2.0, 1e-13);
  // Two distinct eigenvalues: the Krylov space of any start has dimension 2.
  const auto two = symmetric_with_spectrum(torch::tensor({1.0, 1.0, 1.0, 7.0, 7.0, 7.0}, kF64), 84);
  const auto found = largest_eigenvalue([&](const torch::Tensor& v) { return two.mv(v); }, randn({6}, 85), 100, 1e-12);
  ASSERT_TRUE(found.converged);
  EXPECT_EQ(found.iterations, 2);
  EXPECT_NEAR(found.value, 7.0, 1e-13);
  // The zero operator: 0 after one product, no division by its zero norm.
  const auto zero =
      largest_eigenvalue([](const torch::Tensor& v) { return torch::zeros_like(v); }, randn({4}, 86), 10, 1e-8);
  ASSERT_TRUE(zero.converged);
  EXPECT_EQ(zero.value, 0.0);
}

TEST(Spectra, LanczosOutOfProductsOrFacingNanReportsNoValue) {
  // A top eigenvalue inside a tight cluster cannot converge in 3 products: no value, but
  // the estimate so far, below the largest eigenvalue.
  auto lambda = torch::linspace(0.0, 1.0, 300, kF64);
  const auto A = symmetric_with_spectrum(lambda, 87);
  const auto apply = [&](const torch::Tensor& v) { return A.mv(v); };
  const auto short_run = largest_eigenvalue(apply, randn({300}, 88), 3, 1e-10);
  EXPECT_FALSE(short_run.converged);
  EXPECT_TRUE(std::isnan(short_run.value));
  EXPECT_EQ(short_run.iterations, 3);
  EXPECT_LT(short_run.ritz_value, 1.0);
  EXPECT_GT(short_run.residual, 1e-10 * short_run.ritz_value);

  const auto broken = largest_eigenvalue([](const torch::Tensor& v) { return v * kNaN; }, randn({4}, 89), 10, 1e-8);
  EXPECT_FALSE(broken.converged);
  EXPECT_TRUE(std::isnan(broken.value));
  EXPECT_THROW(largest_eigenvalue(apply, torch::empty({0}, kF64), 10, 1e-8), c10::Error);
  EXPECT_THROW(largest_eigenvalue(apply, randn({300}, 90), 0, 1e-8), c10::Error);
}

}  // namespace
}  // namespace resgd
