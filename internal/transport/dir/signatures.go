package dir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/opencontainers/go-digest"
)

// signaturePath is containers/image's name of signature n (from 1) of
// the top-level manifest ("signature-N") or of an instance
// ("HEX.signature-N").
func signaturePath(dir string, instance *digest.Digest, n int) (string, error) {
	if instance == nil {
		return filepath.Join(dir, fmt.Sprintf("signature-%d", n)), nil
	}
	p, err := blobPath(dir, *instance)
	return fmt.Sprintf("%s.signature-%d", p, n), err
}

// Signatures returns the signature files of the manifest d:
// signature-1, signature-2, … for manifest.json's, HEX.signature-N for
// an instance's.
func (s *Source) Signatures(_ context.Context, d digest.Digest) ([][]byte, error) {
	var instance *digest.Digest
	if top, err := os.ReadFile(filepath.Join(s.dir, "manifest.json")); err != nil || digest.FromBytes(top) != d {
		instance = &d
	}
	var out [][]byte
	for n := 1; ; n++ {
		p, err := signaturePath(s.dir, instance, n)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading signature: %w", err)
		}
		out = append(out, b)
	}
}

// PutSignatures writes the signatures of manifest d (the top-level
// manifest's when d is its digest).
func (d *Destination) PutSignatures(_ context.Context, md digest.Digest, sigs [][]byte) error {
	var instance *digest.Digest
	if d.top == nil || digest.FromBytes(d.top) != md {
		instance = &md
	}
	for i, s := range sigs {
		p, err := signaturePath(d.dir, instance, i+1)
		if err != nil {
			return err
		}
		if err := digestio.WriteFileAtomic(p, s, 0o644); err != nil {
			return fmt.Errorf("writing signature to dir:%s: %w", d.dir, err)
		}
	}
	return nil
}
