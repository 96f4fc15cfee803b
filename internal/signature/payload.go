package signature

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/opencontainers/go-digest"
)

// Payload types: what the "critical.type" of a payload says it is.
const (
	// SimpleSigningType is the type of an OpenPGP simple-signing payload.
	SimpleSigningType = "atomic container signature"
	// SigstoreType is the type of a cosign payload.
	SigstoreType = "cosign container image signature"
)

// Payload is what a signature says: this manifest digest is the image
// with this Docker reference. Creator and Timestamp are optional and
// informative only.
type Payload struct {
	Type            string
	DockerReference string
	ManifestDigest  digest.Digest
	Creator         string
	// Timestamp is zero when the payload has none.
	Timestamp time.Time
}

// MarshalJSON writes the payload as containers/image and cosign do:
// {"critical":{"identity":{"docker-reference":…},"image":{"docker-manifest-digest":…},"type":…},"optional":{…}}.
func (p Payload) MarshalJSON() ([]byte, error) {
	if p.ManifestDigest == "" || p.DockerReference == "" || p.Type == "" {
		return nil, fmt.Errorf("signature payload needs a type, a docker reference and a manifest digest")
	}
	optional := map[string]any{}
	if p.Creator != "" {
		optional["creator"] = p.Creator
	}
	if !p.Timestamp.IsZero() {
		optional["timestamp"] = p.Timestamp.Unix()
	}
	return json.Marshal(map[string]any{
		"critical": map[string]any{
			"type":     p.Type,
			"image":    map[string]string{"docker-manifest-digest": p.ManifestDigest.String()},
			"identity": map[string]string{"docker-reference": p.DockerReference},
		},
		"optional": optional,
	})
}

// ParsePayload parses an untrusted payload of type typ as strictly as
// containers/image: the critical part must have exactly its fields, each
// once; unknown optional fields are ignored.
func ParsePayload(data []byte, typ string) (Payload, error) {
	p, err := parsePayload(data, typ)
	if err != nil {
		return Payload{}, fmt.Errorf("%w: payload: %v", ErrInvalidSignature, err)
	}
	return p, nil
}

func parsePayload(data []byte, typ string) (Payload, error) {
	var critical, optional json.RawMessage
	if err := exactObject(data, map[string]any{"critical": &critical, "optional": &optional}); err != nil {
		return Payload{}, err
	}
	p := Payload{}
	if !bytes.Equal(bytes.TrimSpace(optional), []byte("null")) {
		var creator string
		var ts float64
		var gotTS bool
		err := object(optional, func(key string) any {
			switch key {
			case "creator":
				return &creator
			case "timestamp":
				gotTS = true
				return &ts
			}
			return new(any)
		})
		if err != nil {
			return Payload{}, fmt.Errorf("optional: %w", err)
		}
		p.Creator = creator
		if gotTS {
			if ts != math.Trunc(ts) {
				return Payload{}, fmt.Errorf("optional.timestamp is not an integer")
			}
			p.Timestamp = time.Unix(int64(ts), 0).UTC()
		}
	}
	var image, identity json.RawMessage
	if err := exactObject(critical, map[string]any{"type": &p.Type, "image": &image, "identity": &identity}); err != nil {
		return Payload{}, fmt.Errorf("critical: %w", err)
	}
	if p.Type != typ {
		return Payload{}, fmt.Errorf("type %q, want %q", p.Type, typ)
	}
	var d string
	if err := exactObject(image, map[string]any{"docker-manifest-digest": &d}); err != nil {
		return Payload{}, fmt.Errorf("critical.image: %w", err)
	}
	var err error
	if p.ManifestDigest, err = digest.Parse(d); err != nil {
		return Payload{}, fmt.Errorf("docker-manifest-digest %q: %w", d, err)
	}
	if err := exactObject(identity, map[string]any{"docker-reference": &p.DockerReference}); err != nil {
		return Payload{}, fmt.Errorf("critical.identity: %w", err)
	}
	return p, nil
}

// exactObject decodes a JSON object that has exactly the keys of fields,
// each once, into them.
func exactObject(data []byte, fields map[string]any) error {
	seen := map[string]bool{}
	err := object(data, func(key string) any {
		seen[key] = true
		return fields[key]
	})
	if err != nil {
		return err
	}
	for k := range fields {
		if !seen[k] {
			return fmt.Errorf("field %q missing", k)
		}
	}
	return nil
}

// object decodes a JSON object, asking dest where each key's value goes
// (nil refuses the key); a key twice is refused.
func object(data []byte, dest func(key string) any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key := t.(string)
		if seen[key] {
			return fmt.Errorf("field %q twice", key)
		}
		seen[key] = true
		v := dest(key)
		if v == nil {
			return fmt.Errorf("unexpected field %q", key)
		}
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("field %q: %w", key, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the object")
	}
	return nil
}

// MatchesManifest reports whether manifest hashes to d with d's algorithm.
func MatchesManifest(manifest []byte, d digest.Digest) bool {
	if d.Validate() != nil || !d.Algorithm().Available() {
		return false
	}
	return d.Algorithm().FromBytes(manifest) == d
}
