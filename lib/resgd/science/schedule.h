// When a run's diagnoses are computed: in step with GD (the reference backend), or on a
// worker thread while GD goes on (the tuned backend's `worker` tuning). Either way the
// rows reach the run in iteration order, complete.
#pragma once

#include <functional>
#include <memory>

#include "resgd/compute/compute.h"
#include "resgd/science/iteration.h"

namespace resgd {

/// A begun diagnosis (begin_diagnosis): computes the rest of it from the forward trace.
using DiagnosisJob = std::function<Diagnosis()>;

/// Takes a run's logged rows and emits them in order with their diagnoses. With the
/// worker, a diagnosed row's job runs on the run's one worker thread (started at the
/// first diagnosis, kept to the end, at a lower priority so that the step's threads come
/// first), and the rows logged meanwhile wait behind it: a row may reach `emit` a few
/// iterations late, at the latest when the next diagnosis starts. At most one diagnosis
/// is in flight. Without the worker every row is emitted as it is added.
class DiagnosisSchedule {
 public:
  DiagnosisSchedule(const compute::Policy& policy, std::function<void(const IterationRow&)> emit);
  ~DiagnosisSchedule();
  DiagnosisSchedule(const DiagnosisSchedule&) = delete;
  DiagnosisSchedule& operator=(const DiagnosisSchedule&) = delete;

  /// A logged row, and its diagnosis where `job` is given. `last`: no diagnosis follows
  /// (the run's last row, or diagnostics only at the first and last iteration), so its
  /// job runs now, in step.
  void add(IterationRow row, DiagnosisJob job = nullptr, bool last = false);

  /// Waits for the diagnosis in flight and emits every row held; rethrows what its job
  /// threw. Before a checkpoint, and at the end.
  void drain();

 private:
  class Worker;
  std::function<void(const IterationRow&)> emit_;
  std::unique_ptr<Worker> worker_;  // null: in step
};

}  // namespace resgd
