// Plain GD: the loss falls, stop rules give their statuses, runs are reproducible (also
// across thread counts and diagnosis schedules), and the two backends agree.
#include "resgd/science/training.h"
#include "resgd/compute/onednn.h"
#include "resgd/compute/process.h"
#include "resgd/science/analytic_grad.h"
#include "resgd/science/device.h"
#include "resgd/science/diagnostics.h"
#include "resgd/science/linearized.h"
#include "resgd/science/schedule.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace resgd {
namespace {

ExperimentConfig tiny_experiment() {
  ExperimentConfig c;
  c.data.num_samples = 4;
  c.data.seq_len = 4;
  c.data.dim = 6;
  c.data.target_dim = 2;
  c.model.ffn_width = 32;
  c.train.lr = 0.05;
  c.train.max_iters = 60;
  c.diagnostics.every = 0;
  return c;
}

/// How often each tuned route has been taken in this process.
std::map<compute::Tuning, uint64_t> routes_taken() {
  std::map<compute::Tuning, uint64_t> taken;
  for (const auto tuning : compute::kTunings) taken[tuning] = compute::times_taken(tuning);
  return taken;
}

struct Trajectory {
  TrainResult result;
  std::vector<IterationRow> rows;
};

/// A run of `c` in `dtype` with `policy` (default: the one a lone run of it gets).
Trajectory train_tiny(const ExperimentConfig& c, torch::Dtype dtype = torch::kFloat64,
                      std::optional<compute::Policy> policy = std::nullopt) {
  const Dataset data = make_dataset(c, torch::kCPU, dtype);
  ResidualTransformer model(model_options(c));
  model->to(dtype);
  Trajectory out;
  TrainHooks hooks;
  hooks.on_row = [&](const IterationRow& row) { out.rows.push_back(row); };
  out.result = train(*model, data, c, policy.value_or(compute::policy_for(c, 1)), hooks);
  return out;
}

TEST(Training, GradientDescentLowersTheLoss) {
  const Trajectory t = train_tiny(tiny_experiment());
  EXPECT_EQ(t.result.status, Status::max_iters);
  EXPECT_EQ(t.result.iters, 60);
  ASSERT_EQ(t.rows.size(), 61u);  // iterations 0..60
  EXPECT_LT(t.result.final_loss, 0.5 * t.result.initial_loss);
  for (size_t i = 1; i < t.rows.size(); ++i) EXPECT_LE(t.rows[i].loss, t.rows[i - 1].loss) << "iteration " << i;
}

TEST(Training, SameSeedGivesBitIdenticalLossAndGradientColumns) {
  const Trajectory a = train_tiny(tiny_experiment());
  const Trajectory b = train_tiny(tiny_experiment());
  ASSERT_EQ(a.rows.size(), b.rows.size());
  for (size_t i = 0; i < a.rows.size(); ++i) {
    EXPECT_EQ(a.rows[i].loss, b.rows[i].loss) << "iteration " << i;
    EXPECT_EQ(a.rows[i].grad_norm, b.rows[i].grad_norm) << "iteration " << i;
  }
}

TEST(Training, LoggedGradNormIsTheNormOfEveryGradient) {
  // metrics.csv's grad_norm, against the norms of the same gradients (iteration 0, before
  // any update) summed here in float64.
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const Gradients gradients : {Gradients::analytic, Gradients::autograd}) {
      ExperimentConfig c = tiny_experiment();
      c.train.gradients = gradients;
      c.train.max_iters = 1;
      const Trajectory t = train_tiny(c, dtype);
      const Dataset data = make_dataset(c, torch::kCPU, dtype);
      ResidualTransformer model(model_options(c));
      model->to(dtype);
      // The run's own method: autograd's forward and the trace's round float32 differently.
      const compute::Policy policy = compute::policy_for(c, 1);
      const compute::Scope scope(policy);
      const auto state = gradients == Gradients::analytic ? analytic_gradients(*model, data.X, data.Y, c.train.loss)
                                                          : autograd_gradients(*model, data.X, data.Y, c.train.loss);
      double squares = 0;
      for (const auto& g : state.grads) squares += g.to(torch::kFloat64).norm().pow(2).item<double>();
      const double tolerance = dtype == torch::kFloat64 ? 1e-13 : 1e-6;
      ASSERT_FALSE(t.rows.empty());
      EXPECT_NEAR(t.rows[0].grad_norm, std::sqrt(squares), tolerance * std::sqrt(squares))
          << dtype << ", " << to_string(gradients);
      EXPECT_EQ(t.rows[0].loss, state.loss.item<double>()) << dtype << ", " << to_string(gradients);
    }
  }
}

