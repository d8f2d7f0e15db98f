#!/usr/bin/env bash
# slurm_local.sh: a real one-node Slurm cluster on this machine, for the tests.
#
#   scripts/slurm_local.sh start   start munged, slurmctld and slurmd; print `export ...` lines
#   scripts/slurm_local.sh env     print those `export ...` lines again (needs RESGD_SLURM_DIR)
#   scripts/slurm_local.sh status  say whether the recorded daemons are alive (exit 0 only if all are)
#   scripts/slurm_local.sh stop    cancel the jobs, stop the recorded daemons, remove the state folder
#
# Typical use:
#   eval "$(scripts/slurm_local.sh start)" || exit     # sets SLURM_CONF and RESGD_SLURM_DIR
#   sbatch --wrap 'hostname'; squeue; ...
#   scripts/slurm_local.sh stop
#
# Exit codes: 0 ok; 1 error (message on stderr, naming the log file); 77 "skip" (`start` only):
# not root (the daemons run as root; Slurm/munge are installed with apt-get when missing and we
# are root), the reason is on stderr for a test harness to show; 3 (`status` only): some or all
# recorded daemons are not running. `stop` of a state folder that no longer exists is a no-op.
# stdout of `start`/`env` is only the `export` lines; progress and errors go to stderr.
#
# Everything lives in one state folder: $RESGD_SLURM_DIR if set, else a fresh
# mktemp -d /tmp/resgd-slurm.XXXXXX. It holds slurm.conf, plugstack.conf, the munge key, socket,
# pid and log, the slurmctld state and slurmd spool dirs, the logs (log/), the PIDs this script
# started (pids), the client environment (env) and the completed-jobs log (jobcomp.log). The
# system-wide /etc/slurm config, /etc/munge key and the system munge socket are never used: munged
# runs with --socket=$STATE/munge/munge.socket and its own key, and slurm.conf's
# AuthInfo=socket=... points both auth/munge and cred/munge at it.
# No systemd: the daemons run in the foreground (-D/-F) under setsid, in the background.
# The TCP ports (SlurmctldPort, SlurmdPort) are picked free, outside the ephemeral range.
#
# Environment knobs (read by `start`):
#   RESGD_SLURM_DIR        state folder (created if missing; must be empty or one of ours)
#   RESGD_SLURM_KILL_WAIT  slurm.conf KillWait: seconds between SIGTERM and SIGKILL on scancel,
#                          requeue and time limit (default 10; Slurm's default is 30)
#   RESGD_SLURM_CRED_EXPIRE  AuthInfo cred_expire: job credential lifetime, which is also the
#                          delay before a requeued job may start again: it is eligible
#                          cred_expire+1 s after the requeue (default 10, at least 5; Slurm's: 120)
#   RESGD_SLURM_MIN_JOB_AGE  slurm.conf MinJobAge: seconds a finished job stays visible to
#                          squeue/scontrol (default 60)
#   RESGD_SLURM_TIMEOUT    seconds `start` waits for the node to become idle (default 30)
# `stop` keeps the state folder when RESGD_SLURM_KEEP=1 or with `stop --keep`.
#
# Accounting: Debian 12 ships Slurm 22.05 without slurmdbd-free accounting storage (the
# accounting_storage/filetxt plugin is long gone), so this cluster runs with
# AccountingStorageType=accounting_storage/none and `sacct` cannot answer (it errors
# "Slurm accounting storage is disabled"). For final job states use
#   scontrol show job <id>   (within MinJobAge after the job ends), or
#   $RESGD_SLURM_DIR/jobcomp.log  (JobCompType=jobcomp/filetxt: one line per finished job or
#                             array task, with JobId=, JobState=, ExitCode= ..., never pruned).
#
# Behaviour of this cluster (Slurm 22.05.8, checked by hand with the script):
# - A job starts 0-1 s after sbatch (the scheduler ticks every second); `start` takes ~1-2 s.
# - scancel JOB or JOB_TASK, scontrol requeue and the time limit send SIGCONT and SIGTERM to
#   every process of the job (batch shell and its children), then SIGKILL after KillWait.
#   `scancel --signal=SIG --batch` signals the batch shell only, `--full` the shell and its
#   children, plain `scancel --signal=SIG` only srun steps (none in a plain batch job).
# - `--signal=B:SIG@T` sends SIG to the batch shell only, about T s before the time limit (the
#   limit checks run periodically: seen 1-3 s off, and the limit itself enforced 13-14 s late,
#   Slurm allows up to ~30 s), and slurmstepd writes a spurious
#   "*** JOB n ON host CANCELLED AT ... ***" line to the job's output. The batch script must
#   forward it: run the program in the background, trap SIG and kill -SIG it, and `wait` again
#   until it has exited (the first `wait` returns early, rc > 128, when the trap runs).
# - Jobs are requeueable by default (JobRequeue=1; sbatch --no-requeue opts out, and then
#   `scontrol requeue` fails with "Requested operation is presently disabled"). A requeued job
#   or array task reruns with the same job id, SLURM_RESTART_COUNT=1,2,... (unset on the first
#   run), after cred_expire+1 s; its --output is truncated unless --open-mode=append.

