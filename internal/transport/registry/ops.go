package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ManifestAccept is the Accept header sent for manifests: every manifest
// and index type kiln understands.
var ManifestAccept = []string{
	image.MediaTypeOCIManifest,
	image.MediaTypeOCIIndex,
	image.MediaTypeDockerManifest,
	image.MediaTypeDockerManifestList,
}

// GetManifest fetches the manifest named by ref (a tag or a digest) as
// stored, refusing more than 4 MiB and verifying it against the digest in
// ref or, for a tag, the Docker-Content-Digest header.
func (c *Client) GetManifest(ctx context.Context, ref string) ([]byte, string, digest.Digest, error) {
	var raw []byte
	var mt string
	var dgst digest.Digest
	err := c.withRetry(ctx, "GET manifest "+ref, func() error {
		resp, err := c.once(ctx, request{
			method: http.MethodGet, url: c.url("manifests", ref),
			header: http.Header{"Accept": {strings.Join(ManifestAccept, ", ")}},
			ok:     []int{http.StatusOK},
		})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.ContentLength > image.MaxDocumentSize {
			return fmt.Errorf("manifest %s: %w: %d bytes", ref, digestio.ErrTooLarge, resp.ContentLength)
		}
		raw, err = digestio.ReadDocument(resp.Body)
		if err != nil {
			return fmt.Errorf("reading manifest %s: %w", ref, err)
		}
		mt = resp.Header.Get("Content-Type")
		want := digest.Digest(resp.Header.Get("Docker-Content-Digest"))
		if d, err := digest.Parse(ref); err == nil {
			want = d
		}
		if want != "" && want.Validate() == nil {
			dgst = want
			if err := digestio.VerifyDocument(raw, want); err != nil {
				return fmt.Errorf("manifest %s: %w", ref, err)
			}
		} else {
			dgst = digest.FromBytes(raw)
		}
		return nil
	})
	if err != nil {
		return nil, "", "", err
	}
	return raw, sniffMediaType(raw, mt), dgst, nil
}

// sniffMediaType prefers the mediaType field of the document over the
// Content-Type header, which some registries get wrong.
func sniffMediaType(raw []byte, header string) string {
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(raw, &probe) == nil && probe.MediaType != "" {
		return probe.MediaType
	}
	if i := strings.IndexByte(header, ';'); i >= 0 {
		header = header[:i]
	}
	return strings.TrimSpace(header)
}

// PutManifest uploads raw under ref (a tag or a digest).
func (c *Client) PutManifest(ctx context.Context, ref string, raw []byte, mediaType string) error {
	resp, err := c.do(ctx, request{
		method: http.MethodPut, url: c.url("manifests", ref), body: raw,
		header: http.Header{"Content-Type": {mediaType}},
		ok:     []int{http.StatusCreated, http.StatusOK, http.StatusAccepted},
	})
	if err != nil {
		return fmt.Errorf("uploading manifest %s:%s: %w", c.repo.Name(), ref, err)
	}
	resp.Body.Close()
	return nil
}

// GetBlob opens a blob; size is -1 when the registry does not say. The
// content is not verified here: callers wrap it in a digestio.Verifier.
// It is tried once: transport.Copy retries a whole blob.
func (c *Client) GetBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	if err := d.Validate(); err != nil {
		return nil, 0, fmt.Errorf("blob %q: %w", d, err)
	}
	resp, err := c.once(ctx, request{method: http.MethodGet, url: c.url("blobs", d.String()), ok: []int{http.StatusOK}})
	if err != nil {
		return nil, 0, fmt.Errorf("fetching blob %s from %s: %w", d, c.repo.Name(), err)
	}
	return resp.Body, resp.ContentLength, nil
}

// HasBlob reports whether the repository has the blob.
func (c *Client) HasBlob(ctx context.Context, d digest.Digest) (bool, error) {
	resp, err := c.do(ctx, request{method: http.MethodHead, url: c.url("blobs", d.String()), ok: []int{http.StatusOK}})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking blob %s in %s: %w", d, c.repo.Name(), err)
	}
	resp.Body.Close()
	return true, nil
}