TEST(Training, RelativeToleranceStopsAsConverged) {
  ExperimentConfig c = tiny_experiment();
  c.train.rel_tolerance = 0.5;
  c.train.max_iters = 10000;
  const Trajectory t = train_tiny(c);
  EXPECT_EQ(t.result.status, Status::converged);
  ASSERT_TRUE(t.result.iters_to_tol.has_value());
  EXPECT_EQ(*t.result.iters_to_tol, t.result.iters);
  EXPECT_LE(t.result.final_loss, 0.5 * t.result.initial_loss);
  EXPECT_GT(t.rows[t.rows.size() - 2].loss, 0.5 * t.result.initial_loss);  // not one step earlier
}

TEST(Training, AbsoluteToleranceStopsAsConverged) {
  ExperimentConfig c = tiny_experiment();
  const double initial = train_tiny(c).result.initial_loss;
  c.train.tolerance = 0.9 * initial;
  c.train.max_iters = 10000;
  const Trajectory t = train_tiny(c);
  EXPECT_EQ(t.result.status, Status::converged);
  EXPECT_LE(t.result.final_loss, 0.9 * initial);
}

TEST(Training, BlowUpIsRecordedAsDivergedNotThrown) {
  ExperimentConfig c = tiny_experiment();
  c.train.lr = 50.0;
  c.train.max_iters = 1000;
  const Trajectory t = train_tiny(c);
  EXPECT_EQ(t.result.status, Status::diverged);
  EXPECT_LT(t.result.iters, 1000);
  EXPECT_TRUE(!std::isfinite(t.result.final_loss) || t.result.final_loss > 1e6 * t.result.initial_loss);
}

TEST(Training, LogEveryThinsRowsButKeepsTheLastIteration) {
  ExperimentConfig c = tiny_experiment();
  c.train.log_every = 25;
  const Trajectory t = train_tiny(c);
  std::vector<int64_t> iters;
  for (const auto& row : t.rows) iters.push_back(row.iter);
  EXPECT_EQ(iters, (std::vector<int64_t>{0, 25, 50, 60}));
}

TEST(Training, StopRequestEndsTheRunAsInterrupted) {
  ExperimentConfig c = tiny_experiment();
  const Dataset data = make_dataset(c, torch::kCPU, torch::kFloat64);
  ResidualTransformer model(model_options(c));
  std::atomic<bool> stop{false};
  TrainHooks hooks;
  hooks.on_row = [&](const IterationRow& row) {
    if (row.iter == 5) stop = true;
  };
  hooks.stop_requested = &stop;
  const TrainResult result = train(*model, data, c, compute::policy_for(c, 1), hooks);
  EXPECT_EQ(result.status, Status::interrupted);
  EXPECT_EQ(result.iters, 6);
}

TEST(Training, EachStepLowersTheLossByLrTimesTheSquaredGradNormToFirstOrder) {
  // L(theta - lr g) = L - lr ||g||^2 + O(lr^2): the logged gradient is the loss's own, and
  // the update applies lr times it. The relative gap shrinks linearly with lr.
  auto largest_gap = [](double lr) {
    ExperimentConfig c = tiny_experiment();
    c.train.lr = lr;
    c.train.max_iters = 10;
    const Trajectory t = train_tiny(c);
    double gap = 0;
    for (size_t i = 0; i + 1 < t.rows.size(); ++i) {
      const double drop = t.rows[i].loss - t.rows[i + 1].loss;
      gap = std::max(gap, std::abs(drop / (lr * t.rows[i].grad_norm * t.rows[i].grad_norm) - 1));
    }
    return gap;
  };
  const double coarse = largest_gap(1e-3), fine = largest_gap(1e-4);
  EXPECT_LT(fine, 1e-2);
  EXPECT_GT(coarse / fine, 7.0) << coarse << " " << fine;  // first order: 10
  EXPECT_LT(coarse / fine, 13.0) << coarse << " " << fine;
}

