package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/internal/images"
)

// signFlags are the signing flags of push and image copy, as Buildah,
// Podman and Skopeo name them.
type signFlags struct {
	By, SigstoreKey, PassphraseFile, Identity string
}

func (s *signFlags) add(f *pflag.FlagSet) {
	f.StringVar(&s.By, "sign-by", "", "sign the image with the GPG key of this fingerprint, read from $GNUPGHOME (default ~/.gnupg) without an agent; the signature goes to the lookaside store registries.d names")
	f.StringVar(&s.SigstoreKey, "sign-by-sigstore-private-key", "", "sign the image with this cosign private key; the signature goes to the registry as tag sha256-DIGEST.sig")
	f.StringVar(&s.PassphraseFile, "sign-passphrase-file", "", "read the passphrase of the signing key from this file")
	f.StringVar(&s.Identity, "sign-identity", "", "the Docker reference the signature names (default: the destination)")
}

// options reads the passphrase file and GnuPG's home ($GNUPGHOME or
// ~/.gnupg).
func (s signFlags) options() (images.SignOptions, error) {
	o := images.SignOptions{By: s.By, SigstoreKey: s.SigstoreKey, Identity: s.Identity}
	if s.PassphraseFile != "" {
		if !o.Enabled() {
			return o, usageErrorf("--sign-passphrase-file needs --sign-by or --sign-by-sigstore-private-key")
		}
		b, err := os.ReadFile(s.PassphraseFile)
		if err != nil {
			return o, fmt.Errorf("reading --sign-passphrase-file: %w", err)
		}
		o.Passphrase = []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
	}
	if s.By != "" {
		o.GPGHome = os.Getenv("GNUPGHOME")
		if o.GPGHome == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return o, fmt.Errorf("finding the GnuPG home: %w", err)
			}
			o.GPGHome = filepath.Join(home, ".gnupg")
		}
	}
	return o, nil
}
