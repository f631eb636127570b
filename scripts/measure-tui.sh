#!/usr/bin/env bash
# measure-tui.sh: CPU and terminal bytes per second of the conntop TUI (and
# of iptstate, when installed) on an idle 262,144-entry kernel conntrack
# table, as issue 4 asks.
#
# What it does (TestMeasureTUIIdleTable in cmd/conntop/e2e_test.go):
#   - creates a throwaway network namespace with conntrack active and fills
#     its table with 262,144 assured UDP entries (batched ctnetlink creates,
#     timeout 3600 s, so the table stays steady; the entries die with the
#     namespace);
#   - builds conntop and runs `conntop --netns NS --source conntrack` in a
#     detached 160x40 tmux session on a private tmux server, waits until the
#     screen shows "shown 262,144 / 262,144", lets it settle 5 s, then samples
#     utime+stime from /proc/PID/stat and counts the bytes the pane received
#     (tmux pipe-pane) over the window (default 30 s);
#   - does the same for `ip netns exec NS iptstate --totals` (in tmux, on a
#     terminal, never with its output redirected).
#
# Needs root and tmux. Takes about two minutes. Prints the MEASURE lines.
#
# Usage: sudo scripts/measure-tui.sh [WINDOW]     (WINDOW e.g. 30s, 1m)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
	echo "measure-tui.sh: needs root (network namespaces, ctnetlink)" >&2
	exit 1
fi
for tool in tmux go getconf; do
	command -v "$tool" >/dev/null || { echo "measure-tui.sh: $tool is not installed" >&2; exit 1; }
done
command -v iptstate >/dev/null || echo "measure-tui.sh: iptstate is not installed (apt-get install -y iptstate); measuring conntop only" >&2

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
CONNTOP_MEASURE=1 CONNTOP_MEASURE_WINDOW="${1:-30s}" \
	go test -count=1 -timeout 20m -run '^TestMeasureTUIIdleTable$' -v ./cmd/conntop >"$out" 2>&1 || status=$?
if [[ $status -ne 0 ]]; then
	tail -n 60 "$out" >&2
	exit "$status"
fi
grep -o 'MEASURE .*' "$out"
echo "cores: $(nproc); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