TEST(Training, ThePlRatioIsBoundedBelowByTheNtksSmallestEigenvalue) {
  // ||grad L||^2 = r^T J J^T r >= lambda_min(J J^T) ||r||^2, so for the sum loss (L = ||r||^2 / 2)
  // pl_ratio >= ntk_lambda_min, and for the mean loss (r / N) pl_ratio >= ntk_lambda_min / N,
  // at every diagnosed iteration: two diagnostics from independent computations.
  for (const Loss loss : {Loss::sum, Loss::mean}) {
    ExperimentConfig c = tiny_experiment();  // 32 outputs, 364 parameters: J J^T has full rank
    c.train.loss = loss;
    c.train.lr = loss == Loss::sum ? 0.05 : 0.2;
    c.diagnostics.every = 5;
    c.diagnostics.ntk = true;
    const Trajectory t = train_tiny(c);
    const double N = static_cast<double>(c.data.num_samples);
    int diagnosed = 0;
    for (const auto& row : t.rows) {
      if (!row.diagnosis) continue;
      ++diagnosed;
      const double pl = row.diagnosis->pl_ratio;
      const double floor = *row.diagnosis->ntk_lambda_min / (loss == Loss::sum ? 1 : N);
      EXPECT_GT(floor, 1e-6) << to_string(loss) << " iteration " << row.iter << ": the bound is not trivial";
      EXPECT_GE(pl, floor * (1 - 1e-10)) << to_string(loss) << " iteration " << row.iter;
    }
    EXPECT_EQ(diagnosed, 13) << to_string(loss);
  }
}

TEST(Training, TheNtkAndTheSharpnessKeepCadencesOfTheirOwn) {
  // The spectra every 5 steps, the NTK every 10, the sharpness at the first and last
  // iteration only: each value where its cadence puts it, the others empty, and the values
  // measured equal those of a run that measures everything every 5 steps.
  ExperimentConfig c = tiny_experiment();
  c.train.max_iters = 20;
  c.train.rel_tolerance = 0;
  c.diagnostics.every = 5;
  c.diagnostics.ntk = c.diagnostics.sharpness = true;
  const Trajectory all = train_tiny(c);
  c.diagnostics.ntk_every = 10;
  c.diagnostics.sharpness_every = 0;
  const Trajectory sparse = train_tiny(c);
  ASSERT_EQ(sparse.rows.size(), all.rows.size());
  std::vector<int64_t> diagnosed, ntk, sharpness;
  for (size_t i = 0; i < sparse.rows.size(); ++i) {
    const auto& row = sparse.rows[i];
    if (!row.diagnosis) continue;
    diagnosed.push_back(row.iter);
    if (row.diagnosis->ntk_lambda_min) {
      ntk.push_back(row.iter);
      EXPECT_EQ(*row.diagnosis->ntk_lambda_min, *all.rows[i].diagnosis->ntk_lambda_min) << row.iter;
    }
    if (row.diagnosis->sharpness) {
      sharpness.push_back(row.iter);
      EXPECT_EQ(*row.diagnosis->sharpness, *all.rows[i].diagnosis->sharpness) << row.iter;
    }
    EXPECT_EQ(row.diagnosis->pl_ratio, all.rows[i].diagnosis->pl_ratio) << row.iter;
  }
  EXPECT_EQ(diagnosed, (std::vector<int64_t>{0, 5, 10, 15, 20}));
  EXPECT_EQ(ntk, (std::vector<int64_t>{0, 10, 20}));
  EXPECT_EQ(sharpness, (std::vector<int64_t>{0, 20}));

  // An NTK cadence finer than the spectra's adds diagnosed rows of its own.
  c.diagnostics.every = 0;
  c.diagnostics.ntk_every = 4;
  diagnosed.clear();
  for (const auto& row : train_tiny(c).rows)
    if (row.diagnosis) diagnosed.push_back(row.iter);
  EXPECT_EQ(diagnosed, (std::vector<int64_t>{0, 4, 8, 12, 16, 20}));
}

