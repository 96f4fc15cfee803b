package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/digestio"
)

// Referrers asks the registry's referrers API for the artifacts that
// refer to the manifest d. ok is false when the registry has no such
// API (a 404 answer): the referrers tag schema applies then.
func (c *Client) Referrers(ctx context.Context, d digest.Digest) (idx ocispec.Index, ok bool, err error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, url: c.url("referrers", d.String()),
		header: http.Header{"Accept": {ocispec.MediaTypeImageIndex}}, ok: []int{http.StatusOK}})
	if errors.Is(err, ErrNotFound) {
		return idx, false, nil
	}
	if err != nil {
		return idx, false, err
	}
	defer resp.Body.Close()
	raw, err := digestio.ReadDocument(resp.Body)
	if err != nil {
		return idx, false, fmt.Errorf("reading referrers of %s: %w", d, err)
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return idx, false, fmt.Errorf("parsing referrers of %s: %w", d, err)
	}
	return idx, true, nil
}
