#!/bin/sh
# The Python the project runs: FAST3D_PYTHON when set, else Debian's /usr/bin/python3 when present, else python3
# on PATH. The worker's tests need only the standard library; the GPU worker itself needs its own environment.
if [ -n "${FAST3D_PYTHON:-}" ]; then exec "$FAST3D_PYTHON" "$@"; fi
if [ -x /usr/bin/python3 ]; then exec /usr/bin/python3 "$@"; fi
exec python3 "$@"
