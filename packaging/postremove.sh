#!/bin/sh
# conntop package post-remove (deb and rpm): forget the removed unit. The
# system user and group "conntop" are kept (files may still belong to them).
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
