#!/usr/bin/env bash
# resgd submit and resgd status against a real one-node Slurm (scripts/slurm_local.sh),
# each scenario on a cluster of its own:
#   tests/slurm_test.sh RESGD same_results|cancel_and_resume|requeue|failing_point
# Every scenario ends with results equal, bit for bit, to the same sweep run locally with
# --jobs 1 (the columns of wall time aside). Exit 77 (skip) where Slurm cannot be started
# (not root, no packages).
set -euo pipefail
resgd="$(realpath "$1")"
scenario="$2"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/resgd-slurm-test.XXXXXX)"
export RESGD_SLURM_DIR="$work/slurm-state"
cleanup() {
  "$root/scripts/slurm_local.sh" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
set +e
env_lines="$("$root/scripts/slurm_local.sh" start)"
rc=$?
set -e
[ "$rc" -eq 77 ] && exit 77
[ "$rc" -eq 0 ] || { echo "slurm_local.sh start failed ($rc)"; exit 1; }
eval "$env_lines"
cd "$work"

fail() { echo "FAIL ($scenario): $*"; exit 1; }

# Waits until none of this cluster's jobs is queued or running.
wait_for_jobs() {
  local deadline=$((SECONDS + ${1:-180}))
  while [ -n "$(squeue -h -o %i)" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { squeue; fail "jobs still queued after ${1:-180} s"; }
    sleep 1
  done
}

# Waits until FILE exists (a task's first checkpoint).
wait_for_file() {
  local deadline=$((SECONDS + 120))
  until [ -e "$1" ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$1 did not appear"
    sleep 0.2
  done
}

# The columns of a CSV file without those that time the run.
untimed() {
  python3 - "$1" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
keep = [i for i, name in enumerate(rows[0]) if name not in ("elapsed_s", "wall_time_s", "steps_per_s")]
for row in rows:
    print(",".join(row[i] for i in keep))
EOF
}

# The sweep in $1 equals the local one in $2: sweep.csv, every run's metrics.csv and final.pt.
same_as_local() {
  [ -f "$1/sweep.csv" ] || fail "$1/sweep.csv is missing"
  diff <(untimed "$1/sweep.csv") <(untimed "$2/sweep.csv") || fail "sweep.csv differs from the local sweep's"
  local n=0 run
  for run in $(cd "$2" && find runs -name metrics.csv -printf '%h\n'); do
    diff <(untimed "$1/$run/metrics.csv") <(untimed "$2/$run/metrics.csv") || fail "$run/metrics.csv differs"
    cmp -s "$1/$run/tensors/final.pt" "$2/$run/tensors/final.pt" || fail "$run/tensors/final.pt differs"
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] || fail "no runs compared"
}

# exp.yaml: runs long enough to be caught half-way, checkpointed every 200 steps.
#   long_runs NAME SWEEP
long_runs() {
  cat >exp.yaml <<EOF
name: $1
data: {num_samples: 16, seq_len: 8, dim: 16, target_dim: 4}
model: {ffn_width: 64}
train: {max_iters: 6000, lr: 0.02, rel_tolerance: 0, checkpoint_every: 200}
sweep: $2
EOF
}

# The first array job id of a sweep directory.
array_id() { awk '$1 == "array" { print $2; exit }' "$1/slurm/jobs"; }

case "$scenario" in
same_results)
  # 8 points: residual on and off, two step sizes, two seeds; two tasks at a time.
  cat >exp.yaml <<'EOF'
name: slurm8
data: {num_samples: 8, seq_len: 4, dim: 8, target_dim: 2}
model: {ffn_width: 16}
train: {max_iters: 100}
sweep:
  model.residual.attention: [true, false]
  train.lr: [0.02, 0.05]
  seeds: [0, 1]
EOF
  "$resgd" run exp.yaml --out local --jobs 1 >/dev/null
  "$resgd" submit exp.yaml --out cluster --max-parallel 2 --time 10 >submit.txt
  grep -q "submitted the array job" submit.txt || fail "submit said: $(cat submit.txt)"
  grep -q '^#SBATCH --array=0-7%2$' cluster/slurm/sweep.sbatch || fail "not an 8-task array throttled to 2"
  wait_for_jobs
  same_as_local cluster local
  [ -f cluster/report.md ] || fail "the report job wrote no report.md"
  "$resgd" status cluster >status.txt || fail "status exit $? with every point finished: $(cat status.txt)"
  grep -q "^8 points: 8 finished$" status.txt || fail "status counts: $(tail -1 status.txt)"
  ;;
cancel_and_resume)
  # Cancelled with tasks half-way (checkpoints every 200 steps), then resubmitted.
  long_runs slurmcancel "{model.residual.attention: [true, false], seeds: [0, 1]}"
  "$resgd" run exp.yaml --out local --jobs 1 >/dev/null
  "$resgd" submit exp.yaml --out cluster --max-parallel 2 >/dev/null
  wait_for_file "cluster/runs/model.residual.attention=true/seed=0/checkpoint.pt"
  scancel "$(array_id cluster)"
  wait_for_jobs
  set +e
  "$resgd" status cluster >status.txt
  rc=$?
  set -e
  [ "$rc" -ne 0 ] || fail "status exit 0 with points unfinished: $(cat status.txt)"
  grep -q "interrupted" status.txt || fail "no point interrupted after the cancel: $(cat status.txt)"
  [ ! -f cluster/sweep.csv ] || fail "sweep.csv written with points unfinished"
  "$resgd" submit cluster --resume >resume.txt
  grep -q "submitted the array job" resume.txt || fail "resubmit said: $(cat resume.txt)"
  wait_for_jobs
  same_as_local cluster local
  "$resgd" status cluster >status.txt || fail "status after the resumed sweep: $(cat status.txt)"
  # Resubmitting a finished sweep queues nothing; a changed configuration is refused.
  "$resgd" submit cluster --resume | grep -q "nothing to queue" || fail "a finished sweep was queued again"
  if "$resgd" submit exp.yaml --out cluster --resume --set train.lr=0.03 2>err.txt; then
    fail "a changed configuration was resubmitted"
  fi
  grep -q "train.lr is 0.02 there and 0.03 now" err.txt || fail "refusal said: $(cat err.txt)"
  # A seed added to the file grows the sweep: only its two new points (2 and 5) are queued.
  "$resgd" submit exp.yaml --out cluster --resume --set 'sweep.seeds=[0, 1, 2]' >grow.txt
  grep -q "submitted the array job" grow.txt || fail "the grown sweep said: $(cat grow.txt)"
  grep -q '^#SBATCH --array=2,5' cluster/slurm/sweep.sbatch || fail "not the two new points: $(grep array cluster/slurm/sweep.sbatch)"
  wait_for_jobs
  "$resgd" status cluster >status.txt || fail "status after the grown sweep: $(cat status.txt)"
  grep -q "^6 points: 6 finished$" status.txt || fail "status counts: $(tail -1 status.txt)"
  [ "$(wc -l <cluster/sweep.csv)" -eq 7 ] || fail "sweep.csv of the grown sweep: $(wc -l <cluster/sweep.csv) lines"
  ;;
