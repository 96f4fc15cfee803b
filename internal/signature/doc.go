// Package signature makes and checks image signatures in the two formats
// the containers tools and cosign use, in pure Go (no gpg agent, no cgo):
//
//   - "simple signing": a JSON payload naming an image by its Docker
//     reference and manifest digest, signed as an OpenPGP message
//     (containers/image's format, written by skopeo, podman and buildah
//     with --sign-by), with keys read from GnuPG's files or key files;
//   - sigstore (cosign): the same kind of payload with the cosign type,
//     signed with an ECDSA, Ed25519 or RSA key, the signature kept
//     base64-encoded in an annotation; private keys in cosign's encrypted
//     PEM format (scrypt and NaCl secretbox).
//
// A Signature travels as a blob in containers/image's serialization
// (FromBlob, Blob), so that stores and transports keep it without
// knowing its format. Verification returns what was signed only when
// the cryptography holds; what the payload claims is then matched
// against the image by the caller (internal/policy).
package signature
