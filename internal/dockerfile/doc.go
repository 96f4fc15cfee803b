// Package dockerfile turns a Dockerfile into an image with Docker's (BuildKit's)
// semantics. The Dockerfile is parsed with BuildKit's own grammar; its
// stages run as a DAG (only those the target needs, independent ones in
// parallel); each step runs on a working container of internal/container
// (the same copy and commit paths as the `kiln copy` and `kiln commit`
// verbs) and its result is cached in the store under a key of (parent
// image, the instruction after expansion, the build args it uses, the
// digests of the files it reads).
package dockerfile
