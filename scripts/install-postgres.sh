#!/bin/sh
# Install the PostgreSQL server the service tests run against: Debian's `postgresql` package.
#
# Idempotent and quick: does nothing when `initdb` and `pg_ctl` are found, on PATH or in
# /usr/lib/postgresql/<version>/bin (where Debian puts them). The tests never use the
# `main` cluster the package creates; they start a throwaway cluster of their own
# (tests/services/postgres.py).
set -eu

found_bin_dir() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

if dir=$(found_bin_dir); then
    echo "install-postgres: PostgreSQL server found in $dir"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postgres: initdb and pg_ctl are missing and this system has no apt-get;" \
        "install the PostgreSQL server so that initdb and pg_ctl are on PATH" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-postgres: installing postgresql needs root (or sudo)" >&2
        exit 1
    fi
fi

echo "install-postgres: installing Debian's postgresql package"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null

if ! dir=$(found_bin_dir); then
    echo "install-postgres: apt-get finished but initdb and pg_ctl are still missing" >&2
    exit 1
fi
echo "install-postgres: $("$dir/initdb" --version 2>/dev/null || echo postgresql) installed in $dir"
