// Diagnostics of the attention output and of training: docs/design.md, "Diagnostics".
//
// Every diagnostic is a 0-d tensor computed on the run's device; compute_diagnostics stacks
// them and reads them back once, so a CUDA run pays one synchronization per diagnosed
// iteration, not one per value. A non-finite input (a diverged run) gives NaN, never an
// exception from LAPACK.
#pragma once

#include <atomic>
#include <stdexcept>

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "resgd/core/config.h"
#include "resgd/science/analytic_grad.h"
#include "resgd/science/model.h"
#include "resgd/science/spectra.h"

namespace resgd {

/// linear_rate: exp(slope) of a least-squares fit of ln(loss) against iteration, over
/// iterations from 10% of the run to its end, or to the first iteration under tolerance
/// (`iters_to_tol`). Non-positive and non-finite losses are skipped. NaN when fewer than
/// two usable points remain.
double linear_rate(const std::vector<int64_t>& iters, const std::vector<double>& losses,
                   std::optional<int64_t> iters_to_tol);

/// The verdict on linear convergence, from the fit linear_rate makes: the rate, the
/// correlation of ln(loss) with the iteration over the window, and how many decades the
/// fitted line falls across it. A run converges linearly where it did not diverge, its log
/// loss lies on the line (correlation <= -kLinearCorrelation), and it reached its tolerance
/// or the line falls at least one decade: a run that stalls (rate near 1) or blows up does
/// not, and has no rate to show.
struct LinearConvergence {
  double rate = NAN, correlation = NAN, decades = 0;
  bool linear = false;
};
constexpr double kLinearCorrelation = 0.99;
LinearConvergence linear_convergence(const std::vector<int64_t>& iters, const std::vector<double>& losses,
                                     std::optional<int64_t> iters_to_tol, bool diverged);

/// The median of the finite values; NaN if there are none.
double median_of_finite(std::vector<double> values);

/// A least-squares line y = a + slope x and the correlation of x and y (NaN where y is
/// constant); nullopt below two points or where every x is the same.
struct LineFit {
  double slope = 0, correlation = 0;
};
std::optional<LineFit> fit_line(const std::vector<double>& xs, const std::vector<double>& ys);

/// One block's diagnostics (metrics.csv suffixes each column with the block, from 1).
struct BlockDiagnosis {
  double sigma_min_g = NAN, sigma_max_g = NAN, cond_g = NAN;                 // G = gamma_a H + A
  double sigma_min_a = NAN, sigma_max_a = NAN, cond_a = NAN;                 // A = S H W_V
  double sigma_min_gstack = NAN, sigma_max_gstack = NAN, cond_gstack = NAN;  // the stacked (N n, d) G
  double attn_entropy = NAN, rank1_res = NAN;
};

/// One diagnosed iteration's values; NaN where a value could not be had (a diverged
/// state, the NTK when refused for size, the sharpness when Lanczos did not converge).
/// Every eigenvalue of K = J J^T at theta_t, ascending, and the loss's share along each
/// eigenvector, (c / 2) (u_i^T r)^2 with r = Yhat - Y (they sum to the loss): GD on the
/// linearized model shrinks share i by (1 - lr c lambda_i)^2 a step.
struct NtkSpectrum {
  std::vector<double> eigenvalues, energy;
};

struct Diagnosis {
  std::vector<BlockDiagnosis> blocks;
  double sigma_min_phi = NAN, pl_ratio = NAN, dist_init = NAN;
  std::optional<double> ntk_lambda_min, sharpness;  // where diagnostics.ntk / .sharpness are on
  std::optional<NtkSpectrum> ntk_spectrum;          // diagnostics.ntk_spectrum, where the NTK was measured
};

/// The diagnostic columns of metrics.csv for a model of `layers` blocks, in order: per
/// block l = 1..L sigma_min_g, sigma_max_g, cond_g, sigma_min_a, sigma_max_a, cond_a,
/// sigma_min_gstack, sigma_max_gstack, cond_gstack, attn_entropy, rank1_res (suffixed l);
/// then sigma_min_phi, pl_ratio, dist_init and, where switched on, ntk_lambda_min and
/// sharpness.
std::vector<std::string> diagnostic_columns(int64_t layers, const DiagnosticsConfig& config);
/// A diagnosis as metrics.csv's cells, in diagnostic_columns' order, and back (a resumed
/// run reads the rows before its checkpoint): an opt-in value not measured at that
/// iteration (its own cadence) is an empty cell. These two and diagnostic_columns are the
/// one place where the columns' names meet the values.
std::vector<std::optional<double>> to_cells(const Diagnosis& diagnosis, const DiagnosticsConfig& config);
Diagnosis from_cells(const std::vector<std::optional<double>>& cells, int64_t layers, const DiagnosticsConfig& config);

/// Which diagnostics iteration t records. The first and the last iteration (`last`) have
/// every one; between them, the spectra and the rest every diagnostics.every steps, the NTK
/// every ntk_every and the sharpness every sharpness_every (null: diagnostics.every; 0:
/// first and last only). An iteration with any of them due is a diagnosed row.
struct DiagnosisDue {
  bool any = true, ntk = true, sharpness = true;
};
DiagnosisDue diagnosis_due(const DiagnosticsConfig& config, int64_t t, bool last);
/// Whether any diagnosis falls between the first and the last iteration.
bool diagnoses_between(const DiagnosticsConfig& config);

// --- Attention and rank collapse -------------------------------------------------------------

/// Mean row entropy of row-stochastic S (N, n, n), each row divided by the log of the number
/// of keys it may attend to (n; i+1 for query i under a causal mask), so 1 means uniform
/// attention. Rows with a single admissible key carry no choice and are left out; if no row
/// is left (n = 1) the value is 1. 0-d.
torch::Tensor attention_entropy(const torch::Tensor& S, bool causal);

/// Mean over samples of ||M - 1 m^T||_F / ||M||_F, m the mean row of M (N, n, d): Dong et
/// al.'s distance to rank one. A zero matrix counts as rank one (0). 0-d.
torch::Tensor rank1_residual(const torch::Tensor& M);

/// The least loss of a prediction that is the same for every token of a sequence: all a
/// model can give whose attention output has collapsed to one vector per sequence, since
/// the FFN acts token by token. `objective` (model.h, `loss` sum | mean) of each sequence's
/// mean target against Y (N, n, d_y): 0.5 sum_i ||Y_i - 1 mean(Y_i)^T||_F^2, / N for mean.
/// the plain model stalls near it. 0-d, on Y's device.
torch::Tensor within_sequence_loss(const torch::Tensor& Y, Loss loss);

// --- Neural tangent kernel -------------------------------------------------------------------

/// The number of trainable values: the length of theta.
int64_t parameter_count(const ResidualTransformerImpl& model);

/// A vector flat over all parameters (registration order, as hessian_vector_product takes
/// it) as one view per parameter, each of its parameter's shape; checks the length.
std::vector<torch::Tensor> split_like(const torch::Tensor& flat, const std::vector<torch::Tensor>& params);

/// Entries of the Jacobian of the flattened outputs for X (N, n, d) w.r.t. all parameters:
/// (number of outputs) x (number of parameters).
int64_t ntk_jacobian_entries(const ResidualTransformerImpl& model, const torch::Tensor& X);

/// The NTK Gram matrix J J^T (R, R), R the number of outputs in row-major order of Yhat.
/// J is built one row per backward pass (autograd, enabled here even under NoGradGuard).
/// Where `stop` is given and set, it throws Stopped between two rows of the Jacobian (R
/// backward passes, minutes for the largest kernels).
/// With `only`, J holds the columns of those parameters alone (by their index in
/// parameters()): the kernel of GD that trains only them (train.freeze).
torch::Tensor ntk_gram(ResidualTransformerImpl& model, const torch::Tensor& X, const std::atomic<bool>* stop = nullptr,
                       const std::vector<size_t>* only = nullptr);

/// A stop request that ended a long computation between two of its pieces.
class Stopped : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Smallest eigenvalue of ntk_gram: smallest_psd_eigenvalue (spectra.h), a 0-d float64
/// tensor, 0 below zero_tolerance times the largest, NaN if J J^T is not finite.
torch::Tensor ntk_lambda_min(ResidualTransformerImpl& model, const torch::Tensor& X);
/// The spectrum of K = ntk_gram and the residual's energy on it, for targets Y and `loss`.
NtkSpectrum ntk_spectrum(const torch::Tensor& K, ResidualTransformerImpl& model, const torch::Tensor& X,
                         const torch::Tensor& Y, Loss loss);

// --- Curvature of the loss ------------------------------------------------------------------

/// H v for the Hessian H of the training loss (`objective`, model.h) at the model's
/// current parameters, v flat over all parameters in registration order (parameter_count
/// entries); the result likewise. Autograd's double backward, enabled here even under
/// NoGradGuard; requires_grad is restored afterwards.
torch::Tensor hessian_vector_product(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                     Loss loss, const torch::Tensor& v);

/// Hessian-vector products `sharpness` may use before it gives up (then NaN, with a warning).
constexpr int kSharpnessMaxProducts = 100;

/// Its stopping rule: the top Ritz pair's residual at most this times the Hessian's norm
/// as seen so far, sqrt(machine epsilon) of the dtype (1.5e-8 in float64, 3.5e-4 in float32).
double sharpness_tolerance(torch::ScalarType dtype);

/// The sharpness: the largest eigenvalue of the loss's Hessian at the current parameters,
/// by Lanczos on hessian_vector_product (largest_eigenvalue, spectra.h) from a fixed
/// start vector. GD with step lr is stable on a quadratic whose sharpness is below 2 / lr,
/// so 2 / sharpness is the largest step the local curvature allows.
LargestEigenvalue sharpness(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y, Loss loss);

// --- One diagnosed iteration ------------------------------------------------------------------

/// What a run's diagnoses remember between iterations: warnings already printed, so each
/// is printed once per run. Create one per run.
struct DiagnosticsRunState {
  bool ntk_refusal_warned = false;
  bool sharpness_unconverged_warned = false;
  /// train.lr of a run that starts at theta_0: the sharpness measured there warns where lr
  /// is past its edge 2 / sharpness (before the first step), then this is cleared.
  std::optional<double> lr_to_check;
};

/// Everything a diagnostic needs at one iteration.
struct DiagnosticsInput {
  ResidualTransformerImpl& model;
  const torch::Tensor& X;                     // (N, n, d)
  const torch::Tensor& Y;                     // the targets
  Loss loss;                                  // train.loss
  const LossAndGradients& state;              // loss, grads and forward trace at theta_t
  const std::vector<torch::Tensor>& theta_0;  // the initial parameters
  const DiagnosticsConfig& config;
  DiagnosticsRunState* run_state = nullptr;  // one per run; null: warn once per process
  DiagnosisDue due = {};                     // the opt-in values measured now; default all
};

/// A diagnosis of theta_t, begun: what reads theta_t and its gradient (pl_ratio,
/// dist_init and, where on and due, ntk_lambda_min and sharpness) is computed now, before the
/// update; the returned job computes the rest from the forward trace alone (the spectra,
/// attn_entropy, rank1_res, sigma_min_phi), which GD never writes, so it may run on
/// another thread while GD goes on. The job reads back from the device once.
std::function<Diagnosis()> begin_diagnosis(const DiagnosticsInput& input);

/// begin_diagnosis and its job at once.
Diagnosis compute_diagnostics(const DiagnosticsInput& input);

}  // namespace resgd
