#!/usr/bin/env bash
# The step behind action.yml: run one gwconfig command with the action's inputs.
# Inputs arrive as GWCONFIG_ACTION_* variables (never spliced into the script text, so a value
# cannot inject shell); outputs go to $GITHUB_OUTPUT and the report to $GITHUB_STEP_SUMMARY.
set -euo pipefail

command=${GWCONFIG_ACTION_COMMAND:-validate}
path=${GWCONFIG_ACTION_PATH:-providers.d}
report=${GWCONFIG_ACTION_REPORT:-}
if [ -z "$report" ]; then
  report="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/gwconfig-$command-$$.out"
fi

is_true() { case "${1:-}" in true | True | TRUE | yes | 1) return 0 ;; *) return 1 ;; esac }

args=()
[ -n "${GWCONFIG_ACTION_ENV:-}" ] && args+=(--env "$GWCONFIG_ACTION_ENV")
case "$command" in
  validate)
    args+=(--format "${GWCONFIG_ACTION_FORMAT:-github}")
    ;;
  plan)
    # the saved plan exists only when planning succeeded: exit 2 then means "changes",
    # not a usage error (click's exit code is 2 as well)
    plan_file="${report%.out}.plan.json"
    rm -f "$plan_file"
    is_true "${GWCONFIG_ACTION_PRUNE:-false}" && args+=(--prune)
    args+=(--format "${GWCONFIG_ACTION_FORMAT:-markdown}" --detailed-exitcode --out "$plan_file")
    ;;
  apply)
    is_true "${GWCONFIG_ACTION_PRUNE:-false}" && args+=(--prune)
    args+=(--auto-approve --format "${GWCONFIG_ACTION_FORMAT:-text}")
    args+=(--lock-timeout "${GWCONFIG_ACTION_LOCK_TIMEOUT:-300}")
    [ -n "${GWCONFIG_ACTION_ACTOR:-}" ] && args+=(--actor "$GWCONFIG_ACTION_ACTOR")
    [ -n "${GWCONFIG_ACTION_MAX_DELETES:-}" ] && args+=(--max-deletes "$GWCONFIG_ACTION_MAX_DELETES")
    ;;
  *)
    echo "::error title=gwconfig action::unknown command '$command' (validate, plan or apply)"
    exit 1
    ;;
esac
extra=()
if [ -n "${GWCONFIG_ACTION_ARGS:-}" ]; then
  read -r -a extra <<<"$GWCONFIG_ACTION_ARGS"
fi

if [ "$command" = apply ] && is_true "${GWCONFIG_ACTION_UPGRADE:-true}"; then
  gwconfig db upgrade
fi

set +e
gwconfig "$command" "$path" "${args[@]}" "${extra[@]}" | tee "$report"
code=${PIPESTATUS[0]}
set -e

if [ -n "${GITHUB_OUTPUT:-}" ]; then
  { echo "exitcode=$code"; echo "report=$report"; } >>"$GITHUB_OUTPUT"
  [ "$command" = plan ] && [ -f "$plan_file" ] && echo "plan-file=$plan_file" >>"$GITHUB_OUTPUT"
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ "$command" != validate ]; then
  if [ "$command" = plan ] && [ "${GWCONFIG_ACTION_FORMAT:-markdown}" = markdown ]; then
    cat "$report" >>"$GITHUB_STEP_SUMMARY"
  else
    { echo '```'; cat "$report"; echo '```'; } >>"$GITHUB_STEP_SUMMARY"
  fi
fi

# A plan with changes (exit 2 and a saved plan) is a success unless the caller asked to fail on changes (drift).
if [ "$command" = plan ] && [ "$code" = 2 ] && [ -f "$plan_file" ]; then
  if is_true "${GWCONFIG_ACTION_FAIL_ON_CHANGES:-false}"; then
    echo "::error title=gwconfig drift::the gateway database differs from the manifests"
    exit 2
  fi
  exit 0
fi
exit "$code"
