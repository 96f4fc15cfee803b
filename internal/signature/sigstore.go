package signature

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigsig "github.com/sigstore/sigstore/pkg/signature"
)

// SigstoreSigner signs cosign-format signatures with a private key.
type SigstoreSigner struct {
	sv  sigsig.SignerVerifier
	pub crypto.PublicKey
}

// LoadSigstoreSigner reads a private key file: cosign's encrypted PEM
// ("ENCRYPTED SIGSTORE PRIVATE KEY" or "ENCRYPTED COSIGN PRIVATE KEY":
// scrypt and NaCl secretbox), decrypted with passphrase, or an
// unencrypted PKCS#8, PKCS#1 or SEC 1 PEM key.
func LoadSigstoreSigner(path string, passphrase []byte) (*SigstoreSigner, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading sigstore private key: %v", ErrKeyNotFound, err)
	}
	s, err := ReadSigstoreSigner(data, passphrase)
	if err != nil {
		return nil, fmt.Errorf("sigstore private key %s: %w", path, err)
	}
	return s, nil
}

// ReadSigstoreSigner is LoadSigstoreSigner on the file's contents.
func ReadSigstoreSigner(data, passphrase []byte) (*SigstoreSigner, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("not a PEM file")
	}
	var priv crypto.PrivateKey
	var err error
	switch block.Type {
	case string(cryptoutils.EncryptedSigstorePrivateKeyPEMType), "ENCRYPTED COSIGN PRIVATE KEY":
		der, derr := encrypted.Decrypt(block.Bytes, passphrase)
		if derr != nil {
			return nil, fmt.Errorf("%w: %v", ErrPassphrase, derr)
		}
		priv, err = x509.ParsePKCS8PrivateKey(der)
	default:
		priv, err = cryptoutils.UnmarshalPEMToPrivateKey(data, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	sv, err := sigsig.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading private key: %w", err)
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, err
	}
	return &SigstoreSigner{sv: sv, pub: pub}, nil
}

// PublicKeyPEM returns the signer's public key as cosign writes
// cosign.pub.
func (s *SigstoreSigner) PublicKeyPEM() ([]byte, error) {
	return cryptoutils.MarshalPublicKeyToPEM(s.pub)
}

// Identity returns "sha256:" and the hex SHA-256 of the public key's
// DER form: how kiln names a sigstore key.
func (s *SigstoreSigner) Identity() string { return keyIdentity(s.pub) }

func keyIdentity(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "unknown key"
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Sign signs p (its Type is set to SigstoreType) as cosign does: the
// payload is the layer, the base64 signature of its SHA-256 the
// annotation.
func (s *SigstoreSigner) Sign(p Payload) (Signature, error) {
	p.Type = SigstoreType
	data, err := p.MarshalJSON()
	if err != nil {
		return Signature{}, err
	}
	sig, err := s.sv.SignMessage(bytes.NewReader(data))
	if err != nil {
		return Signature{}, fmt.Errorf("signing with sigstore key: %w", err)
	}
	return Signature{
		Format:      Sigstore,
		MIMEType:    SigstorePayloadMediaType,
		Payload:     data,
		Annotations: map[string]string{SigstoreSignatureKey: base64.StdEncoding.EncodeToString(sig)},
	}, nil
}

// SigstoreKeys are public keys sigstore signatures are checked against.
type SigstoreKeys struct {
	keys []crypto.PublicKey
}

// ReadSigstoreKeys parses PEM public keys (every "PUBLIC KEY" block).
func ReadSigstoreKeys(data []byte) (*SigstoreKeys, error) {
	k := &SigstoreKeys{}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem.EncodeToMemory(block))
		if err != nil {
			return nil, fmt.Errorf("parsing public key: %w", err)
		}
		k.keys = append(k.keys, pub)
	}
	if len(k.keys) == 0 {
		return nil, fmt.Errorf("no PEM public key found")
	}
	return k, nil
}

// Add merges the keys of other into k.
func (k *SigstoreKeys) Add(other *SigstoreKeys) { k.keys = append(k.keys, other.keys...) }

// VerifySigstore checks a sigstore signature against the keys: the
// annotation must be a signature of the payload by one of them, and
// the payload well-formed. Certificates and transparency-log bundles
// are not checked (keys only, as a keyPath policy does).
func (k *SigstoreKeys) VerifySigstore(sig Signature, _ time.Time) (Verified, error) {
	if sig.Format != Sigstore {
		return Verified{}, fmt.Errorf("%w: a %s signature is no sigstore signature", ErrInvalidSignature, sig.Format)
	}
	if sig.MIMEType != SigstorePayloadMediaType {
		return Verified{}, fmt.Errorf("%w: payload media type %q, want %q", ErrInvalidSignature, sig.MIMEType, SigstorePayloadMediaType)
	}
	b64, ok := sig.Annotations[SigstoreSignatureKey]
	if !ok {
		return Verified{}, fmt.Errorf("%w: no %s annotation", ErrInvalidSignature, SigstoreSignatureKey)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: signature annotation: %v", ErrInvalidSignature, err)
	}
	var signer crypto.PublicKey
	for _, pub := range k.keys {
		v, err := sigsig.LoadVerifier(pub, crypto.SHA256)
		if err != nil {
			continue
		}
		if err := v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(sig.Payload)); err == nil {
			signer = pub
			break
		}
	}
	if signer == nil {
		return Verified{}, fmt.Errorf("%w: not signed by a trusted key (%d tried)", ErrInvalidSignature, len(k.keys))
	}
	p, err := ParsePayload(sig.Payload, SigstoreType)
	if err != nil {
		return Verified{}, err
	}
	return Verified{Payload: p, Signer: keyIdentity(signer), Format: Sigstore}, nil
}

// Identities names the keys as Identity does.
func (k *SigstoreKeys) Identities() []string {
	out := make([]string, 0, len(k.keys))
	for _, p := range k.keys {
		out = append(out, keyIdentity(p))
	}
	return out
}
