#!/bin/sh
# Install the browser the explorer's end-to-end tests drive: Debian's `chromium` package.
#
# Idempotent: does nothing when /usr/bin/chromium exists. Playwright is pointed at that
# executable by the tests and never downloads a browser of its own.
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: $CHROMIUM is missing and this system has no apt-get;" \
        "install Chromium so that $CHROMIUM exists" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-browser: installing chromium needs root (or sudo)" >&2
        exit 1
    fi
fi

echo "install-browser: installing Debian's chromium package"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

if [ ! -x "$CHROMIUM" ]; then
    echo "install-browser: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "install-browser: $("$CHROMIUM" --version 2>/dev/null || echo chromium) installed"
