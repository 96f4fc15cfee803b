package signature

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/ocb"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/eddsa"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
)

// LoadGPGSigner finds the key whose fingerprint (or long key ID) is
// keyID in the GnuPG home directory home, reading gpg's files directly
// (no agent): public keys from pubring.kbx or pubring.gpg, the private
// key from private-keys-v1.d (gpg-agent's protected key files, in the
// "openpgp-s2k3-ocb-aes" and "openpgp-s2k3-sha1-aes-cbc" protections
// or unprotected) or from a secring.gpg of exported secret keys. The
// passphrase decrypts it when it is protected. RSA and Ed25519 keys are
// supported.
func LoadGPGSigner(home, keyID string, passphrase []byte) (*SimpleSigner, error) {
	want := strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(keyID, "0x"), " ", ""))
	if want == "" {
		return nil, fmt.Errorf("%w: no key fingerprint given", ErrKeyNotFound)
	}
	// Exported secret keys first: they carry their own private parts.
	if data, err := os.ReadFile(filepath.Join(home, "secring.gpg")); err == nil {
		el, err := readEntities(data)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", filepath.Join(home, "secring.gpg"), err)
		}
		if e := findEntity(el, want); e != nil && e.PrivateKey != nil {
			if err := decryptEntity(e, passphrase); err != nil {
				return nil, err
			}
			return &SimpleSigner{entity: e}, nil
		}
	}
	var pub openpgp.EntityList
	for _, name := range []string{"pubring.kbx", "pubring.gpg"} {
		data, err := os.ReadFile(filepath.Join(home, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading GPG keys: %w", err)
		}
		el, err := readEntities(data)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", filepath.Join(home, name), err)
		}
		pub = append(pub, el...)
	}
	e := findEntity(pub, want)
	if e == nil {
		return nil, fmt.Errorf("%w: no key %s in %s", ErrKeyNotFound, keyID, home)
	}
	key, ok := e.SigningKey(time.Now())
	if !ok {
		return nil, fmt.Errorf("%w: key %s has no valid signing key (expired or revoked?)", ErrKeyNotFound, keyID)
	}
	priv, err := agentPrivateKey(filepath.Join(home, "private-keys-v1.d"), key.PublicKey, passphrase)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", keyID, err)
	}
	if key.PublicKey == e.PrimaryKey {
		e.PrivateKey = priv
	} else {
		for i := range e.Subkeys {
			if e.Subkeys[i].PublicKey == key.PublicKey {
				e.Subkeys[i].PrivateKey = priv
			}
		}
	}
	return &SimpleSigner{entity: e}, nil
}

// ReadSigningKey reads an exported secret key (binary or armored) and
// decrypts it with passphrase.
func ReadSigningKey(data, passphrase []byte) (*SimpleSigner, error) {
	el, err := readEntities(data)
	if err != nil {
		return nil, err
	}
	for _, e := range el {
		if e.PrivateKey != nil {
			if err := decryptEntity(e, passphrase); err != nil {
				return nil, err
			}
			return &SimpleSigner{entity: e}, nil
		}
	}
	return nil, fmt.Errorf("%w: no secret key in the data", ErrKeyNotFound)
}

// findEntity returns the entity whose primary or subkey fingerprint is
// want, or whose key ID ends it (16 hex digits at least).
func findEntity(el openpgp.EntityList, want string) *openpgp.Entity {
	match := func(pk *packet.PublicKey) bool {
		fp := fingerprint(pk)
		return fp == want || len(want) >= 16 && strings.HasSuffix(fp, want)
	}
	for _, e := range el {
		if match(e.PrimaryKey) {
			return e
		}
		for _, sk := range e.Subkeys {
			if match(sk.PublicKey) {
				return e
			}
		}
	}
	return nil
}

