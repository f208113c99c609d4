#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what is missing
# (scripts/deps.sh), then `make test`: lint (gofmt, go vet, go vet -tags
# e2e), unit tests with -race, cross builds, fuzzing, then the end-to-end
# suite on private dockerds it starts and stops itself, twice: on the
# machine's dockerd (20.10) and on Docker Engine 29, which the first run
# builds from source into /var/cache/hostpass-engines (scripts/engines.sh,
# about 5 minutes on 2 cores) and later runs reuse.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="$PATH:/usr/local/go/bin"
exec make test
