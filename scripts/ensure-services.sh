#!/usr/bin/env bash
# Make sure the programs the test suite starts are installed:
#   initdb/postgres (PostgreSQL), redis-server, mariadbd (MariaDB, for the mysql node's
#   tests), bwrap (bubblewrap, for the code sandbox),
#   kubectl (kubernetes-client: renders deploy/kubernetes) and promtool (prometheus:
#   checks and unit-tests deploy/prometheus/alerts.yml).
# As root, missing ones are installed from Debian's packages; otherwise this
# prints what to install and fails. The tests start their own servers: nothing
# is started here.
set -euo pipefail

have_postgres() {
    command -v initdb >/dev/null 2>&1 && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
have_mariadb() {
    command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]]
}
have_mariadb || missing+=(mariadb-server)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)

if ((${#missing[@]} == 0)); then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "missing system packages: ${missing[*]}" >&2
    echo "install them, e.g.: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing system packages: ${missing[*]} (and no apt-get to install them with)" >&2
    exit 1
fi

echo "installing ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update
# Debian's maintainer scripts start a package's service (a system-wide MariaDB or
# PostgreSQL on the default port); the tests start their own, so keep them from it.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y "${missing[@]}"
