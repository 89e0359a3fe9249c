#!/bin/sh
# Remove the watchkeeper agent: its service, unit and virtual environments.
#
#   uninstall.sh [--prefix DIR] [--config-dir DIR] [--state-dir DIR] [--user NAME]
#                [--no-systemd] [--unit-dir DIR] [--root DIR] [--purge]
#
# The configuration, the token, the check state and the spool (results not yet pushed)
# are kept unless --purge is given; --purge also removes the user install.sh created.
# Run from an installation (/opt/watchkeeper/uninstall.sh), it uses that installation's
# paths; see doc/bundle.md.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${WATCHKEEPER_PYTHON:-python3}
case " $* " in *" -h "*|*" --help "*) sed -n '2,10p' "$0"; exit 0 ;; esac
# Run from an installation: its install.json says where everything is.
if [ -f "$HERE/install.json" ]; then
    set -- --installed "$HERE" "$@"
fi
exec "$PYTHON" "$HERE/installer.py" uninstall "$@"