TEST(Training, UniformAttentionWithoutTheResidualStallsExactlyAtTheWithinSequenceLoss) {
  // W_Q = W_K = 0: attention is uniform and stays so (a fixed point of GD), so without the
  // residual every token of a sequence gets the same G row and the same output. The best
  // such output is each sequence's mean target: GD reaches that loss and never goes below,
  // while the residual model, whose tokens stay apart, fits far past it. The floor here is
  // summed entry by entry, apart from within_sequence_loss's tensor code.
  ExperimentConfig c = tiny_experiment();
  c.model.init.W_Q = 0.0;
  c.model.init.W_K = 0.0;
  c.train.max_iters = 500;
  c.train.rel_tolerance = 0;
  const Dataset data = make_dataset(c, torch::kCPU, torch::kFloat64);
  const auto Y = data.Y.accessor<double, 3>();
  double floor = 0;
  for (int64_t i = 0; i < Y.size(0); ++i)
    for (int64_t k = 0; k < Y.size(2); ++k) {
      double mean = 0;
      for (int64_t t = 0; t < Y.size(1); ++t) mean += Y[i][t][k] / static_cast<double>(Y.size(1));
      for (int64_t t = 0; t < Y.size(1); ++t) floor += 0.5 * (Y[i][t][k] - mean) * (Y[i][t][k] - mean);
    }
  EXPECT_NEAR(within_sequence_loss(data.Y, Loss::sum).item<double>(), floor, 1e-13 * floor);
  const double N = static_cast<double>(c.data.num_samples);
  EXPECT_NEAR(within_sequence_loss(data.Y, Loss::mean).item<double>(), floor / N, 1e-13 * floor);

  c.model.residual_attention.value = 0.0;
  const Trajectory plain = train_tiny(c);
  EXPECT_GT(plain.rows.front().loss, 1.1 * floor);  // it starts well above the floor
  for (const auto& row : plain.rows) EXPECT_GE(row.loss, floor * (1 - 1e-12)) << "iteration " << row.iter;
  EXPECT_LT(plain.result.final_loss, floor * (1 + 1e-9));
  c.model.residual_attention.value = 1.0;
  const Trajectory residual = train_tiny(c);
  EXPECT_LT(residual.result.final_loss, 1e-3 * floor);
}

/// Bit for bit, where a diagnostic that could not be computed reads NaN on both sides.
bool same_or_both_nan(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

/// The diagnosis of a row as metrics.csv's cells; none where it was not diagnosed.
/// The opt-in values where the row measured them.
std::vector<double> cells_of(const IterationRow& row) {
  std::vector<double> values;
  if (!row.diagnosis) return values;
  DiagnosticsConfig measured;
  measured.ntk = row.diagnosis->ntk_lambda_min.has_value();
  measured.sharpness = row.diagnosis->sharpness.has_value();
  for (const auto& cell : to_cells(*row.diagnosis, measured)) values.push_back(cell.value());
  return values;
}

/// The tuned backend with one tuning switched off.
compute::Policy tuned_without(compute::Tuning tuning, int threads = 1) {
  compute::Policy policy;
  policy.backend = Backend::tuned;
  policy.threads = threads;
  policy.use[static_cast<size_t>(tuning)] = false;
  return policy;
}

TEST(Training, RowsDiagnosedBesideGdArriveInOrderAndComplete) {
  ExperimentConfig c = tiny_experiment();
  c.train.max_iters = 20;
  c.diagnostics.every = 3;  // diagnoses run on a worker thread while GD goes on
  const Trajectory t = train_tiny(c);
  const auto columns = diagnostic_columns(c.model.layers, c.diagnostics);
  ASSERT_EQ(t.rows.size(), 21u);
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const IterationRow& row = t.rows[i];
    ASSERT_EQ(row.iter, static_cast<int64_t>(i));
    const bool diagnosed = i % 3 == 0 || i == 20;
    ASSERT_EQ(cells_of(row).size(), diagnosed ? columns.size() : 0u) << "iteration " << i;
    if (!diagnosed) continue;
    // pl_ratio reads the gradient of this iteration, not of one GD has reached since
    const double pl_ratio = row.diagnosis->pl_ratio;
    EXPECT_NEAR(pl_ratio, row.grad_norm * row.grad_norm / (2 * row.loss), 1e-12 * pl_ratio) << "iteration " << i;
  }
  // Iteration 0 diagnosed beside GD equals iteration 0 diagnosed in step (every 0).
  ExperimentConfig in_step = c;
  in_step.diagnostics.every = 0;
  const Trajectory reference = train_tiny(in_step);
  const auto a = cells_of(t.rows.front()), b = cells_of(reference.rows.front());
  ASSERT_EQ(b.size(), columns.size());
  for (size_t k = 0; k < columns.size(); ++k)
    EXPECT_TRUE(same_or_both_nan(a[k], b[k])) << columns[k] << ": " << a[k] << " vs " << b[k];
}

