package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"
)

// The signature extension of OpenShift's registry (containers/image's
// docs/signature-protocols.md): a registry that answers /v2/ with
// "X-Registry-Supports-Signatures: 1" keeps simple-signing signatures at
// /extensions/v2/REPO/signatures/DIGEST.

// extensionSignature is one signature of the extension's API.
type extensionSignature struct {
	Version int    `json:"schemaVersion"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	Content []byte `json:"content"`
}

func (c *Client) extensionURL(d digest.Digest) string {
	return fmt.Sprintf("https://%s/extensions/v2/%s/signatures/%s", c.repo.RegistryStr(), c.repo.RepositoryStr(), d)
}

// SupportsSignatures reports whether the registry has the signature
// extension.
func (c *Client) SupportsSignatures(ctx context.Context) (bool, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, url: fmt.Sprintf("https://%s/v2/", c.repo.RegistryStr()), ok: []int{http.StatusOK}})
	if err != nil {
		return false, fmt.Errorf("asking %s for its signature extension: %w", c.repo.RegistryStr(), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return resp.Header.Get("X-Registry-Supports-Signatures") == "1", nil
}

// ExtensionSignatures returns the simple-signing signatures the
// extension keeps for the manifest d.
func (c *Client) ExtensionSignatures(ctx context.Context, d digest.Digest) ([][]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, url: c.extensionURL(d), ok: []int{http.StatusOK}})
	if err != nil {
		return nil, fmt.Errorf("reading signatures of %s: %w", d, err)
	}
	defer resp.Body.Close()
	var body struct {
		Signatures []extensionSignature `json:"signatures"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("parsing signatures of %s: %w", d, err)
	}
	var out [][]byte
	for _, s := range body.Signatures {
		if s.Version == 2 && s.Type == "atomic" {
			out = append(out, s.Content)
		}
	}
	return out, nil
}

// PutExtensionSignature adds one simple-signing signature of the
// manifest d under a new random name.
func (c *Client) PutExtensionSignature(ctx context.Context, d digest.Digest, content []byte) error {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return err
	}
	body, err := json.Marshal(extensionSignature{Version: 2, Name: d.String() + "@" + hex.EncodeToString(r[:]), Type: "atomic", Content: content})
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, request{method: http.MethodPut, url: c.extensionURL(d), body: body,
		header: http.Header{"Content-Type": {"application/json"}}, ok: []int{http.StatusCreated}})
	if err != nil {
		return fmt.Errorf("uploading a signature of %s: %w", d, err)
	}
	resp.Body.Close()
	return nil
}
