#!/usr/bin/env bash
# Runs kiln's tests. As root every privileged test runs too (the e2e
# verbs, both drivers, both isolations, a real registry and skopeo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH=/usr/local/go/bin:$PATH
# Test binaries are static, as kiln itself is: some tests run themselves
# inside a container's root filesystem, which has no C library.
export CGO_ENABLED=0
# CI: a test that lacks root, a peer or a kernel feature fails instead of
# skipping (internal/testenv); KILN_CI=0 runs it as a developer would.
export KILN_CI=${KILN_CI:-1}
bash scripts/rootless-users.sh
go vet ./...
go test -count=1 -p 2 -timeout 40m ./...
# A short run of every fuzzer; scripts/fuzz.sh alone is the long run.
bash scripts/fuzz.sh 5s
# Opt-in: Buildah 1.28's own system tests against kiln, the verbs' files
# (KILN_BUILDAH_TESTS_FILES="bud" or a list to change which);
# docs/buildah-parity.md.
if [ "${KILN_BUILDAH_TESTS:-0}" = 1 ]; then
	# shellcheck disable=SC2086
	bash scripts/buildah-tests.sh ${KILN_BUILDAH_TESTS_FILES:-}
fi
