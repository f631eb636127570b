#!/usr/bin/env bash
# measure-bigtable.sh: conntop on a big kernel conntrack table (issue 9).
#
# What it does (TestMeasureBigTable in cmd/conntop/measure_big_test.go):
#   - fills a throwaway namespace with N entries (batched ctnetlink creates:
#     UDP and ESTABLISHED TCP, assured, one in eight IPv6), raising
#     nf_conntrack_max for the run when needed (restored afterwards; 4,194,304
#     entries cost about 1.3 GB of kernel memory, freed with the namespace);
#   - times `conntrack -L >/dev/null` on it;
#   - runs the TUI in a 160x40 tmux session: time to the first full frame
#     ("shown N / N"), then a sort change and a filter; its peak RSS (VmHWM);
#   - runs `conntop serve --metrics` alone: peak RSS after loading;
#   - runs `conntop serve --ssh --metrics` and offers RATE TCP connections/s
#     between two lab namespaces for WINDOW, first with no viewer, then with
#     16 SSH viewers (each its own sort, every third a filter): events lost,
#     /metrics scrape latency p50/p99, serve CPU; then its peak RSS, how
#     often the source polled, one viewer's key → frame time (the help
#     page, 20 presses); then a burst of new entries made as fast as the kernel takes them (n/4,
#     262,144 to 1,048,576): events/s, events lost, count vs the kernel's.
# Every conntop runs in a 4 GiB memory cgroup (a bound against runaway
# growth). Needs root, tmux and (for the reference) conntrack.
#
# Usage: sudo scripts/measure-bigtable.sh [N [WINDOW [RATE]]]
#        (defaults 262144, a 20s window (60s from 1,048,576 entries), 3000;
#        N=4194304 for the big table)
# Environment (see TestMeasureBigTable): CONNTOP_MEASURE_STEPS=tui,metrics,ssh
# runs only some steps; CONNTOP_MEASURE_TUI_RUNS=K samples the TUI's first
# frame K times on the same table; CONNTOP_MEASURE_TUI_CPUPROFILE and
# CONNTOP_MEASURE_CPUPROFILE write CPU profiles of the TUI's load and of
# serve --ssh; CONNTOP_MEASURE_SERVE_LIMIT_MIB bounds serve --ssh;
# CONNTOP_MEASURE_ACCT=1 turns conntrack accounting on (every entry then
# has counters, which take 24 bytes a flow more).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
	echo "measure-bigtable.sh: needs root (network namespaces, ctnetlink, cgroups)" >&2
	exit 1
fi
for tool in tmux go; do
	command -v "$tool" >/dev/null || { echo "measure-bigtable.sh: $tool is not installed" >&2; exit 1; }
done
command -v conntrack >/dev/null || echo "measure-bigtable.sh: conntrack is not installed (apt-get install -y conntrack); no reference time" >&2

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
CONNTOP_MEASURE_BIG=1 CONNTOP_MEASURE_N="${1:-262144}" CONNTOP_MEASURE_WINDOW="${2:-}" CONNTOP_MEASURE_RATE="${3:-3000}" \
	go test -count=1 -timeout 60m -run '^TestMeasureBigTable$' -v ./cmd/conntop >"$out" 2>&1 || status=$?
if [[ $status -ne 0 ]]; then
	tail -n 60 "$out" >&2
	exit "$status"
fi
grep -o 'MEASURE .*' "$out"
echo "cores: $(nproc); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
