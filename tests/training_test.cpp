// Plain GD: the loss falls, stop rules give their statuses, runs are reproducible (also
// across BLAS thread counts).
#include "resgd/analytic_grad.h"
#include "resgd/diagnostics.h"
#include "resgd/products.h"
#include "resgd/system.h"
#include "resgd/training.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <iostream>
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

struct Trajectory {
  TrainResult result;
  std::vector<IterationRow> rows;
};

Trajectory train_tiny(const ExperimentConfig& c, torch::Dtype dtype = torch::kFloat64) {
  const Dataset data = make_dataset(c, torch::kCPU, dtype);
  ResidualTransformer model(model_options(c));
  model->to(dtype);
  Trajectory out;
  out.result = train(*model, data, c, [&](const IterationRow& row) { out.rows.push_back(row); });
  return out;
}

TEST(Training, GradientDescentLowersTheLoss) {
  const Trajectory t = train_tiny(tiny_experiment());
  EXPECT_EQ(t.result.status, "max_iters");
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
  // metrics.csv's grad_norm is summed on the host from the gradients in place; LibTorch's
  // norms of the same gradients (iteration 0, before any update) are the reference.
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const std::string gradients : {"analytic", "autograd"}) {
      ExperimentConfig c = tiny_experiment();
      c.train.gradients = gradients;
      c.train.max_iters = 1;
      const Trajectory t = train_tiny(c, dtype);
      const Dataset data = make_dataset(c, torch::kCPU, dtype);
      ResidualTransformer model(model_options(c));
      model->to(dtype);
      // The run's own method: autograd's forward and the trace's round float32 differently.
      const auto state = gradients == "analytic" ? analytic_gradients(*model, data.X, data.Y, c.train.loss)
                                                 : autograd_gradients(*model, data.X, data.Y, c.train.loss);
      double squares = 0;
      for (const auto& g : state.grads) squares += g.to(torch::kFloat64).norm().pow(2).item<double>();
      const double tolerance = dtype == torch::kFloat64 ? 1e-13 : 1e-6;
      ASSERT_FALSE(t.rows.empty());
      EXPECT_NEAR(t.rows[0].grad_norm, std::sqrt(squares), tolerance * std::sqrt(squares)) << dtype << ", " << gradients;
      EXPECT_EQ(t.rows[0].loss, state.loss.item<double>()) << dtype << ", " << gradients;
    }
  }
}

TEST(Training, RelativeToleranceStopsAsConverged) {
  ExperimentConfig c = tiny_experiment();
  c.train.rel_tolerance = 0.5;
  c.train.max_iters = 10000;
  const Trajectory t = train_tiny(c);
  EXPECT_EQ(t.result.status, "converged");
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
  EXPECT_EQ(t.result.status, "converged");
  EXPECT_LE(t.result.final_loss, 0.9 * initial);
}

TEST(Training, BlowUpIsRecordedAsDivergedNotThrown) {
  ExperimentConfig c = tiny_experiment();
  c.train.lr = 50.0;
  c.train.max_iters = 1000;
  const Trajectory t = train_tiny(c);
  EXPECT_EQ(t.result.status, "diverged");
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
  const TrainResult result = train(*model, data, c, [&](const IterationRow& row) {
    if (row.iter == 5) stop = true;
  }, &stop);
  EXPECT_EQ(result.status, "interrupted");
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
  for (const char* loss : {"sum", "mean"}) {
    ExperimentConfig c = tiny_experiment();  // 32 outputs, 364 parameters: J J^T has full rank
    c.train.loss = loss;
    c.train.lr = std::string(loss) == "sum" ? 0.05 : 0.2;
    c.diagnostics.every = 5;
    c.diagnostics.ntk = true;
    const Trajectory t = train_tiny(c);
    const auto columns = diagnostic_columns(c.model.layers, c.diagnostics);
    const double N = static_cast<double>(c.data.num_samples);
    int diagnosed = 0;
    for (const auto& row : t.rows) {
      if (row.diagnostics.empty()) continue;
      ++diagnosed;
      const double pl = *value_of(columns, row.diagnostics, "pl_ratio");
      const double floor = *value_of(columns, row.diagnostics, "ntk_lambda_min") / (std::string(loss) == "sum" ? 1 : N);
      EXPECT_GT(floor, 1e-6) << loss << " iteration " << row.iter << ": the bound is not trivial";
      EXPECT_GE(pl, floor * (1 - 1e-10)) << loss << " iteration " << row.iter;
    }
    EXPECT_EQ(diagnosed, 13) << loss;
  }
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
  EXPECT_NEAR(within_sequence_loss(data.Y, "sum").item<double>(), floor, 1e-13 * floor);
  const double N = static_cast<double>(c.data.num_samples);
  EXPECT_NEAR(within_sequence_loss(data.Y, "mean").item<double>(), floor / N, 1e-13 * floor);

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
    ASSERT_EQ(row.diagnostics.size(), diagnosed ? columns.size() : 0u) << "iteration " << i;
    if (!diagnosed) continue;
    // pl_ratio reads the gradient of this iteration, not of one GD has reached since
    const double pl_ratio = *value_of(columns, row.diagnostics, "pl_ratio");
    EXPECT_NEAR(pl_ratio, row.grad_norm * row.grad_norm / (2 * row.loss), 1e-12 * pl_ratio) << "iteration " << i;
  }
  // Iteration 0 diagnosed beside GD equals iteration 0 diagnosed in step (every 0).
  ExperimentConfig in_step = c;
  in_step.diagnostics.every = 0;
  const Trajectory reference = train_tiny(in_step);
  ASSERT_EQ(reference.rows.front().diagnostics.size(), columns.size());
  for (size_t k = 0; k < columns.size(); ++k) {
    const double a = t.rows.front().diagnostics[k], b = reference.rows.front().diagnostics[k];
    EXPECT_TRUE(same_or_both_nan(a, b)) << columns[k] << ": " << a << " vs " << b;
  }
}

