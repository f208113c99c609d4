#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what is missing
# (scripts/deps.sh), then `make test`: unit tests with -race, then the
# end-to-end suite on private dockerds it starts and stops itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="$PATH:/usr/local/go/bin"
exec make test
