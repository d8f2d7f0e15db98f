// Plain full-batch gradient descent with stop rules: DESIGN.md, "Training".
#include "resgd/training.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <tuple>

#include "resgd/analytic_grad.h"
#include "resgd/diagnostics.h"
#include "resgd/products.h"
#include "resgd/system.h"

namespace resgd {
namespace {

/// With kernels whose numbers change with the thread count: the GD steps, each on one
/// thread, beside a diagnosis. On 2 cores (AMD Zen 5, Haswell kernels) one diagnosis took
/// 75-89 ms at the medium size, 1.5-1.8 one-thread steps, and 1.96 s at the large size,
/// 1.1-1.4; diagnostics every 10 then cost +6% to +9% at medium and +6% to +17% at large
/// (docs/performance.md, item 14).
constexpr int64_t kStepsBesideADiagnosis = 2;

/// Folds one logged row into the run's result (live rows and rows replayed on resume).
void record(TrainResult& result, const IterationRow& row) {
  if (row.iter == 0) {
    result.initial_loss = row.loss;
    result.initial_diagnostics = row.diagnostics;
  }
  if (!row.diagnostics.empty()) {
    result.final_diagnostics = row.diagnostics;
    result.diagnosed.push_back(row.diagnostics);
  }
  result.logged_iters.push_back(row.iter);
  result.logged_losses.push_back(row.loss);
  result.final_loss = row.loss;
  result.iters = row.iter;
}

/// Sum of squares of a CPU tensor's entries in double, four partial sums wide so that the
/// compiler may keep four multiply-adds in flight without reordering a single sum.
template <class Scalar>
double sum_of_squares(const torch::Tensor& t) {
  const auto contiguous = t.contiguous();
  const Scalar* x = contiguous.data_ptr<Scalar>();
  const int64_t count = contiguous.numel();
  double partial[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= count; i += 4)
    for (int k = 0; k < 4; ++k) partial[k] += static_cast<double>(x[i + k]) * static_cast<double>(x[i + k]);
  for (; i < count; ++i) partial[0] += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return (partial[0] + partial[1]) + (partial[2] + partial[3]);
}

/// The loss and ||grad|| (every gradient together, Frobenius) on the host. A GPU run reads
/// both in one transfer; on the CPU the gradients are read in place, since the tensor route
/// (norms, stacks, copy) is about ten LibTorch calls, 7% of a small step.
std::pair<double, double> read_loss_and_grad_norm(const LossAndGradients& state) {
  const bool on_host = std::all_of(state.grads.begin(), state.grads.end(), [](const torch::Tensor& g) {
    return g.device().is_cpu() && (g.scalar_type() == torch::kFloat64 || g.scalar_type() == torch::kFloat32);
  });
  if (on_host && state.loss.device().is_cpu()) {
    double grad_sq = 0;
    for (const auto& g : state.grads)
      grad_sq += g.scalar_type() == torch::kFloat64 ? sum_of_squares<double>(g) : sum_of_squares<float>(g);
    return {state.loss.item<double>(), std::sqrt(grad_sq)};
  }
  const torch::Tensor grad_norm = torch::stack(at::_foreach_norm(state.grads)).norm();
  const torch::Tensor host = torch::stack({state.loss.reshape({}), grad_norm}).to(torch::kCPU, torch::kFloat64);
  return {host[0].item<double>(), host[1].item<double>()};
}

/// The thread a run's trace diagnostics run on, started with the run's first diagnosis and
/// kept to its end. A thread per diagnosis (std::async) cost more than the diagnosis at
/// the small size: each new thread paid for its creation and its first touches of the heap
/// (docs/performance.md, item 17).
class DiagnosisWorker {
 public:
  DiagnosisWorker() = default;
  DiagnosisWorker(const DiagnosisWorker&) = delete;
  DiagnosisWorker& operator=(const DiagnosisWorker&) = delete;
  ~DiagnosisWorker() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();  // after the job in flight, if any
  }

  /// Runs `job` on the worker; at most one job at a time (the caller waits for the last).
  std::future<std::vector<double>> submit(std::function<std::vector<double>()> job) {
    std::packaged_task<std::vector<double>()> task(std::move(job));
    auto result = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = std::move(task);
    }
    if (!thread_.joinable()) thread_ = std::thread([this] { serve(); });
    wake_.notify_one();
    return result;
  }

 private:
  void serve() {
    lower_this_threads_priority();  // the worker's own: the step's threads come first (system.h)
    for (;;) {
      std::packaged_task<std::vector<double>()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return task_.valid() || stopping_; });
        if (!task_.valid()) return;  // stopping, nothing left to run
        task = std::move(task_);
      }
      task();  // an exception reaches the future
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::packaged_task<std::vector<double>()> task_;  // guarded by mutex_
  bool stopping_ = false;                           // guarded by mutex_
  std::thread thread_;
};

