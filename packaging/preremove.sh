#!/bin/sh
# conntop package pre-remove (deb and rpm): stop the service before its
# binary goes. On an rpm upgrade ($1 = 1) and a deb upgrade nothing is done.
set -e
case "$1" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now conntop.service >/dev/null 2>&1 || true
	fi
	;;
esac
