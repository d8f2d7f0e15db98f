// The diagnosis schedule (schedule.h): in step, or on one worker thread per run.
#include "resgd/science/schedule.h"

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "resgd/compute/process.h"

namespace resgd {

/// The run's worker thread and the rows waiting behind its diagnosis. One thread for the
/// whole run: a thread per diagnosis cost more than a small diagnosis itself (its creation
/// and its first touches of the heap).
class DiagnosisSchedule::Worker {
 public:
  explicit Worker(const compute::Policy& policy) : policy_(policy) {}
  ~Worker() {
    if (pending_.valid()) pending_.wait();  // unwinding: let the job finish with its tensors
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  /// Whether a diagnosis is still in flight.
  bool busy() const {
    return pending_.valid() && pending_.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
  }

  /// Starts `job` for `row` (held until it is done); the previous one must be drained.
  void start(IterationRow row, DiagnosisJob job) {
    held_.push_back(std::move(row));
    std::packaged_task<Diagnosis()> task(std::move(job));
    pending_ = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = std::move(task);
    }
    if (!thread_.joinable()) thread_ = std::thread([this] { serve(); });
    wake_.notify_one();
  }

  void hold(IterationRow row) { held_.push_back(std::move(row)); }
  /// Whether rows wait behind a diagnosis not yet drained (done or not).
  bool holding() const { return !held_.empty(); }

  /// The held rows, the diagnosed one completed, after its job is done.
  std::deque<IterationRow> finish() {
    if (!pending_.valid()) return {};
    held_.front().diagnosis = pending_.get();
    return std::exchange(held_, {});
  }

 private:
  void serve() {
    compute::lower_this_threads_priority();  // the step's threads come first
    const compute::Scope scope(policy_);     // the run's products, on this thread too
    for (;;) {
      std::packaged_task<Diagnosis()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return task_.valid() || stopping_; });
        if (!task_.valid()) return;
        task = std::move(task_);
      }
      task();  // an exception reaches the future
    }
  }

  const compute::Policy& policy_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::packaged_task<Diagnosis()> task_;  // guarded by mutex_
  bool stopping_ = false;                 // guarded by mutex_
  std::thread thread_;
  std::future<Diagnosis> pending_;
  std::deque<IterationRow> held_;  // held_.front() is the diagnosed row
};

DiagnosisSchedule::DiagnosisSchedule(const compute::Policy& policy, std::function<void(const IterationRow&)> emit)
    : emit_(std::move(emit)),
      worker_(policy.uses(compute::Tuning::worker) ? std::make_unique<Worker>(policy) : nullptr) {}

DiagnosisSchedule::~DiagnosisSchedule() = default;

void DiagnosisSchedule::add(IterationRow row, DiagnosisJob job, bool last) {
  if (worker_ && !worker_->busy()) drain();  // a finished diagnosis lets its rows go
  if (job && (last || !worker_)) {           // in step
    drain();
    row.diagnosis = job();
  } else if (job) {
    drain();  // at most one diagnosis in flight
    worker_->start(std::move(row), std::move(job));
    return;
  }
  // Whether rows are held, not whether the job still runs: it may finish between two
  // looks, and a row emitted then would pass the rows held before it.
  if (worker_ && worker_->holding())
    worker_->hold(std::move(row));
  else
    emit_(row);
}

void DiagnosisSchedule::drain() {
  if (!worker_) return;
  for (const auto& row : worker_->finish()) emit_(row);
}

}  // namespace resgd
