#!/usr/bin/env bash
# Runs kiln build's differential mode: every conformance case under
# internal/dockerfile/testdata/cases is built by kiln, buildah and docker
# (BuildKit, on a dockerd of the test's own) and the results are compared.
# Installs the peers from Debian first. As root. Extra arguments go to
# go test; KILN_DIFFERENTIAL_CASES=a,b limits the cases and
# KILN_DIFFERENTIAL_REPORT=FILE writes the summary table to FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
pkgs=(buildah docker.io runc busybox-static)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
KILN_DIFFERENTIAL=1 exec go test -count=1 -timeout 30m -run 'TestDifferential$' "$@" ./internal/dockerfile