void expect_same_rows(const Trajectory& a, const Trajectory& b, const std::string& what) {
  ASSERT_EQ(a.rows.size(), b.rows.size()) << what;
  for (size_t i = 0; i < a.rows.size(); ++i) {
    EXPECT_EQ(a.rows[i].loss, b.rows[i].loss) << what << ", iteration " << i;
    EXPECT_EQ(a.rows[i].grad_norm, b.rows[i].grad_norm) << what << ", iteration " << i;
    const auto x = cells_of(a.rows[i]), y = cells_of(b.rows[i]);
    ASSERT_EQ(x.size(), y.size()) << what;
    for (size_t k = 0; k < x.size(); ++k)
      EXPECT_TRUE(same_or_both_nan(x[k], y[k])) << what << ", iteration " << i << ", column " << k;
  }
}

TEST(Training, NoNumberFollowsTheThreadsOrTheDiagnosisSchedule) {
  // A lone run's products in parts over the cores, runs side by side one each; diagnoses
  // on the worker or in step: the same run to the last bit, so that no number depends on
  // --jobs or on timing. The medium size's shapes (products worth splitting), few steps.
  ExperimentConfig c;
  c.data.num_samples = 64;
  c.data.seq_len = 16;
  c.data.dim = 64;
  c.data.target_dim = 64;
  c.model.ffn_width = 512;
  c.model.layers = 2;
  c.model.residual_ffn.value = 1.0;
  c.train.lr = 1e-4;
  c.train.max_iters = 12;
  c.diagnostics.every = 4;
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const Gradients gradients : {Gradients::autograd, Gradients::analytic}) {
      c.train.gradients = gradients;
      const std::string name = std::string(dtype == torch::kFloat64 ? "float64, " : "float32, ") + to_string(gradients);
      const Trajectory alone = train_tiny(c, dtype, tuned_without(compute::Tuning::worker, 2));
      expect_same_rows(train_tiny(c, dtype, tuned_without(compute::Tuning::worker, 1)), alone,
                       name + ", 1 vs 2 threads");
      compute::Policy with_worker = tuned_without(compute::Tuning::worker, 2);
      with_worker.use[static_cast<size_t>(compute::Tuning::worker)] = true;
      expect_same_rows(train_tiny(c, dtype, with_worker), alone, name + ", worker vs in step");
    }
  }
}

TEST(Training, TheDiagnosisScheduleEmitsRowsInIterationOrder) {
  // Rows added while a diagnosis runs on the worker are held behind it; one added as the
  // diagnosis finishes must not pass them. Diagnoses of 0 to ~20 us, a row every few:
  // the finish lands at every point of add(), many times over.
  compute::Policy policy;
  policy.backend = Backend::tuned;
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<int64_t> emitted;
    {
      DiagnosisSchedule schedule(policy, [&](const IterationRow& row) { emitted.push_back(row.iter); });
      ASSERT_TRUE(policy.uses(compute::Tuning::worker));
      for (int64_t t = 0; t < 3000; ++t) {
        IterationRow row;
        row.iter = t;
        DiagnosisJob job;
        if (t % (2 + trial % 3) == 0) {
          const int spin = static_cast<int>((t * 7919) % 2000);
          job = [spin] {
            volatile double x = 0;
            for (int i = 0; i < spin; ++i) x = x + 1.0;
            return Diagnosis{};
          };
        }
        schedule.add(row, job, /*last=*/t == 2999);
      }
      schedule.drain();
    }
    ASSERT_EQ(emitted.size(), 3000u) << "trial " << trial;
    for (size_t i = 0; i < emitted.size(); ++i)
      ASSERT_EQ(emitted[i], static_cast<int64_t>(i)) << "trial " << trial << ": row " << i << " out of order";
  }
}