requeue)
  # Task 0 requeued by Slurm (as a preemption does); task 1 warned of its time limit:
  # SIGTERM to the batch shell only, which requeues the task itself.
  long_runs slurmrequeue "{seeds: [0, 1]}"
  "$resgd" run exp.yaml --out local --jobs 1 >/dev/null
  "$resgd" submit exp.yaml --out cluster >/dev/null
  id="$(array_id cluster)"
  wait_for_file "cluster/runs/seed=0/checkpoint.pt"
  wait_for_file "cluster/runs/seed=1/checkpoint.pt"
  scontrol requeue "${id}_0"
  scancel --signal=TERM --batch "${id}_1"
  wait_for_jobs
  same_as_local cluster local
  for task in 0 1; do
    grep -q "run 1," "cluster/slurm/logs/${id}_${task}.out" || fail "task $task did not run again: $(cat "cluster/slurm/logs/${id}_${task}.out")"
  done
  grep -q "interrupted" "cluster/slurm/logs/${id}_1.out" || fail "task 1 did not checkpoint on the warning"
  "$resgd" status cluster >status.txt || fail "status: $(cat status.txt)"
  ;;
failing_point)
  # One point's data file is broken after submit (the array held until then): that point
  # fails with its error in the log and in status, the others finish, the report is written.
  "$resgd" run --set data.num_samples=6 --set train.max_iters=1 --set "sweep={}" --out donor >/dev/null
  cp donor/tensors/init.pt good.pt
  cp donor/tensors/init.pt bad.pt
  cat >exp.yaml <<'EOF'
name: slurmfail
data: {kind: tensors, path: good.pt}
model: {ffn_width: 16}
train: {max_iters: 50, lr: 0.01}
sweep:
  data.path: [good.pt, bad.pt]
  seeds: [0, 1]
EOF
  "$resgd" submit exp.yaml --out cluster --sbatch-arg=--hold >/dev/null
  id="$(array_id cluster)"
  head -c 100 donor/tensors/init.pt >bad.pt
  scontrol release "$id"
  wait_for_jobs
  set +e
  "$resgd" status cluster >status.txt
  rc=$?
  set -e
  [ "$rc" -ne 0 ] || fail "status exit 0 with a failed point"
  grep -q "^4 points: 2 finished, 2 failed$" status.txt || fail "status counts: $(cat status.txt)"
  grep "data.path=bad.pt/seed=0 .*failed (resgd: error: .*bad.pt" status.txt >/dev/null ||
    fail "the failed point's line lacks its error: $(cat status.txt)"
  [ -f cluster/report.md ] || fail "no report after a failed point"
  grep -q "bad.pt/seed=0" cluster/report.md || fail "the report does not name the failed point"
  [ ! -f cluster/sweep.csv ] || fail "sweep.csv written with a point failed"
  ;;
*)
  echo "unknown scenario: $scenario"
  exit 2
  ;;
esac
echo "ok ($scenario)"