set -euo pipefail

prog=slurm_local.sh
err() { printf '%s: ERROR: %s\n' "$prog" "$*" >&2; }
note() { printf '%s: %s\n' "$prog" "$*" >&2; }

daemons=(munged slurmctld slurmd)
clients=(sbatch squeue scontrol scancel sinfo sacct)

find_missing() {  # prints the missing commands
  local c
  for c in "${daemons[@]}" "${clients[@]}"; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || printf '%s ' "$c"
  done
}

ensure_installed() {
  export PATH="$PATH:/usr/sbin:/sbin"
  local missing
  missing="$(find_missing)"
  [ -n "$missing" ] || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "$prog: skip: Slurm/munge not installed (missing: $missing) and not root, cannot install" \
         "(as root: apt-get install slurmctld slurmd slurm-client munge)" >&2
    exit 77
  fi
  command -v apt-get >/dev/null 2>&1 || { echo "$prog: skip: missing $missing and no apt-get" >&2; exit 77; }
  # Scenarios start side by side (ctest -j2): one installs, the others wait for it and find
  # the packages there (two apt-gets at once fail on apt's own lock).
  local install_lock
  exec {install_lock}>"${TMPDIR:-/tmp}/resgd-slurm-install.lock"
  flock "$install_lock"
  missing="$(find_missing)"
  if [ -z "$missing" ]; then
    exec {install_lock}>&-
    return 0
  fi
  note "installing slurmctld slurmd slurm-client munge (missing: $missing)"
  # Keep the packages' maintainer scripts from starting the system munge/slurm services: put a
  # policy-rc.d that denies starting services in place if there is none, for the install only.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from %s\nexit 101\n' "$prog" >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local rc=0
  { apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge; } >&2 || rc=$?
  [ "$made_policy" = 0 ] || rm -f "$policy"
  exec {install_lock}>&-
  if [ "$rc" != 0 ]; then err "apt-get install failed (rc $rc)"; exit 1; fi
  missing="$(find_missing)"
  if [ -n "$missing" ]; then err "still missing after install: $missing"; exit 1; fi
}

# ---- state folder and recorded processes -------------------------------------------------------

state_marker=.resgd-slurm  # marks a folder as one of ours

start_time_of() {  # start time (clock ticks since boot) of PID, empty if gone
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"  # drop "pid (comm) "; the start time is then field 20
  # shellcheck disable=SC2086
  set -- $stat
  printf '%s' "${20}"
}

# pids file lines: NAME PID STARTTIME
alive() {  # alive PID STARTTIME: the very process we started is still there (not a reused PID)
  [ -n "$1" ] && [ -e "/proc/$1" ] && [ "$(start_time_of "$1")" = "$2" ] &&
    ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

record_pid() {  # record_pid NAME PID
  local st
  st="$(start_time_of "$2")"
  echo "$1 $2 $st" >>"$STATE/pids"
}

env_lines() {
  printf 'export SLURM_CONF=%q\n' "$STATE/slurm.conf"
  printf 'export RESGD_SLURM_DIR=%q\n' "$STATE"
}

need_state() {
  STATE="${RESGD_SLURM_DIR:-}"
  if [ -z "$STATE" ]; then err "RESGD_SLURM_DIR is not set (eval the output of '$prog start')"; exit 1; fi
  if [ ! -e "$STATE/$state_marker" ]; then err "$STATE is not a $prog state folder"; exit 1; fi
}

status_counts() {  # sets n_alive n_total
  n_alive=0 n_total=0
  [ -f "$STATE/pids" ] || return 0
  local name pid st
  while read -r name pid st; do
    n_total=$((n_total + 1))
    if alive "$pid" "$st"; then n_alive=$((n_alive + 1)); fi
  done <"$STATE/pids"
}

# ---- ports -------------------------------------------------------------------------------------

port_free() {
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    s.bind(("", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
  else  # nobody listening on it (a connect fails)
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 1; fi
  fi
}

pick_port() {  # a free port in 20000..32699 (below Linux's ephemeral range), not in $*
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 12700))
    case " $* " in *" $p "*) continue ;; esac
    if port_free "$p"; then echo "$p"; return 0; fi
  done
  err "no free TCP port found"; return 1
}

