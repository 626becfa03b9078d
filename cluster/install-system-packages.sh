#!/usr/bin/env bash
# Installs the Debian packages the project needs, only when they are missing: PostgreSQL 15
# (server and contrib) and pgbouncer for the local cluster, Node.js and npm for the web pages'
# front-end packages (Chart.js), and Chromium for the browser tests. Safe to run repeatedly.
set -euo pipefail

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
missing=()
[ -x "$PG_BINDIR/postgres" ] || missing+=(postgresql postgresql-contrib)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
# The browser tests launch this binary themselves (Playwright never downloads a browser here).
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
  echo "error: need root (or sudo) to install ${missing[*]}: run 'apt-get install ${missing[*]}' as root" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "error: ${missing[*]} missing and this is not a Debian-like system: install them by hand (for PostgreSQL 15, PG_BINDIR may point at its binaries)" >&2
  exit 1
fi

echo "installing ${missing[*]} from Debian packages ..."
export DEBIAN_FRONTEND=noninteractive
# Our cluster tool makes its own nodes: don't let the package create and start a default cluster.
"${SUDO[@]}" mkdir -p /etc/postgresql-common
if [ -f /etc/postgresql-common/createcluster.conf ]; then
  "${SUDO[@]}" sed -i 's/^#\?\s*create_main_cluster.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
else
  echo "create_main_cluster = false" | "${SUDO[@]}" tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
"${SUDO[@]}" apt-get update -qq
# policy-rc.d 101 stops package scripts from starting system services (pgbouncer on 6432, PostgreSQL on 5432).
printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d.marketplace >/dev/null
"${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d.marketplace
if [ ! -e /usr/sbin/policy-rc.d ]; then
  "${SUDO[@]}" ln -s /usr/sbin/policy-rc.d.marketplace /usr/sbin/policy-rc.d
  trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.marketplace' EXIT
fi
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
echo "installed ${missing[*]}"
