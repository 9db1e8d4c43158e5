#!/usr/bin/env bash
# Run a command against a real Secret Service: an unlocked gnome-keyring-daemon on the private
# session bus that dbus-run-session started, keyring's SecretService backend selected.
#
#   dbus-run-session -- tests/secret_service/run.sh COMMAND [ARGS...]
#
# The keyring files land in $XDG_DATA_HOME/keyrings: point HOME/XDG_* at a temp dir first
# (tests/test_secret_service.py does), so the user's own keyring is never touched.
set -euo pipefail

if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
    echo "run.sh: no session bus; run me under dbus-run-session" >&2
    exit 2
fi

# The password only unlocks this throwaway login keyring.
echo -n pass | gnome-keyring-daemon --unlock --components=secrets >/dev/null

# Wait (at most ~10 s) until the daemon owns org.freedesktop.secrets on the bus.
for _ in $(seq 100); do
    if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null |
        grep -q "boolean true"; then
        break
    fi
    sleep 0.1
done

export PYTHON_KEYRING_BACKEND=keyring.backends.SecretService.Keyring
exec "$@"