TEST(Training, FrozenWeightsStayAtTheirStartAndTheRestStillDescend) {
  // train.freeze holds a group of weights at theta_0, exactly; the others move as GD moves
  // them, and the loss still falls.
  for (const Freeze freeze : {Freeze::attention, Freeze::ffn}) {
    ExperimentConfig c = tiny_experiment();
    c.train.freeze = freeze;
    const Dataset data = make_dataset(c, torch::kCPU, torch::kFloat64);
    ResidualTransformer model(model_options(c));
    std::map<std::string, torch::Tensor> start;
    for (const auto& p : model->named_parameters()) start[p.key()] = p.value().detach().clone();
    const TrainResult result = train(*model, data, c, compute::policy_for(c, 1), {});
    EXPECT_LT(result.final_loss, 0.9 * result.initial_loss) << to_string(freeze);
    for (const auto& p : model->named_parameters()) {
      const std::string name = p.key().substr(p.key().rfind('.') + 1);
      const bool attention = name == "W_Q" || name == "W_K" || name == "W_V";
      const bool held = freeze == Freeze::attention ? attention : !attention;
      EXPECT_EQ(torch::equal(p.value(), start[p.key()]), held) << to_string(freeze) << ": " << p.key();
    }
    EXPECT_EQ(freeze == Freeze::attention ? result.travel_attention : result.travel_ffn, 0.0);
  }
}

TEST(Training, AnExactlyZeroGradientStopsTheRunAsStalledAfterItsWindow) {
  // W_1 = 0: every ReLU's input is 0, so its output and its derivative are 0, the network
  // outputs 0 at a positive loss, and every gradient is exactly 0: GD cannot move.
  ExperimentConfig c = tiny_experiment();
  c.model.activation = Activation::relu;
  c.model.init.W_1 = 0.0;
  c.train.max_iters = 200;
  c.train.stall_window = 7;
  const Trajectory dead = train_tiny(c);
  EXPECT_EQ(dead.result.status, Status::stalled);
  EXPECT_EQ(dead.result.iters, 7);
  EXPECT_GT(dead.result.final_loss, 0.0);
  EXPECT_EQ(dead.result.final_loss, dead.result.initial_loss);
  for (const auto& row : dead.rows) EXPECT_EQ(row.grad_norm, 0.0) << row.iter;
  // Logged every 5 steps, the stall is seen at the first logged row past the window.
  c.train.log_every = 5;
  EXPECT_EQ(train_tiny(c).result.iters, 10);
  c.train.log_every = 1;
  c.train.stall_window = 0;  // never: the run goes on to max_iters
  const Trajectory waited = train_tiny(c);
  EXPECT_EQ(waited.result.status, Status::max_iters);
  EXPECT_EQ(waited.result.iters, 200);
  // Resumed from a checkpoint inside the stall, the run stalls where the straight one did.
  c.train.stall_window = 7;
  c.train.checkpoint_every = 4;
  const Dataset data = make_dataset(c, torch::kCPU, torch::kFloat64);
  TrainCheckpoint at_4;
  TrainHooks hooks;
  hooks.on_checkpoint = [&](const TrainCheckpoint& k) {
    if (k.iter == 4) at_4 = k;
  };
  ResidualTransformer first(model_options(c));
  first->to(torch::kFloat64);
  ASSERT_EQ(train(*first, data, c, compute::policy_for(c, 1), hooks).iters, 7);
  ASSERT_EQ(at_4.iter, 4);
  for (const auto& row : dead.rows)
    if (row.iter < 4) at_4.rows.push_back(row);
  ResidualTransformer second(model_options(c));
  second->to(torch::kFloat64);
  const TrainResult resumed = train(*second, data, c, compute::policy_for(c, 1), {}, &at_4);
  EXPECT_EQ(resumed.status, Status::stalled);
  EXPECT_EQ(resumed.iters, 7);
  // A network that learns never stalls.
  c = tiny_experiment();
  c.model.activation = Activation::relu;
  EXPECT_NE(train_tiny(c).result.status, Status::stalled);
}

