// Package packaging holds what the .deb and .rpm packages install besides
// the binary, man page and completions: the systemd unit for `conntop
// serve` (conntop.service, off by default), its flags
// (conntop.default, installed as /etc/default/conntop), the
// maintainer scripts (postinstall.sh sets cap_net_admin,cap_net_raw+ep on
// /usr/bin/conntop) and, for the .deb, the Debian copyright file
// (copyright: Apache-2.0, installed with LICENSE and THIRD_PARTY_LICENSES
// under /usr/share/doc/conntop). The release build that uses them is
// .goreleaser.yaml at the repository root; its tests check the unit's
// confinement and that the release, the Containerfile and these files agree.
package packaging
