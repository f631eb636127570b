#!/bin/sh
# Generates what the release archives and packages carry besides the binary:
# the shell completions and the man page, from conntop's own flag
# definitions (conntop completion, conntop man), and THIRD_PARTY_LICENSES,
# the licence and notice files of every Go module compiled into the binary
# (scripts/thirdpartylicenses, which fails when a module has no licence
# file). GoReleaser runs it as a
# before hook with the release's version and date (.goreleaser.yaml); by
# hand: sh scripts/release-assets.sh [VERSION [DATE]]
set -eu
cd "$(dirname "$0")/.."
version=${1:-dev}
date=${2:-}
out=build
rm -rf "$out"
mkdir -p "$out/completions" "$out/man"
pkg=github.com/conntop/conntop/internal/buildinfo
CGO_ENABLED=0 go build -trimpath \
	-ldflags "-X $pkg.version=$version -X $pkg.date=$date" \
	-o "$out/conntop-host" ./cmd/conntop
for shell in bash zsh fish; do
	"$out/conntop-host" completion "$shell" >"$out/completions/conntop.$shell"
done
"$out/conntop-host" man >"$out/man/conntop.1"
gzip -9n <"$out/man/conntop.1" >"$out/man/conntop.1.gz"
rm -f "$out/conntop-host"
go run ./scripts/thirdpartylicenses -goarch amd64,arm64 -o "$out/THIRD_PARTY_LICENSES" ./cmd/conntop