TEST(Training, ALrPastTheCurvaturesEdgeIsWarnedOfBeforeTheFirstStep) {
  // The edges measured here, independently of train(): 2 / (c lambda_max(K)) of the
  // linearized model, and 2 / sharpness. At 1% past an edge the run warns, at 1% below it
  // does not; max_iters: 0 takes no step at all.
  ExperimentConfig c = tiny_experiment();
  c.train.max_iters = 0;
  const Dataset data = make_dataset(c, torch::kCPU, torch::kFloat64);
  ResidualTransformer model(model_options(c));
  model->to(torch::kFloat64);
  std::vector<torch::Tensor> theta_0;
  for (const auto& p : model->parameters()) theta_0.push_back(p.detach().clone());
  const double ntk_edge = LinearizedLoss(*model, data.X, data.Y, c.train.loss, 1.0, theta_0).edge();
  const double sharpness_edge = 2 / sharpness(*model, data.X, data.Y, c.train.loss).value;
  ASSERT_GT(ntk_edge, 0);
  ASSERT_GT(sharpness_edge, 0);
  for (const bool by_ntk : {true, false}) {
    c.diagnostics.linearized = by_ntk;
    c.diagnostics.sharpness = !by_ntk;
    const double edge = by_ntk ? ntk_edge : sharpness_edge;
    const std::string says = by_ntk ? "of the NTK at initialization" : "2 / sharpness";
    for (const double factor : {1.01, 0.99}) {
      c.train.lr = factor * edge;
      ::testing::internal::CaptureStderr();
      train_tiny(c);
      const std::string err = ::testing::internal::GetCapturedStderr();
      EXPECT_EQ(err.find("is past the edge") != std::string::npos, factor > 1) << says << " x" << factor << ": " << err;
      if (factor > 1) {
        EXPECT_NE(err.find(says), std::string::npos) << err;
      }
    }
  }
}

TEST(Training, TheTwoBackendsGiveTheSameRunToRounding) {
  // Reference (plain LibTorch) against tuned: the loss at every logged iteration within
  // 1e-12 of the initial loss in float64 (1e-5 in float32), the parameters at the end
  // within 1e-12 (1e-5) of their norm. A loss near zero is compared to the initial one, as
  // its own relative error grows as it falls.
  ExperimentConfig c = tiny_experiment();
  c.train.max_iters = 200;
  c.diagnostics.every = 20;
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const Gradients gradients : {Gradients::autograd, Gradients::analytic}) {
      c.train.gradients = gradients;
      const double tolerance = dtype == torch::kFloat64 ? 1e-12 : 1e-5;
      compute::Policy reference;
      const auto finals = [&](const compute::Policy& policy, Trajectory& t) {
        const Dataset data = make_dataset(c, torch::kCPU, dtype);
        ResidualTransformer model(model_options(c));
        model->to(dtype);
        TrainHooks hooks;
        hooks.on_row = [&](const IterationRow& row) { t.rows.push_back(row); };
        t.result = train(*model, data, c, policy, hooks);
        return torch::cat([&] {
          std::vector<torch::Tensor> flat;
          for (const auto& p : model->parameters()) flat.push_back(p.detach().flatten().to(torch::kFloat64));
          return flat;
        }());
      };
      const std::string name = std::string(dtype == torch::kFloat64 ? "float64, " : "float32, ") + to_string(gradients);
      // Each backend is the one that computed: the reference takes no tuned route, the
      // tuned one takes those that apply to the run (counted at the seam).
      Trajectory a, b;
      const auto before = routes_taken();
      const auto theta_reference = finals(reference, a);
      const auto after_reference = routes_taken();
      EXPECT_EQ(after_reference, before) << name << ": the reference backend took a tuned route";
      const auto theta_tuned = finals(compute::policy_for(c, 1), b);
      const auto after_tuned = routes_taken();
      // Where each applies: the loop to products autograd need not see (the hand-derived
      // backward's), the Gram route to the float32 spectra, oneDNN to float32 products.
      std::vector<compute::Tuning> expected = {compute::Tuning::host_norm};
      if (gradients == Gradients::analytic) expected.push_back(compute::Tuning::loops);
      if (dtype == torch::kFloat32) expected.push_back(compute::Tuning::gram);
      if (dtype == torch::kFloat32 && compute::onednn_available()) expected.push_back(compute::Tuning::onednn);
      for (const auto tuning : expected)
        EXPECT_GT(after_tuned.at(tuning), after_reference.at(tuning)) << name << ": " << compute::to_string(tuning);
      ASSERT_EQ(a.rows.size(), b.rows.size()) << name;
      for (size_t i = 0; i < a.rows.size(); ++i)
        EXPECT_LE(std::abs(a.rows[i].loss - b.rows[i].loss), tolerance * a.result.initial_loss) << name << " " << i;
      EXPECT_LE((theta_reference - theta_tuned).norm().item<double>(),
                tolerance * theta_reference.norm().item<double>())
          << name;
      EXPECT_LT(a.result.final_loss, 0.1 * a.result.initial_loss) << name << ": 200 steps that do train";
    }
  }
}

