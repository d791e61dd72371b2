#!/usr/bin/env bash
# Make sure the Debian packages the project needs are installed.
# Usage: ensure_system_packages.sh PACKAGE...
# As root, missing packages are installed with apt-get; otherwise the script says what to install.
set -euo pipefail

declare -A probe=(
  [redis-server]="command -v redis-server"
  [postgresql]="ls /usr/lib/postgresql/*/bin/initdb"
  [chromium]="command -v chromium"
)

missing=()
for pkg in "$@"; do
  check=${probe[$pkg]:-"dpkg -s $pkg"}
  eval "$check" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "Missing system packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
  || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