func decryptEntity(e *openpgp.Entity, passphrase []byte) error {
	keys := []*packet.PrivateKey{e.PrivateKey}
	for _, sk := range e.Subkeys {
		keys = append(keys, sk.PrivateKey)
	}
	for _, k := range keys {
		if k == nil || !k.Encrypted {
			continue
		}
		if len(passphrase) == 0 {
			return fmt.Errorf("%w: key %s is protected and no passphrase was given", ErrPassphrase, fingerprint(e.PrimaryKey))
		}
		if err := k.Decrypt(passphrase); err != nil {
			return fmt.Errorf("%w for key %s: %v", ErrPassphrase, fingerprint(e.PrimaryKey), err)
		}
	}
	return nil
}

// agentPrivateKey finds the gpg-agent key file holding the private part
// of pub in dir and decrypts it.
func agentPrivateKey(dir string, pub *packet.PublicKey, passphrase []byte) (*packet.PrivateKey, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, ent := range ents {
		if !strings.HasSuffix(ent.Name(), ".key") {
			continue
		}
		path := filepath.Join(dir, ent.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		tree, err := agentKeyTree(data)
		if err != nil {
			continue // a file of a kind we do not read cannot be ours
		}
		if len(tree.List) < 2 || !matchesPublic(tree.List[1], pub) {
			continue
		}
		priv, err := agentDecrypt(tree, pub, passphrase)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return priv, nil
	}
	return nil, fmt.Errorf("%w: no private key for %s in %s", ErrKeyNotFound, fingerprint(pub), dir)
}

// agentKeyTree parses a key file: the extended format ("Key: (…)"
// among name-value lines) or a bare canonical S-expression.
func agentKeyTree(data []byte) (*sexp, error) {
	if len(data) > 0 && data[0] == '(' {
		return parseSexp(data)
	}
	var key []byte
	inKey := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t"):
			if inKey {
				key = append(append(key, '\n'), strings.TrimLeft(line, " \t")...)
			}
		case strings.HasPrefix(line, "Key:"):
			inKey = true
			key = append(key, strings.TrimSpace(strings.TrimPrefix(line, "Key:"))...)
		default:
			inKey = false
		}
	}
	if key == nil {
		return nil, fmt.Errorf("no Key: entry")
	}
	return parseSexp(key)
}

// matchesPublic reports whether the algorithm list of a key file (rsa
// (n …)(e …) …) or (ecc (curve …)(q …) …) holds pub's public key.
func matchesPublic(alg *sexp, pub *packet.PublicKey) bool {
	switch k := pub.PublicKey.(type) {
	case *rsa.PublicKey:
		n := alg.value("n")
		return alg.head() == "rsa" && n != nil && new(big.Int).SetBytes(n).Cmp(k.N) == 0
	case *eddsa.PublicKey:
		q := alg.value("q")
		return alg.head() == "ecc" && q != nil && bytes.Equal(bytes.TrimPrefix(q, []byte{0x40}), k.X)
	}
	return false
}

// agentDecrypt returns the private key of a (private-key …) or
// (protected-private-key …) tree.
func agentDecrypt(tree *sexp, pub *packet.PublicKey, passphrase []byte) (*packet.PrivateKey, error) {
	alg := tree.List[1]
	var secret *sexp
	switch tree.head() {
	case "private-key":
		secret = alg
	case "protected-private-key":
		var err error
		if secret, err = unprotect(alg, passphrase); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown key file kind %q", tree.head())
	}
	switch k := pub.PublicKey.(type) {
	case *rsa.PublicKey:
		d, p, q := secret.value("d"), secret.value("p"), secret.value("q")
		if d == nil || p == nil || q == nil {
			return nil, fmt.Errorf("%w: RSA key lacks d, p or q", ErrPassphrase)
		}
		rk := &rsa.PrivateKey{PublicKey: *k, D: new(big.Int).SetBytes(d), Primes: []*big.Int{new(big.Int).SetBytes(p), new(big.Int).SetBytes(q)}}
		if err := rk.Validate(); err != nil {
			return nil, fmt.Errorf("%w: the decrypted key does not match its public key", ErrPassphrase)
		}
		rk.Precompute()
		return &packet.PrivateKey{PublicKey: *pub, PrivateKey: rk}, nil
	case *eddsa.PublicKey:
		d := secret.value("d")
		if len(d) == 0 || len(d) > ed25519.SeedSize {
			return nil, fmt.Errorf("%w: Ed25519 key lacks d", ErrPassphrase)
		}
		seed := make([]byte, ed25519.SeedSize)
		copy(seed[ed25519.SeedSize-len(d):], d)
		if !bytes.Equal(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), k.X) {
			return nil, fmt.Errorf("%w: the decrypted key does not match its public key", ErrPassphrase)
		}
		sk := eddsa.NewPrivateKey(*k)
		if err := sk.UnmarshalByteSecret(seed); err != nil {
			return nil, err
		}
		return &packet.PrivateKey{PublicKey: *pub, PrivateKey: sk}, nil
	}
	return nil, fmt.Errorf("key algorithm %T is not supported for signing", pub.PublicKey)
}