/// Rows on their way to the run's result and hooks, in iteration order. A diagnosed row's
/// trace diagnostics (the SVDs, most of a diagnosis) may be computed on a worker thread
/// while GD goes on, on a core the GD step leaves idle: the rows logged meanwhile wait
/// behind it, so the hooks still see every row in order, complete, though a row may reach
/// them a few iterations late: at the latest when the next diagnosis starts. At most one
/// diagnosis is in flight; its job keeps its trace alive until it is done.
class RowPipeline {
 public:
  explicit RowPipeline(std::function<void(const IterationRow&)> emit) : emit_(std::move(emit)) {}
  RowPipeline(const RowPipeline&) = delete;
  RowPipeline& operator=(const RowPipeline&) = delete;
  ~RowPipeline() {
    if (pending_.valid()) pending_.wait();  // unwinding: let the worker finish with its tensors
  }

  /// A complete row: emitted now, or held behind a diagnosis still in flight.
  void add(IterationRow row) {
    if (pending_.valid() && pending_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) drain();
    if (pending_.valid()) held_.push_back(std::move(row));
    else emit_(row);
  }

  /// A row whose diagnostics `job` computes on the worker thread.
  void add_diagnosed(IterationRow row, std::function<std::vector<double>()> job) {
    drain();
    held_.push_back(std::move(row));
    pending_ = worker_.submit(std::move(job));
  }

  /// Whether a diagnosis is still running on the worker thread.
  bool busy() const {
    return pending_.valid() && pending_.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
  }

  /// Waits for the diagnosis in flight and emits every held row; rethrows what the job threw.
  void drain() {
    if (!pending_.valid()) return;
    held_.front().diagnostics = pending_.get();
    for (const auto& row : held_) emit_(row);
    held_.clear();
  }

 private:
  std::function<void(const IterationRow&)> emit_;
  DiagnosisWorker worker_;  // before pending_: destroyed after the wait for it
  std::future<std::vector<double>> pending_;
  std::deque<IterationRow> held_;  // held_.front() is the diagnosed row
};

}  // namespace

