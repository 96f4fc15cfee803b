// Package attest writes what a build says about the image it made, as
// in-toto statements: SLSA v1 provenance (the builder, the base images
// by digest, the build arguments, the Dockerfile's digest, the context's
// files and the remote sources of ADD) and a minimal SPDX document of the
// packages the image's package databases list (dpkg, apk). Each statement
// is packed as an OCI artifact manifest whose subject is the image's
// manifest, so that it is stored and pushed beside the image and found
// through the referrers API. The package reads nothing but what it is
// given: the caller reads the context, the layers and the store.
package attest
