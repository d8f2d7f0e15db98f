# Shared by the check scripts (gpu_check.sh, torch2_check.sh), sourced after they set
# `check_name`: progress lines, one result line per check, and the table printed last.

say() { printf '\n== %s: %s\n' "$check_name" "$*"; }
die() { printf '\n%s: ERROR: %s\n' "$check_name" "$*" >&2; exit 1; }

declare -A result=()  # check -> its one-line result
failed=0
record() {  # record CHECK ok|FAIL|skip TEXT
  result[$1]="$(printf '%-5s %s' "$2" "$3")"
  [ "$2" != FAIL ] || failed=1
}

print_results() {  # print_results WHAT CHECK...: the recorded checks, in this order, and the verdict
  printf '\n== %s: results (%s)\n' "$check_name" "$1"
  shift
  printf '%-12s %s\n' check result
  local check
  for check in "$@"; do
    [ -z "${result[$check]:-}" ] || printf '%-12s %s\n' "$check" "${result[$check]}"
  done
  [ "$failed" = 0 ] && echo "$check_name: every check passed" || echo "$check_name: SOME CHECKS FAILED"
}
