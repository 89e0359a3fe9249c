#!/bin/sh
# Install or upgrade the watchkeeper agent from this unpacked bundle, offline.
#
#   ./install.sh [--prefix DIR] [--config-dir DIR] [--state-dir DIR] [--collector URL]
#                [--token-file FILE | --enroll-secret-file FILE --customer NAME
#                 [--fqdn NAME] [--tag TAG ...]]
#                [--config FILE] [--user NAME] [--no-user] [--no-systemd] [--unit-dir DIR]
#                [--root DIR]
#
# Defaults: /opt/watchkeeper, /etc/watchkeeper, /var/lib/watchkeeper, user watchkeeper.
# A second run with the same bundle changes nothing; the last line says what happened:
# "watchkeeper-agent <version>: installed", "... upgraded from <old>" or "... unchanged".
# Needs python3 3.11 or newer (WATCHKEEPER_PYTHON names another); see doc/bundle.md.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${WATCHKEEPER_PYTHON:-python3}
case " $* " in *" -h "*|*" --help "*) sed -n '2,14p' "$0"; exit 0 ;; esac
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "install.sh: $PYTHON 3.11 or newer is needed (Debian 12: apt-get install python3)" >&2
    exit 1
fi
exec "$PYTHON" "$HERE/installer.py" install --bundle "$HERE" "$@"
