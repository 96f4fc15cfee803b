package signature

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Keyring is a set of OpenPGP public keys that simple-signing signatures
// are checked against.
type Keyring struct {
	entities openpgp.EntityList
}

// ReadKeyring parses OpenPGP keys: binary or ASCII-armored transferable
// keys (what `gpg --export` writes, a pubring.gpg) or a GnuPG keybox
// (pubring.kbx).
func ReadKeyring(data []byte) (*Keyring, error) {
	el, err := readEntities(data)
	if err != nil {
		return nil, err
	}
	return &Keyring{entities: el}, nil
}

// LoadKeyring reads and merges the keys of every file.
func LoadKeyring(paths ...string) (*Keyring, error) {
	k := &Keyring{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading GPG keys: %w", err)
		}
		el, err := readEntities(data)
		if err != nil {
			return nil, fmt.Errorf("reading GPG keys from %s: %w", p, err)
		}
		k.entities = append(k.entities, el...)
	}
	return k, nil
}

// Add merges the keys of other into k.
func (k *Keyring) Add(other *Keyring) { k.entities = append(k.entities, other.entities...) }

// Fingerprints lists the primary key fingerprints, upper-case hex as
// gpg prints them.
func (k *Keyring) Fingerprints() []string {
	out := make([]string, 0, len(k.entities))
	for _, e := range k.entities {
		out = append(out, fingerprint(e.PrimaryKey))
	}
	return out
}

func fingerprint(pk *packet.PublicKey) string {
	return strings.ToUpper(hex.EncodeToString(pk.Fingerprint))
}

func readEntities(data []byte) (openpgp.EntityList, error) {
	if len(data) >= 12 && bytes.Equal(data[8:12], []byte("KBXf")) {
		return readKeybox(data)
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN PGP")) {
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("parsing armored OpenPGP keys: %w", err)
		}
		return el, nil
	}
	el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parsing OpenPGP keys: %w", err)
	}
	return el, nil
}

// readKeybox reads the OpenPGP key blocks of a GnuPG keybox file: blobs
// of a 4-byte length, a type (2 is OpenPGP) and, for OpenPGP blobs, the
// offset and length of the key block at bytes 8 and 12.
func readKeybox(data []byte) (openpgp.EntityList, error) {
	var out openpgp.EntityList
	for off := 0; off+6 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[off:]))
		if n < 6 || off+n > len(data) {
			return nil, fmt.Errorf("keybox blob at %d: bad length %d", off, n)
		}
		blob := data[off : off+n]
		if blob[4] == 2 && len(blob) >= 16 {
			ko, kl := int(binary.BigEndian.Uint32(blob[8:])), int(binary.BigEndian.Uint32(blob[12:]))
			if ko < 0 || kl < 0 || ko+kl > len(blob) {
				return nil, fmt.Errorf("keybox blob at %d: key block out of bounds", off)
			}
			el, err := openpgp.ReadKeyRing(bytes.NewReader(blob[ko : ko+kl]))
			if err != nil {
				return nil, fmt.Errorf("keybox blob at %d: %w", off, err)
			}
			out = append(out, el...)
		}
		off += n
	}
	return out, nil
}

// SimpleSigner signs with an OpenPGP private key.
type SimpleSigner struct {
	entity *openpgp.Entity
}

// Fingerprint returns the signing key's primary fingerprint.
func (s *SimpleSigner) Fingerprint() string { return fingerprint(s.entity.PrimaryKey) }

// Sign signs p (its Type is set to SimpleSigningType) as an OpenPGP
// message, as `gpg --sign` would.
func (s *SimpleSigner) Sign(p Payload) (Signature, error) {
	p.Type = SimpleSigningType
	data, err := p.MarshalJSON()
	if err != nil {
		return Signature{}, err
	}
	var buf bytes.Buffer
	w, err := openpgp.Sign(&buf, s.entity, nil, nil)
	if err != nil {
		return Signature{}, fmt.Errorf("signing with key %s: %w", s.Fingerprint(), err)
	}
	if _, err := w.Write(data); err != nil {
		return Signature{}, err
	}
	if err := w.Close(); err != nil {
		return Signature{}, fmt.Errorf("signing with key %s: %w", s.Fingerprint(), err)
	}
	return Signature{Format: SimpleSigning, Message: buf.Bytes()}, nil
}