// MountBlob asks the registry to mount d from repository from (same
// registry, path without host). It reports whether the mount happened.
func (c *Client) MountBlob(ctx context.Context, d digest.Digest, from string) (bool, error) {
	q := url.Values{"mount": {d.String()}, "from": {from}}
	resp, err := c.do(ctx, request{
		method: http.MethodPost, url: c.url("blobs", "uploads/") + "?" + q.Encode(),
		ok: []int{http.StatusCreated, http.StatusAccepted},
	})
	if err != nil {
		return false, fmt.Errorf("mounting blob %s from %s: %w", d, from, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return true, nil
	}
	// The registry opened an upload instead; cancel it.
	if loc, err := resp.Location(); err == nil {
		if r, err := c.once(ctx, request{method: http.MethodDelete, url: loc.String(), ok: []int{http.StatusNoContent, http.StatusOK, http.StatusNotFound}}); err == nil {
			r.Body.Close()
		}
	}
	return false, nil
}

// PutBlob uploads a blob in one request. The content of r is verified
// against desc while it streams: on a mismatch the request is aborted
// before the registry can commit it. It is tried once: transport.Copy
// retries a whole blob.
func (c *Client) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	resp, err := c.once(ctx, request{method: http.MethodPost, url: c.url("blobs", "uploads/"), ok: []int{http.StatusAccepted}})
	if err != nil {
		return fmt.Errorf("starting upload of blob %s to %s: %w", desc.Digest, c.repo.Name(), err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("starting upload of blob %s to %s: %w", desc.Digest, c.repo.Name(), err)
	}
	q := loc.Query()
	q.Set("digest", desc.Digest.String())
	loc.RawQuery = q.Encode()
	v, err := digestio.NewVerifier(r, desc.Digest, desc.Size)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), v)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.ContentLength = desc.Size
	if desc.Size < 0 {
		req.ContentLength = -1
	}
	pr, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("uploading blob %s to %s: %w", desc.Digest, c.repo.Name(), err)
	}
	if _, err := checkStatus(pr, []int{http.StatusCreated}); err != nil {
		return fmt.Errorf("uploading blob %s to %s: %w", desc.Digest, c.repo.Name(), err)
	}
	pr.Body.Close()
	if !v.Verified() {
		return fmt.Errorf("uploading blob %s: content not fully read", desc.Digest)
	}
	return nil
}

// Tags lists the repository's tags, following pagination.
func (c *Client) Tags(ctx context.Context) ([]string, error) {
	var all []string
	next := c.url("tags", "list")
	for next != "" {
		resp, err := c.do(ctx, request{method: http.MethodGet, url: next, ok: []int{http.StatusOK}})
		if err != nil {
			return nil, fmt.Errorf("listing tags of %s: %w", c.repo.Name(), err)
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("listing tags of %s: %w", c.repo.Name(), err)
		}
		all = append(all, page.Tags...)
		next = nextLink(resp)
	}
	return all, nil
}

func nextLink(resp *http.Response) string {
	link := resp.Header.Get("Link")
	if link == "" {
		return ""
	}
	start, end := strings.IndexByte(link, '<'), strings.IndexByte(link, '>')
	if start < 0 || end <= start {
		return ""
	}
	u, err := resp.Request.URL.Parse(link[start+1 : end])
	if err != nil {
		return ""
	}
	return u.String()
}

// DeleteManifest deletes the manifest with digest d.
func (c *Client) DeleteManifest(ctx context.Context, d digest.Digest) error {
	resp, err := c.do(ctx, request{method: http.MethodDelete, url: c.url("manifests", d.String()), ok: []int{http.StatusAccepted, http.StatusOK}})
	if err != nil {
		return fmt.Errorf("deleting manifest %s@%s: %w", c.repo.Name(), d, err)
	}
	resp.Body.Close()
	return nil
}
