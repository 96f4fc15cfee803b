package transport

import (
	"context"
	"fmt"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/opencontainers/go-digest"
)

// copySignatures carries the signatures of the source's manifest (the
// top-level one, or the instance copied out of an index) to the
// destination's manifest written with digest written, adding those
// opts.Sign makes. Signatures of a manifest the copy changed would no
// longer verify: that is an error unless RemoveSignatures drops them.
func (c *copier) copySignatures(ctx context.Context, raw []byte, mt string, written digest.Digest) error {
	var sigs [][]byte
	if _, ok := c.dst.(SignatureDestination); ok && !c.opts.RemoveSignatures {
		from := digest.FromBytes(raw)
		if image.IsIndex(mt) && !c.opts.All {
			idx, err := parseIndex(raw)
			if err != nil {
				return err
			}
			desc, err := MatchPlatform(idx, c.opts.platform())
			if err != nil {
				return err
			}
			from = desc.Digest
		}
		s, err := Signatures(ctx, c.src, from)
		if err != nil {
			return fmt.Errorf("reading signatures: %w", err)
		}
		if len(s) > 0 && from != written {
			return fmt.Errorf("copying %d signatures: the manifest changed from %s to %s, which they do not sign; use --remove-signatures", len(s), from, written)
		}
		sigs = s
	}
	return c.putSignatures(ctx, written, sigs)
}

// putSignatures adds opts.Sign's signatures of the manifest written to
// the carried ones and writes them. A destination that keeps no
// signatures (a layout, an archive, the Docker daemon) refuses new ones;
// nothing is carried to it (copySignatures reads none), so that an image
// pulled with its signatures can still be pushed there.
func (c *copier) putSignatures(ctx context.Context, written digest.Digest, carried [][]byte) error {
	sd, ok := c.dst.(SignatureDestination)
	sigs := carried
	if c.opts.Sign != nil {
		s, err := c.opts.Sign(ctx, written)
		if err != nil {
			return err
		}
		sigs = append(sigs, s...)
	}
	if len(sigs) == 0 {
		return nil
	}
	if !ok {
		return fmt.Errorf("%w: signing needs a registry or dir: destination", ErrSignaturesUnsupported)
	}
	if err := sd.PutSignatures(ctx, written, sigs); err != nil {
		return fmt.Errorf("writing signatures: %w", err)
	}
	return nil
}

// copyInstanceSignatures carries the signatures of one instance of an
// index copied whole (--all), and signs it with opts.Sign, as
// containers/image does (its policy checks every instance).
func (c *copier) copyInstanceSignatures(ctx context.Context, from, written digest.Digest) error {
	var sigs [][]byte
	if _, ok := c.dst.(SignatureDestination); ok && !c.opts.RemoveSignatures {
		s, err := Signatures(ctx, c.src, from)
		if err != nil {
			return fmt.Errorf("reading signatures: %w", err)
		}
		if len(s) > 0 && from != written {
			return fmt.Errorf("copying %d signatures: the manifest changed from %s to %s, which they do not sign; use --remove-signatures", len(s), from, written)
		}
		sigs = s
	}
	return c.putSignatures(ctx, written, sigs)
}
