package signature

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/kiln-build/kiln/internal/image"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalidSignature reports a signature that does not verify: bad
	// cryptography, an unknown or expired key, a malformed payload.
	ErrInvalidSignature = errors.New("invalid signature")
	// ErrKeyNotFound reports a signing key that is not where it was
	// looked for.
	ErrKeyNotFound = errors.New("signing key not found")
	// ErrPassphrase reports a passphrase that does not decrypt a key.
	ErrPassphrase = errors.New("wrong passphrase")
	// ErrUnknownFormat reports a signature blob of no known format.
	ErrUnknownFormat = errors.New("unknown signature format")
)

// Format is the kind of a signature.
type Format int

const (
	// SimpleSigning is an OpenPGP message wrapping a simple-signing payload.
	SimpleSigning Format = iota + 1
	// Sigstore is a cosign signature: a payload, its MIME type and the
	// annotations that carry the signature.
	Sigstore
)

// String returns the format's name in containers/image's blobs.
func (f Format) String() string {
	switch f {
	case SimpleSigning:
		return "simple-signing"
	case Sigstore:
		return "sigstore-json"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Media type (internal/image's) and annotation keys of cosign
// signatures (cosign's pkg/types and pkg/oci/static).
const (
	SigstorePayloadMediaType = image.MediaTypeCosignSimpleSigning
	SigstoreSignatureKey     = "dev.cosignproject.cosign/signature"
	SigstoreCertificateKey   = "dev.sigstore.cosign/certificate"
	SigstoreChainKey         = "dev.sigstore.cosign/chain"
	SigstoreBundleKey        = "dev.sigstore.cosign/bundle"
)

// Signature is one signature of a manifest, not yet verified.
type Signature struct {
	Format Format
	// Message is the OpenPGP message of a SimpleSigning signature.
	Message []byte
	// MIMEType, Payload and Annotations make a Sigstore signature.
	MIMEType    string
	Payload     []byte
	Annotations map[string]string
}

// sigstoreJSON is containers/image's storage form of a sigstore signature.
type sigstoreJSON struct {
	MIMEType    string            `json:"mimeType"`
	Payload     []byte            `json:"payload"`
	Annotations map[string]string `json:"annotations"`
}

// Blob returns the signature in containers/image's serialization: a
// simple-signing signature is its OpenPGP message; any other is a zero
// byte, the format's name, a newline and the format's data.
func (s Signature) Blob() ([]byte, error) {
	switch s.Format {
	case SimpleSigning:
		return bytes.Clone(s.Message), nil
	case Sigstore:
		j, err := json.Marshal(sigstoreJSON{MIMEType: s.MIMEType, Payload: s.Payload, Annotations: s.Annotations})
		if err != nil {
			return nil, err
		}
		out := append([]byte{0}, s.Format.String()...)
		return append(append(out, '\n'), j...), nil
	}
	return nil, fmt.Errorf("%w: %v", ErrUnknownFormat, s.Format)
}

// FromBlob parses a blob written by Blob (or by containers/image: a
// signature file of a lookaside store or a dir: image).
func FromBlob(blob []byte) (Signature, error) {
	if len(blob) == 0 {
		return Signature{}, fmt.Errorf("%w: empty signature", ErrUnknownFormat)
	}
	switch blob[0] {
	// OpenPGP packets that start a signed message: compressed data,
	// one-pass signature, signature (old and new packet formats).
	case 0xA0, 0xA1, 0xA2, 0xA3, 0xC8, 0x90, 0x91, 0x92, 0x93, 0xC4, 0x88, 0x89, 0x8A, 0x8B, 0xC2:
		return Signature{Format: SimpleSigning, Message: bytes.Clone(blob)}, nil
	case 0:
	default:
		return Signature{}, fmt.Errorf("%w: starts with byte %#x", ErrUnknownFormat, blob[0])
	}
	name, data, ok := bytes.Cut(blob[1:], []byte{'\n'})
	if !ok {
		return Signature{}, fmt.Errorf("%w: no newline after the format name", ErrUnknownFormat)
	}
	switch string(name) {
	case SimpleSigning.String():
		return Signature{Format: SimpleSigning, Message: bytes.Clone(data)}, nil
	case Sigstore.String():
		var j sigstoreJSON
		if err := json.Unmarshal(data, &j); err != nil {
			return Signature{}, fmt.Errorf("parsing sigstore signature: %w", err)
		}
		return Signature{Format: Sigstore, MIMEType: j.MIMEType, Payload: j.Payload, Annotations: maps.Clone(j.Annotations)}, nil
	}
	return Signature{}, fmt.Errorf("%w %q", ErrUnknownFormat, name)
}

// FromBlobs parses every blob; a blob of an unknown format is an error.
func FromBlobs(blobs [][]byte) ([]Signature, error) {
	out := make([]Signature, 0, len(blobs))
	for i, b := range blobs {
		s, err := FromBlob(b)
		if err != nil {
			return nil, fmt.Errorf("signature %d: %w", i+1, err)
		}
		out = append(out, s)
	}
	return out, nil
}