// Verified is a signature whose cryptography holds: what it says and who
// said it.
type Verified struct {
	Payload Payload
	// Signer is the primary fingerprint of an OpenPGP key, or for a
	// sigstore signature the SHA-256 of the public key's DER form
	// ("sha256:…").
	Signer string
	Format Format
}

// VerifySimple checks a simple-signing signature against the keyring
// at now: the message must be signed by one of its keys, neither key
// nor signature expired or revoked, and the payload well-formed. It does
// not compare the payload with any image.
func (k *Keyring) VerifySimple(sig Signature, now time.Time) (Verified, error) {
	if sig.Format != SimpleSigning {
		return Verified{}, fmt.Errorf("%w: a %s signature is no simple-signing signature", ErrInvalidSignature, sig.Format)
	}
	cfg := &packet.Config{Time: func() time.Time { return now }}
	md, err := openpgp.ReadMessage(bytes.NewReader(sig.Message), k.entities, nil, cfg)
	if err != nil {
		if errors.Is(err, pgperrors.ErrUnknownIssuer) {
			return Verified{}, fmt.Errorf("%w: signed by a key not trusted here", ErrInvalidSignature)
		}
		return Verified{}, fmt.Errorf("%w: reading OpenPGP message: %v", ErrInvalidSignature, err)
	}
	if !md.IsSigned {
		return Verified{}, fmt.Errorf("%w: not signed", ErrInvalidSignature)
	}
	body, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, 4<<20))
	if err != nil {
		return Verified{}, fmt.Errorf("%w: %v", ErrInvalidSignature, err)
	}
	if md.SignedBy == nil {
		return Verified{}, fmt.Errorf("%w: signed by key ID %016X, not trusted here", ErrInvalidSignature, md.SignedByKeyId)
	}
	if md.SignatureError != nil {
		return Verified{}, fmt.Errorf("%w: key %s: %v", ErrInvalidSignature, fingerprint(md.SignedBy.Entity.PrimaryKey), md.SignatureError)
	}
	if md.Signature == nil {
		return Verified{}, fmt.Errorf("%w: no signature packet", ErrInvalidSignature)
	}
	p, err := ParsePayload(body, SimpleSigningType)
	if err != nil {
		return Verified{}, err
	}
	return Verified{Payload: p, Signer: fingerprint(md.SignedBy.Entity.PrimaryKey), Format: SimpleSigning}, nil
}

// UntrustedSimplePayload returns the payload of a simple-signing
// signature and the key ID it names without verifying anything: for
// showing what an unverifiable signature claims.
func UntrustedSimplePayload(sig Signature) (Payload, string, error) {
	md, err := openpgp.ReadMessage(bytes.NewReader(sig.Message), openpgp.EntityList{}, nil, nil)
	if err != nil {
		return Payload{}, "", fmt.Errorf("%w: %v", ErrInvalidSignature, err)
	}
	body, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, 4<<20))
	if err != nil && md.SignedByKeyId == 0 {
		return Payload{}, "", fmt.Errorf("%w: %v", ErrInvalidSignature, err)
	}
	p, err := ParsePayload(body, SimpleSigningType)
	return p, fmt.Sprintf("%016X", md.SignedByKeyId), err
}

// UserIDs lists the user IDs of the keys ("Name <mail>"), sorted by
// key then name.
func (k *Keyring) UserIDs() []string {
	var out []string
	for _, e := range k.entities {
		names := make([]string, 0, len(e.Identities))
		for n := range e.Identities {
			names = append(names, n)
		}
		sort.Strings(names)
		out = append(out, names...)
	}
	return out
}
