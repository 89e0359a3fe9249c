#!/bin/bash
# Build the offline agent bundle: OUT_DIR/watchkeeper-agent-<version>.tar.gz
#
#   deploy/bundle/build.sh [--version VERSION] OUT_DIR
#
# The tarball holds a wheelhouse (the agent and its dependencies, built for this machine's
# Python and architecture, plus pip to install them), install.sh, uninstall.sh, the
# systemd unit from systemd/watchkeeper-agent.service, an example agent.toml and the
# agent's documentation. Installing it needs no network (docs/bundle.md).
#
# --version VERSION   build the agent as this version instead of the one in pyproject.toml
#                     (a test of an upgrade, a hotfix build); the source is not changed.
# Environment:
#   PYTHON                          the Python that builds (default python3; needs pip,
#                                   setuptools and wheel, as the project's .venv has)
#   WATCHKEEPER_WHEELHOUSE_CACHE    a directory of dependency wheels to reuse: what it holds
#                                   is used without the network, what it lacks is
#                                   downloaded from the package index into it
set -euo pipefail

usage() {
    echo "usage: $0 [--version VERSION] OUT_DIR" >&2
    exit 2
}

VERSION=""
OUT_DIR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --version) [ $# -ge 2 ] || usage; VERSION=$2; shift 2 ;;
        --version=*) VERSION=${1#--version=}; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        -*) echo "build.sh: unknown option $1" >&2; usage ;;
        *) [ -z "$OUT_DIR" ] || usage; OUT_DIR=$1; shift ;;
    esac
done
[ -n "$OUT_DIR" ] || usage

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-python3}
UNIT="$SRC/systemd/watchkeeper-agent.service"
[ -f "$UNIT" ] || { echo "build.sh: $UNIT is missing: the bundle ships it" >&2; exit 1; }

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/watchkeeper-bundle.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

# 1. The agent's source as it will be packaged: the agent and its checks only (the
#    collector's code is of no use on a monitored host), at the version asked for.
STAGE="$WORK/src"
mkdir -p "$STAGE"
cp -R "$SRC/agent" "$SRC/checks" "$STAGE/"
cp "$SRC/pyproject.toml" "$SRC/README.md" "$STAGE/"
find "$STAGE" -name __pycache__ -prune -exec rm -rf {} +
VERSION=$("$PYTHON" "$HERE/stage.py" "$STAGE" "$VERSION")

NAME="watchkeeper-agent-$VERSION"
BUNDLE="$WORK/$NAME"
WHEELS="$BUNDLE/wheelhouse"
mkdir -p "$WHEELS"

# 2. The agent's wheel (no build isolation: the build needs no network). One date for
#    every file in it, so that the same source gives the same wheel, and a bundle built
#    again from it installs as "unchanged".
SOURCE_DATE_EPOCH=315532800 "$PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$WHEELS" "$STAGE"

# 3. Its dependencies and pip itself, as binary wheels for this Python and architecture:
#    from the cache without the network when it has them, else from the index.
CACHE=${WATCHKEEPER_WHEELHOUSE_CACHE:-"$WORK/cache"}
mkdir -p "$CACHE"
AGENT_WHEEL=$(ls "$WHEELS"/watchkeeper-*.whl)
fetch() {
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        --dest "$CACHE" "$@" "$AGENT_WHEEL" pip
}
if ! fetch --no-index --find-links "$CACHE" 2>/dev/null; then
    fetch --find-links "$CACHE"
fi
rm -f "$CACHE"/watchkeeper-*.whl  # pip copied the agent's own wheel there: not a dependency
# Exactly the wheels the agent needs, resolved again from the cache alone (--isolated:
# without the pip configuration of this machine, which may name other indexes).
"$PYTHON" -m pip download --quiet --isolated --only-binary=:all: \
    --no-index --find-links "$CACHE" --dest "$WHEELS" "$AGENT_WHEEL" pip

# 4. The installer, the unit, the example configuration, the documentation.
cp "$HERE/install.sh" "$HERE/uninstall.sh" "$HERE/installer.py" "$HERE/agent.toml" "$BUNDLE/"
cp "$UNIT" "$BUNDLE/watchkeeper-agent.service"
mkdir -p "$BUNDLE/doc"
for doc in bundle.md agent.md systemd.md; do
    [ ! -f "$SRC/docs/$doc" ] || cp "$SRC/docs/$doc" "$BUNDLE/doc/"
done
chmod 0755 "$BUNDLE/install.sh" "$BUNDLE/uninstall.sh"
"$PYTHON" "$HERE/stage.py" --manifest "$BUNDLE" "$VERSION"

# 5. The tarball: sorted, owned by root, every date the same, so that a rebuild of the
#    same wheels differs only where the wheels do.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='@0' -C "$WORK" -cf - "$NAME" \
    | gzip -n > "$OUT_DIR/$NAME.tar.gz.part"
mv "$OUT_DIR/$NAME.tar.gz.part" "$OUT_DIR/$NAME.tar.gz"
echo "$OUT_DIR/$NAME.tar.gz"