TrainResult train(ResidualTransformerImpl& model, const Dataset& data, const ExperimentConfig& config,
                  const TrainHooks& hooks, const TrainCheckpoint* resume) {
  const TrainConfig& tc = config.train;
  const bool analytic = tc.gradients == "analytic";
  auto params = model.parameters();
  const auto diagnostic_names = diagnostic_columns(model.options.layers, config.diagnostics);

  TrainResult result;
  std::vector<torch::Tensor> theta_0;
  int64_t first_iter = 0;
  double elapsed_before = 0;
  if (resume) {
    TORCH_CHECK(resume->params.size() == params.size() && resume->theta_0.size() == params.size(),
                "checkpoint holds ", resume->params.size(), " parameters, the model ", params.size());
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(resume->params[i]);
    theta_0 = resume->theta_0;
    first_iter = resume->iter;
    elapsed_before = resume->elapsed_s;
    for (const auto& row : resume->rows) record(result, row);
  } else {
    for (const auto& p : params) theta_0.push_back(p.detach().clone());
  }

  double initial_loss = result.initial_loss;  // from the replayed rows on resume; set at t = 0
  DiagnosticsRunState diagnostics_state;  // e.g. warn once per run when the NTK is refused
  RowPipeline rows([&](const IterationRow& row) {
    record(result, row);
    if (hooks.on_row) hooks.on_row(row);
  });
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return elapsed_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  auto checkpoint = [&](int64_t t) {
    if (!hooks.on_checkpoint) return;
    rows.drain();  // a checkpoint follows the rows before it
    TrainCheckpoint c{t, {}, theta_0, elapsed(), {}};  // the rows are in metrics.csv already
    for (const auto& p : params) c.params.push_back(p.detach());
    hooks.on_checkpoint(c);
  };

  // OpenBLAS's thread count is process-wide: the step may use gd_blas_threads() only while
  // no diagnosis runs beside it, whose LAPACK calls would share (and fight over) the same
  // pool. OpenBLAS splits a product over threads by blocks of the result, each entry summed
  // in the same order, so the step's numbers do not depend on the count: the step takes
  // one thread for as long as a diagnosis happens to run. Some kernels' numbers do depend
  // on it (a probe finds them: system.h); with those the steps beside a diagnosis are a
  // fixed number, kStepsBesideADiagnosis, and the next one waits for it, so that which
  // steps ran on one thread is set by the iteration counts, never by timing. LAPACK's
  // reductions depend on the count too (in the last bits): diagnoses always run on one.
  // Where oneDNN multiplies the token products (products.h), their count is fixed for the
  // run whatever OpenBLAS's is, and OpenBLAS keeps one thread for what else the step
  // multiplies (autograd's batched attention products, at the bench's sizes below
  // OpenBLAS's threading threshold anyway): no number follows the count, and nothing waits.
  const auto dtype = params.front().scalar_type();
  const int step_blas_threads = token_products_follow_blas_threads(dtype) ? gd_blas_threads() : 1;
  const bool count_changes_numbers = step_blas_threads > 1 && !blas_threads_change_no_number(dtype);
  int64_t last_step_beside = -1;  // with such kernels: the last step beside the diagnosis in flight
  for (int64_t t = first_iter;; ++t) {
    if (tc.checkpoint_every > 0 && t > first_iter && t % tc.checkpoint_every == 0) {
      checkpoint(t);  // which waits for the diagnosis, as a run resumed here has none in flight
      last_step_beside = -1;
    }
    if (count_changes_numbers) {
      if (t == last_step_beside + 1) rows.drain();
      set_blas_threads(t <= last_step_beside ? 1 : step_blas_threads);
    } else {
      set_blas_threads(rows.busy() ? 1 : step_blas_threads);
    }
    LossAndGradients state = analytic ? analytic_gradients(model, data.X, data.Y, tc.loss)
                                      : autograd_gradients(model, data.X, data.Y, tc.loss);
    const bool last = t == tc.max_iters;
    const int64_t every = config.diagnostics.every;
    bool diagnose = t == 0 || (every > 0 && t % every == 0);
    const bool interrupted = hooks.stop_requested && hooks.stop_requested->load();
    if (t % tc.log_every == 0 || last || diagnose || interrupted) {
      IterationRow row;
      row.iter = t;
      // loss and ||grad|| come back together: one host-device sync per logged iteration
      std::tie(row.loss, row.grad_norm) = read_loss_and_grad_norm(state);
      if (t == 0) initial_loss = row.loss;
      if (!std::isfinite(row.loss) || row.loss > tc.divergence_factor * initial_loss) {
        result.status = "diverged";
      } else if (row.loss <= tc.tolerance || row.loss <= tc.rel_tolerance * initial_loss) {
        result.status = "converged";
        result.iters_to_tol = t;
      } else if (last) {
        result.status = "max_iters";
      } else if (interrupted) {
        result.status = "interrupted";
      }
      const bool final_row = !result.status.empty();
      diagnose = diagnose || final_row;  // the last iteration is always diagnosed

      // A non-finite loss (a run diverged, at iteration 0 too) leaves nothing a diagnostic
      // could measure: its cells stay empty.
      if (diagnose && !diagnostic_names.empty() && std::isfinite(row.loss)) {
        set_blas_threads(1);  // for the diagnosis, here or on the worker (see the loop's top)
        torch::NoGradGuard no_grad;
        const bool causal = model.options.block.causal;
        // theta_t is about to change: what reads it is computed now, the rest beside GD
        auto parameter_values =
            parameter_diagnostics({model, data.X, data.Y, tc.loss, state, theta_0, config.diagnostics, &diagnostics_state});
        auto job = [trace = state.trace, causal, parameter_values = std::move(parameter_values)] {
          torch::NoGradGuard no_grad_in_worker;  // grad mode is per thread
          auto values = trace_diagnostics(trace, causal);
          values.insert(values.end(), parameter_values.begin(), parameter_values.end());
          return read_back(values);
        };
        if (final_row || every == 0) {  // no later diagnosis to overlap with: rows stay in step
          rows.drain();
          row.diagnostics = job();
          row.elapsed_s = elapsed();
          rows.add(row);
        } else {
          row.elapsed_s = elapsed();
          rows.add_diagnosed(row, std::move(job));
          last_step_beside = t + kStepsBesideADiagnosis;
        }
      } else {
        row.elapsed_s = elapsed();
        rows.add(row);
      }
      if (final_row) {
        rows.drain();
        if (result.status == "interrupted") checkpoint(t);  // theta_t: iteration t is redone on resume
        break;
      }
    }
    torch::NoGradGuard no_grad;
    at::_foreach_add_(params, state.grads, -tc.lr);  // theta <- theta - lr grad, one dispatch
  }
  result.wall_time_s = elapsed();
  const double steps = static_cast<double>(result.iters - first_iter);
  result.steps_per_s = result.wall_time_s > elapsed_before ? steps / (result.wall_time_s - elapsed_before) : 0.0;
  return result;
}

}  // namespace resgd