void expect_same_rows(const Trajectory& a, const Trajectory& b, const std::string& what) {
  ASSERT_EQ(a.rows.size(), b.rows.size()) << what;
  for (size_t i = 0; i < a.rows.size(); ++i) {
    EXPECT_EQ(a.rows[i].loss, b.rows[i].loss) << what << ", iteration " << i;
    EXPECT_EQ(a.rows[i].grad_norm, b.rows[i].grad_norm) << what << ", iteration " << i;
    ASSERT_EQ(a.rows[i].diagnostics.size(), b.rows[i].diagnostics.size()) << what;
    for (size_t k = 0; k < a.rows[i].diagnostics.size(); ++k) {
      const double x = a.rows[i].diagnostics[k], y = b.rows[i].diagnostics[k];
      EXPECT_TRUE(same_or_both_nan(x, y)) << what << ", iteration " << i << ", column " << k;
    }
  }
}

TEST(Training, BlasThreadCountChangesNoNumber) {
  // The bench's small size: its products (256 x 16 x 256 and 256 x 256 x 16) are above
  // OpenBLAS's threading threshold, so with 2 threads both do work. Diagnoses every 5
  // switch the step's count between 1 and 2 while one runs beside it: for as long as it
  // runs where the kernels allow, so the run must come out the same on 1 and 2 threads;
  // for a fixed number of steps where they do not, so it must come out the same twice.
  ExperimentConfig c;
  c.data.num_samples = 32;
  c.data.seq_len = 8;
  c.data.dim = 16;
  c.data.target_dim = 16;
  c.model.ffn_width = 256;
  c.train.lr = 1e-3;
  c.train.max_iters = 30;
  c.diagnostics.every = 5;
  // float32 too: medium and large, the sizes that get a second thread, train in float32.
  // Both gradient sources multiply their token products through token_mm (oneDNN for
  // float32 where it is loaded, the BLAS otherwise), whose probe says which case holds.
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const std::string gradients : {"autograd", "analytic"}) {
      c.train.gradients = gradients;
      auto run_with = [&](int threads) {
        set_gd_blas_threads(threads);
        Trajectory t = train_tiny(c, dtype);
        set_gd_blas_threads(1);
        return t;
      };
      const std::string name = (dtype == torch::kFloat64 ? "float64, " : "float32, ") + gradients;
      const Trajectory two = run_with(2);
      expect_same_rows(two, run_with(2), name + ", 2 threads, run twice");
      const bool unchanged = token_products_change_no_number(dtype);
      if (unchanged) {
        expect_same_rows(run_with(1), two, name + ", 1 vs 2 threads");
      } else {
        std::cout << "[ NOTE     ] " << name << ": these kernels' products differ with the thread count\n";
      }
    }
  }
}

TEST(Training, TheDiagnosisWorkersPriorityIsLoweredForItsThreadAlone) {
  // train() lowers its diagnosis worker's priority (lower_this_threads_priority), so that
  // the step's own threads take the cores first; the GD thread keeps its own.
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
    lower_this_threads_priority();
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
  ASSERT_FALSE(t.rows.back().diagnostics.empty());
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
  // A thread per diagnosis cost more than a small diagnosis itself (training.cpp,
  // DiagnosisWorker): the run starts one worker and keeps it, at nice 10 or above.
  ExperimentConfig c = tiny_experiment();
  c.train.max_iters = 30;
  c.diagnostics.every = 2;  // 15 diagnoses on the worker
  train_tiny(c);             // the pools LibTorch and the BLAS start on first use
  const std::set<long> before = thread_ids();
  const int own_nice = getpriority(PRIO_PROCESS, 0);
  std::set<long> seen;  // threads alive at some row that were not there before the run
  std::vector<int> worker_nice;
  const Dataset data = make_dataset(c, torch::kCPU, torch::kFloat64);
  ResidualTransformer model(model_options(c));
  model->to(torch::kFloat64);
  train(*model, data, c, [&](const IterationRow&) {
    for (long id : thread_ids()) {
      if (before.count(id)) continue;
      seen.insert(id);
      errno = 0;
      const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(id));
      if (errno == 0) worker_nice.push_back(nice);  // unless it ended since the listing
    }
  });
  EXPECT_EQ(seen.size(), 1u) << "threads started during the run beside GD";
  ASSERT_FALSE(worker_nice.empty());
  for (int nice : worker_nice) EXPECT_EQ(nice, std::max(own_nice, 10));
  EXPECT_EQ(thread_ids(), before) << "the worker ends with its run";
}

}  // namespace
}  // namespace resgd