# ---- start -------------------------------------------------------------------------------------

write_conf() {
  local node=$1 ctld_port=$2 d_port=$3
  local hw cpus mem_mb real_mem
  # slurmd -C prints the node's real layout: NodeName=x CPUs=2 Boards=1 SocketsPerBoard=1 ...
  hw="$(SLURM_CONF=/dev/null slurmd -C 2>/dev/null | head -n1)" || hw=
  cpus="$(nproc)"
  mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
  real_mem=$(( mem_mb * 9 / 10 ))
  [ "$real_mem" -ge 1 ] || real_mem=1
  local layout="CPUs=$cpus"
  if [[ "$hw" =~ CPUs=([0-9]+)\ Boards=([0-9]+)\ SocketsPerBoard=([0-9]+)\ CoresPerSocket=([0-9]+)\ ThreadsPerCore=([0-9]+) ]] \
     && [ "${BASH_REMATCH[1]}" = "$cpus" ]; then
    layout="CPUs=$cpus Boards=${BASH_REMATCH[2]} SocketsPerBoard=${BASH_REMATCH[3]} CoresPerSocket=${BASH_REMATCH[4]} ThreadsPerCore=${BASH_REMATCH[5]}"
  fi
  local cred_expire="${RESGD_SLURM_CRED_EXPIRE:-10}"
  [ "$cred_expire" -ge 5 ] 2>/dev/null || cred_expire=5  # Slurm ignores values under 5 (uses 120)
  : >"$STATE/plugstack.conf"  # empty: not the system's /etc/slurm/plugstack.conf
  cat >"$STATE/slurm.conf" <<EOF
# Written by $prog for a throwaway one-node cluster; state in $STATE.
ClusterName=resgd
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SrunPortRange=33000-33999

AuthType=auth/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$STATE/munge/munge.socket,cred_expire=$cred_expire
CredType=cred/munge

SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$STATE/plugstack.conf
MailProg=/bin/true
TmpFS=/tmp

# No cgroups and no systemd: track processes by parent chain, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.log
MpiDefault=none
SwitchType=switch/none

# Scheduling: each 1-CPU job gets one CPU, so $cpus run at once; start jobs as soon as possible.
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
KillWait=${RESGD_SLURM_KILL_WAIT:-10}
MinJobAge=${RESGD_SLURM_MIN_JOB_AGE:-60}
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
MessageTimeout=10
MaxArraySize=10001

NodeName=$node NodeAddr=127.0.0.1 $layout RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

spawn() {  # spawn NAME LOG CMD...: run CMD detached (setsid), in the background, and record it
  local name=$1 log=$2
  shift 2
  # setsid: not in the caller's process group; stdio away from the caller (eval "$(start)" must
  # not wait for the daemons' stdout). RESGD_SLURM_STATE marks every process they start.
  RESGD_SLURM_STATE="$STATE" SLURM_CONF="$STATE/slurm.conf" \
    setsid "$@" </dev/null >>"$log" 2>&1 &
  local pid=$!
  record_pid "$name" "$pid"
}

start_failed() {  # start_failed MESSAGE LOG
  err "$1; see $2"
  [ ! -s "$2" ] || { echo "--- last lines of $2:" >&2; tail -n 15 "$2" >&2; }
  RESGD_SLURM_KEEP=1 do_stop >/dev/null 2>&1 || true
  err "daemons stopped; state folder kept for inspection: $STATE (remove it with: RESGD_SLURM_DIR=$STATE $0 stop)"
  exit 1
}

do_start() {
  ensure_installed
  STATE="${RESGD_SLURM_DIR:-}"
  if [ "$(id -u)" != 0 ]; then
    echo "$prog: skip: the Slurm daemons must run as root here (SlurmUser=root, SlurmdUser=root);" \
         "run '$prog start' as root" >&2
    exit 77
  fi
  if [ -n "$STATE" ] && [ -e "$STATE/$state_marker" ] && [ -f "$STATE/pids" ]; then
    status_counts
    if [ "$n_total" -gt 0 ] && [ "$n_alive" = "$n_total" ]; then
      note "reusing the running cluster in $STATE"
      env_lines
      return 0
    fi
    err "$STATE holds a cluster that is not fully running ($n_alive of $n_total daemons alive); run '$0 stop' first"
    exit 1
  fi
  if [ -n "$STATE" ]; then
    mkdir -p "$STATE"
    if [ ! -e "$STATE/$state_marker" ] && [ -n "$(ls -A "$STATE")" ]; then
      err "RESGD_SLURM_DIR=$STATE exists, is not empty and is not one of ours; refusing to use it"
      exit 1
    fi
  else
    STATE="$(mktemp -d /tmp/resgd-slurm.XXXXXX)"
  fi
  STATE="$(cd "$STATE" && pwd -P)"
  local t0=$SECONDS
  touch "$STATE/$state_marker"
  chmod 755 "$STATE"  # clients of other users may read slurm.conf and reach the munge socket
  mkdir -p "$STATE/munge" "$STATE/ctld" "$STATE/spool" "$STATE/run" "$STATE/log"
  chmod 755 "$STATE/munge"
  chmod 700 "$STATE/ctld" "$STATE/spool"

  local node ctld_port d_port
  node="$(hostname -s)"
  [ -n "$node" ] || { err "hostname -s is empty"; exit 1; }
  ctld_port="$(pick_port)"
  d_port="$(pick_port "$ctld_port")"
  write_conf "$node" "$ctld_port" "$d_port"
  env_lines >"$STATE/env"

  # munge: our own key, socket, pid, seed and log (munged checks the key is 0600 and owned by us)
  local key="$STATE/munge/munge.key"
  if command -v mungekey >/dev/null 2>&1 || [ -x /usr/sbin/mungekey ]; then
    PATH="$PATH:/usr/sbin" mungekey --create --keyfile="$key" >/dev/null
  else
    dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
  fi
  chmod 600 "$key"
  local mlog="$STATE/log/munged.log"
  spawn munged "$mlog" munged --foreground --force --socket="$STATE/munge/munge.socket" \
    --key-file="$key" --log-file="$mlog" --pid-file="$STATE/munge/munged.pid" \
    --seed-file="$STATE/munge/munged.seed"
  local i
  for i in $(seq 1 100); do
    [ -S "$STATE/munge/munge.socket" ] && break
    status_counts; [ "$n_alive" = "$n_total" ] || start_failed "munged exited" "$mlog"
    sleep 0.1
  done
  [ -S "$STATE/munge/munge.socket" ] || start_failed "munged did not create its socket in 10 s" "$mlog"

  local clog="$STATE/log/slurmctld.log" dlog="$STATE/log/slurmd.log"
  spawn slurmctld "$STATE/log/slurmctld.out" slurmctld -D -i -f "$STATE/slurm.conf"
  spawn slurmd "$STATE/log/slurmd.out" slurmd -D -f "$STATE/slurm.conf" -N "$node"

  export SLURM_CONF="$STATE/slurm.conf"
  local timeout="${RESGD_SLURM_TIMEOUT:-30}" state="" up=0
  local deadline=$((SECONDS + timeout))
  while [ "$SECONDS" -lt "$deadline" ]; do
    status_counts
    if [ "$n_alive" != "$n_total" ]; then
      local name pid st which=""
      while read -r name pid st; do alive "$pid" "$st" || which="$name"; done <"$STATE/pids"
      case "$which" in
        slurmctld) start_failed "slurmctld exited" "$clog" ;;
        slurmd) start_failed "slurmd exited" "$dlog" ;;
        *) start_failed "munged exited" "$mlog" ;;
      esac
    fi
    if [ "$up" = 0 ] && scontrol ping 2>/dev/null | grep -q 'is UP'; then up=1; fi
    if [ "$up" = 1 ]; then
      state="$(sinfo -h -n "$node" -o '%T' 2>/dev/null | head -n1)"
      case "$state" in idle | mixed | allocated) break ;; esac
    fi
    sleep 0.2
  done
  case "$state" in
    idle | mixed | allocated) ;;
    *)
      if [ "$up" = 0 ]; then start_failed "slurmctld did not answer 'scontrol ping' within ${timeout}s" "$clog"
      else start_failed "node $node not idle within ${timeout}s (state '${state:-none}')" "$dlog"; fi ;;
  esac
  note "cluster up in $((SECONDS - t0))s: node $node ($state), ports ctld $ctld_port slurmd $d_port, state $STATE"
  env_lines
}