// unprotect decrypts the (protected MODE ((sha1 SALT COUNT) IV) DATA)
// list of an algorithm list as gpg-agent's protect.c does and returns
// the list of secret parameters.
func unprotect(alg *sexp, passphrase []byte) (*sexp, error) {
	var prot *sexp
	rest := &sexp{List: []*sexp{}}
	for _, c := range alg.List {
		if c.head() == "protected" && prot == nil {
			prot = c
			continue
		}
		rest.List = append(rest.List, c)
	}
	if prot == nil || len(prot.List) != 4 || len(prot.List[2].List) != 2 || len(prot.List[2].List[0].List) != 3 {
		return nil, fmt.Errorf("malformed protected key")
	}
	mode := string(prot.List[1].Atom)
	params := prot.List[2]
	s2kList, iv, data := params.List[0], params.List[1].Atom, prot.List[3].Atom
	if s2kList.head() != "sha1" {
		return nil, fmt.Errorf("unsupported key protection hash %q", s2kList.head())
	}
	salt := s2kList.List[1].Atom
	count, err := strconv.ParseUint(string(s2kList.List[2].Atom), 10, 32)
	if err != nil || len(salt) != 8 {
		return nil, fmt.Errorf("malformed key protection parameters")
	}
	if count < 256 {
		count = (16 + count&15) << ((count >> 4) + 6)
	}
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: the key is protected and no passphrase was given", ErrPassphrase)
	}
	keyLen := 16
	if mode == "openpgp-s2k3-sha1-aes256-cbc" {
		keyLen = 32
	}
	key := make([]byte, keyLen)
	s2k.Iterated(key, sha1.New(), passphrase, salt, int(count))
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	var plain []byte
	switch mode {
	case "openpgp-s2k3-ocb-aes":
		aead, err := ocb.NewOCBWithNonceAndTagSize(block, 12, 16)
		if err != nil {
			return nil, err
		}
		var aad bytes.Buffer
		rest.canonical(&aad)
		if len(iv) != 12 {
			return nil, fmt.Errorf("malformed OCB nonce")
		}
		if plain, err = aead.Open(nil, iv, data, aad.Bytes()); err != nil {
			return nil, fmt.Errorf("%w (%v)", ErrPassphrase, err)
		}
	case "openpgp-s2k3-sha1-aes-cbc", "openpgp-s2k3-sha1-aes256-cbc":
		if len(iv) != aes.BlockSize || len(data) == 0 || len(data)%aes.BlockSize != 0 {
			return nil, fmt.Errorf("malformed CBC protection")
		}
		plain = make([]byte, len(data))
		cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, data)
	default:
		return nil, fmt.Errorf("unsupported key protection %q", mode)
	}
	secret, err := parseSexp(plain)
	if err != nil || secret.isAtom() || len(secret.List) == 0 {
		return nil, fmt.Errorf("%w: the decrypted key does not parse", ErrPassphrase)
	}
	// ((d …)(p …)…) — and a CBC list may start with a nested list.
	if len(secret.List) > 0 && secret.List[0].head() == "" && !secret.List[0].isAtom() {
		secret = secret.List[0]
	}
	return secret, nil
}
