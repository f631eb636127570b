#!/bin/sh
# conntop package post-install (deb and rpm).
#
# It gives /usr/bin/conntop the file capabilities cap_net_admin,cap_net_raw+ep
# (setcap), so that conntop reads the kernel's conntrack table and captures
# packets without root. Because that lets whoever runs it see every
# connection of the host (and, with --allow-delete, remove conntrack
# entries), the binary is made executable by root and the members of the
# system group "conntop" only (mode 0754, like Wireshark's dumpcap):
#   usermod -aG conntop USER
# It also creates the system user "conntop" that conntop.service runs as.
# The service is not enabled or started.
set -e

bin=/usr/bin/conntop

if ! getent group conntop >/dev/null 2>&1; then
	groupadd --system conntop
fi
if ! getent passwd conntop >/dev/null 2>&1; then
	useradd --system --gid conntop --home-dir /var/lib/conntop --no-create-home \
		--shell /usr/sbin/nologin --comment "conntop serve" conntop
fi

# chown clears file capabilities: set them last.
chown root:conntop "$bin"
chmod 0754 "$bin"
setcap cap_net_admin,cap_net_raw+ep "$bin"

echo "conntop: $bin has the file capabilities cap_net_admin,cap_net_raw+ep;" \
	"root and members of group conntop may run it (usermod -aG conntop USER)."
echo "conntop: conntop.service (conntop serve) is installed but not enabled;" \
	"its flags are in /etc/default/conntop."

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