# ---- stop --------------------------------------------------------------------------------------

# Leftovers of this cluster, should slurmd die before its jobs: the processes carrying
# RESGD_SLURM_STATE=$STATE in their environment (set for the daemons we started), every
# slurmstepd that has this cluster's slurmd log open (slurmd starts it with a clean environment),
# and all their descendants (the jobs' processes).
leftover_pids() {
  local d pid comm seeds=() f
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    [ "$pid" != "$$" ] || continue
    if grep -qzxF "RESGD_SLURM_STATE=$STATE" "$d/environ" 2>/dev/null; then seeds+=("$pid"); continue; fi
    comm="$(cat "$d/comm" 2>/dev/null)" || continue
    [ "$comm" = slurmstepd ] || continue
    for f in "$d"/fd/*; do
      if [ "$(readlink "$f" 2>/dev/null)" = "$STATE/log/slurmd.log" ]; then seeds+=("$pid"); break; fi
    done
  done
  [ "${#seeds[@]}" -gt 0 ] || return 0
  # seeds and their descendants, from the ppid of every process
  local stat rest ppid
  declare -A kids=()
  for d in /proc/[0-9]*; do
    stat="$(cat "$d/stat" 2>/dev/null)" || continue
    rest="${stat##*) }"; ppid="${rest#* }"; ppid="${ppid%% *}"
    kids[$ppid]+=" ${d#/proc/}"
  done
  local -a queue=("${seeds[@]}")
  while [ "${#queue[@]}" -gt 0 ]; do
    pid="${queue[0]}"; queue=("${queue[@]:1}")
    [ "$pid" != "$$" ] || continue
    echo "$pid"
    # shellcheck disable=SC2206
    [ -z "${kids[$pid]:-}" ] || queue+=(${kids[$pid]})
  done
}

do_stop() {
  local keep="${RESGD_SLURM_KEEP:-0}"
  [ "${1:-}" != --keep ] || keep=1
  if [ -n "${RESGD_SLURM_DIR:-}" ] && [ ! -e "$RESGD_SLURM_DIR" ]; then
    note "$RESGD_SLURM_DIR does not exist; nothing to stop"
    return 0
  fi
  need_state
  export SLURM_CONF="$STATE/slurm.conf"
  status_counts
  local name pid st i kill_wait
  kill_wait="$(sed -n 's/^KillWait=\([0-9]*\).*/\1/p' "$STATE/slurm.conf" 2>/dev/null)"
  # 1. Cancel the jobs through Slurm while it is up, so their processes end the normal way.
  if [ "$n_alive" -gt 0 ] && command -v squeue >/dev/null 2>&1; then
    local jobs
    jobs="$(timeout 10 squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')" || jobs=
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs 2>/dev/null || true
      for i in $(seq 1 $(( (${kill_wait:-30} + 5) * 5 ))); do
        [ -n "$(timeout 5 squeue -h -t PD,CF,R,S,CG -o '%A' 2>/dev/null)" ] || break
        sleep 0.2
      done
    fi
  fi
  # 2. Stop the recorded daemons (slurmd, slurmctld, then munged), only if they are still the
  #    very processes we started (same PID and start time).
  local -a recs=()
  if [ -f "$STATE/pids" ]; then mapfile -t recs <"$STATE/pids"; fi
  for ((i = ${#recs[@]} - 1; i >= 0; i--)); do
    read -r name pid st <<<"${recs[$i]}"
    if alive "$pid" "$st"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do alive "$pid" "$st" || break; sleep 0.1; done
      if alive "$pid" "$st"; then
        note "$name ($pid) did not exit on SIGTERM in 5 s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do alive "$pid" "$st" || break; sleep 0.1; done
      fi
    fi
  done
  # 3. Leftovers (e.g. a slurmstepd and its job, if the job outlived the cancel).
  local left
  left="$(leftover_pids | sort -un | tr '\n' ' ')"
  if [ -n "${left// /}" ]; then
    note "killing leftover processes of this cluster: $left"
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    sleep 0.2
  fi
  status_counts
  if [ "$n_alive" -gt 0 ]; then err "$n_alive recorded daemon(s) still alive; state kept in $STATE"; return 1; fi
  if [ "$keep" = 1 ]; then
    note "stopped; state folder kept: $STATE"
  else
    rm -rf -- "$STATE"
    note "stopped; removed $STATE"
  fi
}

# ---- status ------------------------------------------------------------------------------------

do_status() {
  need_state
  local name pid st
  if [ ! -f "$STATE/pids" ]; then echo "no daemons recorded in $STATE"; exit 3; fi
  while read -r name pid st; do
    if alive "$pid" "$st"; then echo "$name: running (pid $pid)"; else echo "$name: not running (pid $pid)"; fi
  done <"$STATE/pids"
  status_counts
  echo "state: $STATE"
  [ "$n_total" -gt 0 ] && [ "$n_alive" = "$n_total" ] || exit 3
}

case "${1:-}" in
  start) do_start ;;
  stop) shift; do_stop "$@" ;;
  status) do_status ;;
  env) need_state; env_lines ;;
  *) echo "usage: $0 start|stop [--keep]|status|env" >&2; exit 2 ;;
esac
