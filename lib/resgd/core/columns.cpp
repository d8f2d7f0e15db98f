// The columns' reference (columns.h). A test fails where a file writes a column that is not
// here, and where docs/reference.md is not what this prints.
#include "resgd/core/columns.h"

#include <fmt/format.h>

#include <cctype>

namespace resgd {

namespace {

const char* const kMetrics = "metrics.csv";
const char* const kEverywhere = "metrics.csv; summary.json and sweep.csv at iteration 0";
const char* const kSummary = "summary.json, sweep.csv";
const char* const kSummaryOnly = "summary.json";

}  // namespace

const std::vector<ColumnInfo>& column_infos() {
  static const std::vector<ColumnInfo> columns = {
      // metrics.csv: one row per logged iteration t, measured at theta_t before its update.
      {"iter", kMetrics, "t, the GD step; a row is measured at theta_t, before the update to theta_{t+1}"},
      {"loss", kMetrics, "L(theta_t) = (c / 2) ||Yhat - Y||_F^2, c = 1 (train.loss: sum) or 1 / N (mean)"},
      {"grad_norm", kMetrics, "||grad L(theta_t)||, all parameters together"},
      {"elapsed_s", kMetrics, "seconds of training up to this row (continued across a resume); the one timed column"},
      {"loss_lin", kMetrics,
       "the loss of GD on the model linearized at theta_0: (c / 2) sum_i (1 - lr c lambda_i)^(2t) (U^T r_0)_i^2, "
       "K = J J^T = U diag(lambda) U^T at theta_0 (diagnostics.linearized)"},
      {"sigma_min_g<l>", "metrics.csv; sweep.csv and summary.json's list sigma_min_g at iteration 0",
       "min over samples i of the smallest singular value of G_i^l = gamma_a H_i + S_i H_i W_V (n x d), block l's "
       "attention output with its residual"},
      {"sigma_max_g<l>", "metrics.csv; sweep.csv and summary.json's list sigma_max_g at iteration 0",
       "max over samples i of the largest singular value of G_i^l"},
      {"cond_g<l>", "metrics.csv; sweep.csv and summary.json's list cond_g at iteration 0",
       "sigma_max_g<l> / sigma_min_g<l>; inf where sigma_min_g<l> is 0 (below 1e-13 of its matrix's largest in "
       "float64, 1e-6 in float32)"},
      {"sigma_min_a<l>", kMetrics, "as sigma_min_g<l>, for the attention part alone, A_i^l = S_i H_i W_V"},
      {"sigma_max_a<l>", kMetrics, "as sigma_max_g<l>, for A_i^l"},
      {"cond_a<l>", kMetrics, "sigma_max_a<l> / sigma_min_a<l>"},
      {"sigma_min_gstack<l>", kMetrics, "the smallest singular value of the (N n) x d stack of every G_i^l"},
      {"sigma_max_gstack<l>", kMetrics, "the largest singular value of that stack"},
      {"cond_gstack<l>", kMetrics, "sigma_max_gstack<l> / sigma_min_gstack<l>"},
      {"attn_entropy<l>", kMetrics,
       "mean over samples, heads and queries a of -sum_b S[a,b] ln S[a,b] / ln(keys a may attend to); 1 is "
       "uniform attention"},
      {"rank1_res<l>", "metrics.csv; sweep.csv and summary.json's list rank1_res at iteration 0",
       "mean_i ||G_i - 1 g_i^T||_F / ||G_i||_F, g_i the mean row of G_i^l: the tokens' distance from one vector "
       "(0: collapsed to it)"},
      {"rank1_res_final<l>", "sweep.csv and summary.json's list rank1_res_final",
       "rank1_res<l> at the last diagnosed row with a finite loss (that of diagnosed_final_iter)"},
      {"sigma_min_phi", kEverywhere,
       "the smallest singular value of the last block's (N n) x m FFN features Phi = sigma(G W_1), stacked"},
      {"pl_ratio", kMetrics,
       "||grad L||^2 / (2 L): the observed Polyak-Lojasiewicz constant; 1 - linear_rate is about 2 lr pl_ratio"},
      {"dist_init", kMetrics, "||theta_t - theta_0||, all parameters together"},
      {"ntk_lambda_min", kEverywhere,
       "the smallest eigenvalue of J J^T, J the Jacobian of the flattened outputs Yhat (diagnostics.ntk)"},
      {"sharpness", kEverywhere,
       "the largest eigenvalue of the loss's Hessian, by Lanczos; 2 / sharpness is the edge of stability "
       "(diagnostics.sharpness)"},
      // summary.json: one run; sweep.csv: one row per run of a sweep.
      {"run", "sweep.csv",
       "the run's directory, relative to the one sweep.csv is in: runs/<key=value,...>/seed=<s> in a sweep, as "
       "report.md's run table writes it; a folder's or a comparison's sweep.csv names each run's path from there"},
      {"name", kSummaryOnly, "the experiment's name"},
      {"status", kSummary,
       "converged (a tolerance reached), max_iters, diverged, stalled (the gradient exactly zero for "
       "train.stall_window steps), or interrupted (resumable)"},
      {"iters", kSummary, "the GD steps taken"},
      {"iters_to_tol", kSummary,
       "the first iteration whose loss met train.tolerance or train.rel_tolerance; null if none"},
      {"initial_loss", kSummary, "L(theta_0)"},
      {"final_loss", kSummary, "the loss at the last logged iteration"},
      {"loss_max", kSummary, "the largest finite logged loss (above initial_loss: the loss rose on the way)"},
      {"within_sequence_loss", kSummary,
       "1/2 sum_i ||Y_i - 1 mean_a Y_i[a,:]||_F^2 (/ N for the mean loss): the least loss of an output that is one "
       "vector per sequence; null for the mean readout"},
      {"iters_to_half_within_sequence", kSummary,
       "the first logged iteration whose loss is at most half the within_sequence_loss: where a plateau at the "
       "within-sequence spread ends; null if the run never got there (or for the mean readout)"},
      {"linear_rate", kSummary,
       "exp(slope) of a least-squares fit of ln(loss) on the iteration, from 10% of the run to iters_to_tol or "
       "the end"},
      {"linear_fit_correlation", kSummary, "the correlation of ln(loss) with the iteration over that fit's window"},
      {"converges_linearly", kSummary,
       "not diverged, linear_fit_correlation <= -0.99, and a tolerance reached or the fit falling a decade"},
      {"sigma_min_g_final<l>", "sweep.csv and summary.json's list sigma_min_g_final",
       "sigma_min_g<l> at the last diagnosed row with a finite loss (that of diagnosed_final_iter)"},
      {"sigma_max_g_final<l>", "sweep.csv and summary.json's list sigma_max_g_final", "sigma_max_g<l> there"},
      {"cond_g_final<l>", "sweep.csv and summary.json's list cond_g_final", "cond_g<l> there"},
      {"sigma_min_phi_final", kSummary, "sigma_min_phi there"},
      {"ntk_lambda_min_final", kSummary, "ntk_lambda_min there (diagnostics.ntk)"},
      {"diagnosed_final_iter", kSummaryOnly, "the iteration of the last diagnosed row (that of the _final lists)"},
      {"pl_ratio_min", kSummary, "the least finite pl_ratio over the diagnosed rows"},
      {"pl_ratio_median", kSummary, "the median of the finite pl_ratio values"},
      {"sharpness_max", kSummary, "the largest sharpness measured (diagnostics.sharpness)"},
      {"sharpness_final", kSummary, "the sharpness at the last row it was measured"},
      {"travel_attention", kSummary,
       "||theta_T - theta_0|| / ||theta_0|| over the attention's weights W_Q, W_K, W_V, at the end"},
      {"travel_ffn", kSummary, "the same over the FFN's weights W_1, W_2"},
      {"lin_gap_max", kSummary, "max over logged t of |loss - loss_lin| / initial_loss (diagnostics.linearized)"},
      {"lin_rate", kSummary,
       "exp(slope) of linear_rate's fit made on loss_lin over the same window: the rate of GD on the model "
       "linearized at theta_0 (diagnostics.linearized)"},
      {"lin_ratio_final", kSummary,
       "loss / loss_lin at the last logged row where both are finite: near 1 where GD kept the linearized model's "
       "pace over the whole run (diagnostics.linearized)"},
      {"lin_departure_iter", kSummary,
       "the first logged iteration where |loss - loss_lin| > 0.1 loss; null if never (diagnostics.linearized)"},
      {"ntk_lambda_max", kSummary,
       "the largest eigenvalue of K = J J^T at theta_0; linearized GD is stable while lr c ntk_lambda_max < 2"},
      {"wall_time_s", kSummary, "seconds of training (timed)"},
      {"steps_per_s", kSummary, "iters / wall_time_s (timed)"},
      {"lr", kSummary, "the step GD took: train.lr, or with train.lr_edge train.lr times lr_edge"},
      {"lr_edge", kSummary,
       "with train.lr_edge: the edge measured at theta_0, 2 / (c lambda_max(K)) or 2 / sharpness; null otherwise"},
      {"device", kSummaryOnly, "the device the run used (cpu, cuda:0, ...)"},
      {"dtype", kSummaryOnly, "float64 or float32"},
      {"seed", kSummary, "the run's seed"},
      {"gradients", kSummaryOnly, "autograd or analytic (train.gradients)"},
      {"compute_backend", kSummaryOnly, "tuned or reference (compute.backend)"},
      {"libtorch_version", kSummaryOnly, "the LibTorch the run was computed with"},
      {"resgd_version", kSummaryOnly, "the ResGD version that wrote the run (resgd --version)"},
      {"resgd_commit", kSummaryOnly, "its git commit, with -dirty for local changes"},
      {"config_hash", kSummaryOnly, "16 hex digits of FNV-1a over the resolved configuration (sweep excluded)"},
      {"data_hash", kSummaryOnly, "16 hex digits of FNV-1a over the shapes, dtype and bytes of X and Y"},
  };
  return columns;
}

const ColumnInfo* find_column(const std::string& name) {
  auto exact = [](const std::string& wanted) -> const ColumnInfo* {
    for (const auto& column : column_infos())
      if (column.name == wanted) return &column;
    return nullptr;
  };
  if (const auto* found = exact(name)) return found;
  size_t digits = name.size();
  while (digits > 0 && std::isdigit(static_cast<unsigned char>(name[digits - 1]))) --digits;
  if (digits < name.size() && name[digits] != '0') return exact(name.substr(0, digits) + "<l>");  // block 1..L
  if (digits == name.size()) return exact(name + "<l>");  // summary.json's per-block list
  return nullptr;
}

std::string explain_columns(const std::string& name) {
  auto text = [](const ColumnInfo& c) { return fmt::format("{}\n  in: {}\n  {}\n", c.name, c.files, c.meaning); };
  if (!name.empty()) {
    const ColumnInfo* found = find_column(name);
    return found ? text(*found) : std::string();
  }
  std::string out;
  for (const auto& column : column_infos()) out += text(column);
  return out;
}

}  // namespace resgd