TEST(Training, TheDiagnosisWorkersPriorityIsLoweredForItsThreadAlone) {
  // The tuned backend's diagnosis worker runs at a lower priority
  // (lower_this_threads_priority), so that the step's own threads take the cores first;
  // the GD thread keeps its own.
  const auto nice_of = [](long thread) {
    errno = 0;
    const int value = getpriority(PRIO_PROCESS, static_cast<id_t>(thread));
    EXPECT_EQ(errno, 0);
    return value;
  };
  const long self = ::syscall(SYS_gettid);
  const int before = nice_of(self);
  int worker = -100;
  std::thread([&] {
    compute::lower_this_threads_priority();
    worker = nice_of(::syscall(SYS_gettid));
  }).join();
  EXPECT_EQ(worker, std::max(before, 10));
  EXPECT_EQ(nice_of(self), before);
  // A run diagnoses on the worker, and its first and last iterations in step, on the GD
  // thread itself: that one must come out of the run with its priority as it was.
  ExperimentConfig c = tiny_experiment();
  c.train.max_iters = 12;
  c.diagnostics.every = 5;
  const Trajectory t = train_tiny(c);
  ASSERT_TRUE(t.rows.back().diagnosis.has_value());
  EXPECT_EQ(nice_of(self), before);
}

/// The ids of this process's threads now (/proc/self/task).
std::set<long> thread_ids() {
  std::set<long> ids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task"))
    ids.insert(std::stol(entry.path().filename().string()));
  return ids;
}

TEST(Training, OneWorkerThreadServesEveryDiagnosisOfARunAtALowerPriority) {
  // A thread per diagnosis cost more than a small diagnosis itself (schedule.h): the run
  // starts one worker and keeps it, at nice 10 or above.
  ExperimentConfig c = tiny_experiment();
  c.train.max_iters = 30;
  c.diagnostics.every = 2;  // 15 diagnoses on the worker
  train_tiny(c);            // the pools LibTorch and the BLAS start on first use
  const std::set<long> before = thread_ids();
  const int own_nice = getpriority(PRIO_PROCESS, 0);
  std::set<long> seen;  // threads alive at some row that were not there before the run
  std::vector<int> worker_nice;
  const Dataset data = make_dataset(c, torch::kCPU, torch::kFloat64);
  ResidualTransformer model(model_options(c));
  model->to(torch::kFloat64);
  TrainHooks hooks;
  hooks.on_row = [&](const IterationRow&) {
    for (long id : thread_ids()) {
      if (before.count(id)) continue;
      seen.insert(id);
      errno = 0;
      const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(id));
      if (errno == 0) worker_nice.push_back(nice);  // unless it ended since the listing
    }
  };
  train(*model, data, c, compute::policy_for(c, 1), hooks);
  EXPECT_EQ(seen.size(), 1u) << "threads started during the run beside GD";
  ASSERT_FALSE(worker_nice.empty());
  for (int nice : worker_nice) EXPECT_EQ(nice, std::max(own_nice, 10));
  EXPECT_EQ(thread_ids(), before) << "the worker ends with its run";
}

}  // namespace
}  // namespace resgd
