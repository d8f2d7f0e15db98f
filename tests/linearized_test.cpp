// The linearized trajectory: loss_lin equals GD on an explicitly linearized model, follows
// the real loss at a small step, and is refused where its kernel would be too large.
#include "resgd/science/linearized.h"

#include <gtest/gtest.h>

#include <tuple>

#include <cmath>

#include "resgd/core/cost.h"
#include "resgd/core/csv.h"
#include "resgd/core/flagship.h"
#include "resgd/run/runner.h"
#include "resgd/science/data.h"
#include "resgd/science/training.h"
#include "test_util.h"

namespace resgd {
namespace {

struct Trajectory {
  TrainResult result;
  std::vector<IterationRow> rows;
};

Trajectory train_config(const ExperimentConfig& c) {
  const Dataset data = make_dataset(c, torch::kCPU, torch::kFloat64);
  ResidualTransformer model(model_options(c));
  model->to(torch::kFloat64);
  Trajectory out;
  TrainHooks hooks;
  hooks.on_row = [&](const IterationRow& row) { out.rows.push_back(row); };
  out.result = train(*model, data, c, compute::policy_for(c, 1), hooks);
  return out;
}

/// The Jacobian of the flattened outputs at the model's parameters, one reverse pass per
/// output, each parameter's columns in registration order: (R, P).
torch::Tensor jacobian(ResidualTransformerImpl& model, const torch::Tensor& X) {
  auto params = model.parameters();
  for (auto& p : params) p.requires_grad_(true);
  const auto y = model.forward(X).flatten();
  std::vector<torch::Tensor> rows;
  for (int64_t r = 0; r < y.numel(); ++r) {
    const auto grads = torch::autograd::grad({y[r]}, params, {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
    std::vector<torch::Tensor> parts;
    for (size_t i = 0; i < grads.size(); ++i)
      parts.push_back(grads[i].defined() ? grads[i].flatten() : torch::zeros({params[i].numel()}, torch::kFloat64));
    rows.push_back(torch::cat(parts));
  }
  for (auto& p : params) p.requires_grad_(false);
  return torch::stack(rows);
}

ExperimentConfig small() {
  ExperimentConfig c;
  c.data.num_samples = 3;
  c.data.seq_len = 4;
  c.data.dim = 6;
  c.data.target_dim = 2;
  c.model.ffn_width = 16;
  c.model.layers = 2;
  c.model.heads = 2;
  c.model.residual_ffn.value = 0.5;
  c.train.lr = 0.02;
  c.train.max_iters = 12;
  c.train.rel_tolerance = 0;
  c.diagnostics.every = 0;
  c.diagnostics.linearized = true;
  return c;
}

TEST(Linearized, LossLinIsGdOnTheModelLinearizedAtInitialization) {
  // theta_{t+1} = theta_t - lr c J^T (f_0 + J (theta_t - theta_0) - Y), J fixed at theta_0,
  // with flat vectors: no eigendecomposition, no kernel. Both losses, both readouts; and
  // with the attention frozen (train.freeze), where only the other columns of J move theta.
  for (const auto& [loss, readout, freeze] : {std::tuple{Loss::sum, Readout::tokens, Freeze::none},
                                              {Loss::mean, Readout::mean, Freeze::none},
                                              {Loss::sum, Readout::tokens, Freeze::attention}}) {
    SCOPED_TRACE(to_string(freeze));
    ExperimentConfig c = small();
    c.train.loss = loss;
    c.model.readout = readout;
    c.train.freeze = freeze;
    const Trajectory run = train_config(c);
    ASSERT_EQ(run.rows.size(), 13u);

    const Dataset data = make_dataset(c, torch::kCPU, torch::kFloat64);
    ResidualTransformer model(model_options(c));  // theta_0: the same seed
    model->to(torch::kFloat64);
    const torch::Tensor J_all = jacobian(*model, data.X);
    // The columns GD moves: every parameter's, or all but the attention's when it is frozen.
    torch::Tensor moves = torch::ones({J_all.size(1)}, torch::kFloat64);
    int64_t column = 0;
    for (const auto& p : model->named_parameters()) {
      const std::string name = p.key().substr(p.key().rfind('.') + 1);
      if (freeze == Freeze::attention && (name == "W_Q" || name == "W_K" || name == "W_V"))
        moves.narrow(0, column, p.value().numel()).zero_();
      column += p.value().numel();
    }
    const torch::Tensor J = J_all * moves;
    torch::NoGradGuard no_grad;
    const torch::Tensor f0 = model->forward(data.X).flatten(), y = data.Y.flatten();
    const double scale = loss == Loss::mean ? 1.0 / double(c.data.num_samples) : 1.0;
    torch::Tensor delta = torch::zeros({J.size(1)}, torch::kFloat64);  // theta_t - theta_0
    for (int64_t t = 0; t <= c.train.max_iters; ++t) {
      const torch::Tensor r = f0 + J.matmul(delta) - y;
      const double expected = 0.5 * scale * r.pow(2).sum().item<double>();
      const double got = run.rows[static_cast<size_t>(t)].loss_lin.value();
      EXPECT_NEAR(got, expected, 1e-10 * expected) << "iteration " << t;
      delta -= c.train.lr * scale * J.t().matmul(r);
    }
    // At iteration 0 the linearized model is the model.
    EXPECT_NEAR(run.rows[0].loss_lin.value(), run.rows[0].loss, 1e-12 * run.rows[0].loss);
    EXPECT_NEAR(*run.result.ntk_lambda_max, torch::linalg::eigvalsh(J.matmul(J.t()), "L").max().item<double>(),
                1e-10 * *run.result.ntk_lambda_max);
  }
}

TEST(Linearized, TheSummaryGivesTheLargestGapTheLastRatioAndTheRateOfMetricsCsvsLosses) {
  // lin_gap_max = max |loss - loss_lin| / initial_loss, lin_ratio_final = loss / loss_lin on
  // the last row and lin_rate, each recomputed from the rows the run wrote.
  testing::TempDir dir;
  ExperimentConfig c = small();
  c.train.max_iters = 40;
  RunOptions options;
  options.out = dir / "lin";
  const auto records = run_experiment(c, options);
  ASSERT_EQ(records.size(), 1u);
  const auto& summary = records[0].summary;
  const CsvTable metrics = read_csv(options.out / "metrics.csv");
  const size_t loss = metrics.column("loss"), lin = metrics.column("loss_lin");
  double gap = 0;
  for (const auto& row : metrics.rows) gap = std::max(gap, std::abs(std::stod(row[loss]) - std::stod(row[lin])));
  const double initial = std::stod(metrics.rows.front()[loss]);
  const double ratio = std::stod(metrics.rows.back()[loss]) / std::stod(metrics.rows.back()[lin]);
  EXPECT_EQ(summary.at("lin_gap_max").get<double>(), gap / initial);
  // lin_rate: exp of the slope of ln loss_lin on the iteration from 10% of the run to its end.
  std::vector<double> t, ln_lin;
  const double end = std::stod(metrics.rows.back()[metrics.column("iter")]);
  for (const auto& row : metrics.rows)
    if (std::stod(row[metrics.column("iter")]) >= 0.1 * end) {
      t.push_back(std::stod(row[metrics.column("iter")]));
      ln_lin.push_back(std::log(std::stod(row[lin])));
    }
  double mt = 0, ml = 0, stt = 0, stl = 0;
  for (size_t k = 0; k < t.size(); ++k) mt += t[k] / double(t.size()), ml += ln_lin[k] / double(t.size());
  for (size_t k = 0; k < t.size(); ++k) stt += (t[k] - mt) * (t[k] - mt), stl += (t[k] - mt) * (ln_lin[k] - ml);
  EXPECT_NEAR(summary.at("lin_rate").get<double>(), std::exp(stl / stt), 1e-12);
  EXPECT_LT(summary.at("lin_rate").get<double>(), 1.0) << "the linearized loss falls";
  EXPECT_EQ(summary.at("lin_ratio_final").get<double>(), ratio);
  EXPECT_GT(gap, 1e-6 * initial) << "the two losses differ: the check is not of equal numbers";
  EXPECT_NE(ratio, 1.0);
}

TEST(Linearized, TheNtkSpectrumIsEveryEigenvalueOfJJtWithTheLossSplitAlongItsEigenvectors) {
  // diagnostics.ntk_spectrum: ntk_spectrum/<iter>.csv at each NTK measurement. At theta_0,
  // against J from autograd here: the eigenvalues of J J^T, and (c / 2) (u_i^T r_0)^2 for
  // the mean loss, which sum to the loss; the smallest is ntk_lambda_min.
  testing::TempDir dir;
  ExperimentConfig c = small();
  c.train.loss = Loss::mean;
  c.train.max_iters = 20;
  c.diagnostics.linearized = false;
  c.diagnostics.ntk = true;
  c.diagnostics.ntk_every = 10;
  c.diagnostics.ntk_spectrum = true;
  RunOptions options;
  options.out = dir / "spectrum";
  run_experiment(c, options);
  const CsvTable metrics = read_csv(options.out / "metrics.csv");
  size_t measured = 0;
  for (const auto& row : metrics.rows) {
    const std::string lambda_min = row[metrics.column("ntk_lambda_min")];
    const std::filesystem::path file = options.out / "ntk_spectrum" / (row[0] + ".csv");
    EXPECT_EQ(std::filesystem::exists(file), !lambda_min.empty()) << row[0];
    if (lambda_min.empty()) continue;
    ++measured;
    const CsvTable spectrum = read_csv(file);
    double total = 0;
    for (size_t i = 0; i < spectrum.rows.size(); ++i) {
      total += std::stod(spectrum.rows[i][2]);
      if (i > 0) {
        EXPECT_LE(std::stod(spectrum.rows[i - 1][1]), std::stod(spectrum.rows[i][1])) << "ascending";
      }
    }
    const double loss = std::stod(row[metrics.column("loss")]);
    EXPECT_NEAR(total, loss, 1e-12 * loss) << "the shares sum to the loss at " << row[0];
    EXPECT_NEAR(std::stod(spectrum.rows[0][1]), std::stod(lambda_min), 1e-10 * std::stod(spectrum.rows.back()[1]));
  }
  EXPECT_EQ(measured, 3u);  // iterations 0, 10 and 20

  ExperimentConfig no_ntk = c;
  no_ntk.diagnostics.ntk = false;
  testing::expect_error<ConfigError>([&] { validate(no_ntk); },
                                     "diagnostics.ntk_spectrum: needs diagnostics.ntk: true");

  const Dataset data = make_dataset(c, torch::kCPU, torch::kFloat64);
  ResidualTransformer model(model_options(c));  // theta_0
  model->to(torch::kFloat64);
  const torch::Tensor J = jacobian(*model, data.X);
  torch::NoGradGuard no_grad;
  const auto [lambda, U] = torch::linalg::eigh(J.matmul(J.t()), "L");
  const torch::Tensor r = (model->forward(data.X) - data.Y).flatten();
  const torch::Tensor share = 0.5 / double(c.data.num_samples) * U.t().matmul(r).pow(2);
  const CsvTable at_0 = read_csv(options.out / "ntk_spectrum" / "0.csv");
  ASSERT_EQ(static_cast<int64_t>(at_0.rows.size()), lambda.numel());
  const double top = lambda.max().item<double>();
  for (int64_t i = 0; i < lambda.numel(); ++i) {
    EXPECT_NEAR(std::stod(at_0.rows[i][1]), lambda[i].item<double>(), 1e-10 * top) << i;
    // A share is defined where its eigenvalue is apart from the others (repeated ones mix).
    const bool apart =
        (i == 0 || lambda[i].item<double>() - lambda[i - 1].item<double>() > 1e-6 * top) &&
        (i + 1 == lambda.numel() || lambda[i + 1].item<double>() - lambda[i].item<double>() > 1e-6 * top);
    if (apart) {
      EXPECT_NEAR(std::stod(at_0.rows[i][2]), share[i].item<double>(), 1e-9 * share.sum().item<double>()) << i;
    }
  }
}

TEST(Linearized, AtAHundredthOfTheFlagshipsStepTheRealLossFollowsIt) {
  ExperimentConfig c = load_config_text(flagship_experiment_yaml(), kFlagshipSource);
  apply_override(c, "sweep={}");  // its residual arm, seed 0
  ASSERT_EQ(c.train.lr, 0.015);
  c.train.lr /= 100;
  c.train.max_iters = 100;
  c.train.rel_tolerance = 0;
  c.diagnostics.every = 0;
  c.diagnostics.linearized = true;
  const Trajectory run = train_config(c);
  ASSERT_EQ(run.rows.size(), 101u);
  double worst = 0;
  for (const auto& row : run.rows) worst = std::max(worst, std::abs(row.loss - *row.loss_lin) / row.loss);
  EXPECT_LT(worst, 1e-3);
  EXPECT_LT(run.rows.back().loss, 0.99 * run.rows.front().loss) << "the loss moves: the agreement is not trivial";
}

TEST(Linearized, AKernelTooLargeIsRefusedWithTheSizeItWouldNeed) {
  ExperimentConfig c;
  c.data.num_samples = 4096;
  c.data.seq_len = 8;
  c.data.target_dim = 1;  // R = 32768 outputs
  c.diagnostics.linearized = true;
  c.origins["diagnostics.linearized"] = Origin{"exp.yaml", 3, 16};
  testing::expect_error<ConfigError>([&] { check_linearized(c); },
                                     "exp.yaml:3:16: diagnostics.linearized: its kernel K would be 32768 x 32768");
  c.data.num_samples = 64;  // R = 512, but J of 512 x 5M entries
  c.model.ffn_width = 100'000;
  testing::expect_error<ConfigError>([&] { check_linearized(c); }, "above diagnostics.ntk_max_entries");
  c.model.ffn_width = 16;
  EXPECT_NO_THROW(check_linearized(c));
  c.diagnostics.linearized = false;
  c.data.num_samples = 4096;
  EXPECT_NO_THROW(check_linearized(c)) << "nothing to check where it is off";
}

}  // namespace
}  // namespace resgd
