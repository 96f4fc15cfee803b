package policy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// DefaultPath is the system-wide policy.
const DefaultPath = "/etc/containers/policy.json"

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalidPolicy reports a policy file that does not parse or
	// breaks containers-policy.json(5).
	ErrInvalidPolicy = errors.New("invalid signature policy")
	// ErrRejected reports an image the policy does not accept.
	ErrRejected = errors.New("image rejected by the signature policy")
)

// Policy is a parsed policy.json.
type Policy struct {
	// Default applies where no transport scope does.
	Default Requirements
	// Transports maps a transport name ("docker", "oci", …) to its
	// scopes ("" is the transport's default) and their requirements.
	Transports map[string]map[string]Requirements
}

// Requirements must all accept an image; a list is never empty.
type Requirements []Requirement

// Requirement is one rule of a scope: one of *Reject,
// *InsecureAcceptAnything, *SignedBy, *SigstoreSigned.
type Requirement interface {
	// Type is the requirement's "type" in policy.json.
	Type() string
}

// Reject refuses every image.
type Reject struct{}

// InsecureAcceptAnything accepts every image, signed or not.
type InsecureAcceptAnything struct{}

// SignedBy needs a simple-signing signature by one of the GPG keys,
// for an identity SignedIdentity accepts.
type SignedBy struct {
	KeyType        string
	KeyPath        string
	KeyPaths       []string
	KeyData        []byte
	SignedIdentity Identity
}

// SigstoreSigned needs a cosign signature by one of the public keys,
// for an identity SignedIdentity accepts.
type SigstoreSigned struct {
	KeyPath        string
	KeyPaths       []string
	KeyData        []byte
	KeyDatas       [][]byte
	SignedIdentity Identity
}

// Unsupported is a valid requirement kiln cannot check (X.509 keys,
// Fulcio certificates, Rekor): it rejects the images of its scope
// only, saying why, and is written back as it was read.
type Unsupported struct {
	Kind, Why string
	raw       json.RawMessage
}

// Type implements Requirement.
func (u *Unsupported) Type() string { return u.Kind }

// MarshalJSON writes the requirement as it was read.
func (u *Unsupported) MarshalJSON() ([]byte, error) { return u.raw, nil }

// Type implements Requirement.
func (*Reject) Type() string { return "reject" }

// Type implements Requirement.
func (*InsecureAcceptAnything) Type() string { return "insecureAcceptAnything" }

// Type implements Requirement.
func (*SignedBy) Type() string { return "signedBy" }

// Type implements Requirement.
func (*SigstoreSigned) Type() string { return "sigstoreSigned" }

// Load reads and parses a policy file.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading signature policy: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Parse parses policy.json as strictly as containers/image: unknown
// fields, a missing default, an empty requirement list and a scope that
// is not valid for its transport are errors.
func Parse(data []byte) (*Policy, error) {
	p, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	return p, nil
}

func parse(data []byte) (*Policy, error) {
	var raw struct {
		Default    []json.RawMessage                       `json:"default"`
		Transports map[string]map[string][]json.RawMessage `json:"transports"`
	}
	if err := strict(data, &raw); err != nil {
		return nil, err
	}
	if raw.Default == nil {
		return nil, fmt.Errorf(`"default" is missing`)
	}
	p := &Policy{Transports: map[string]map[string]Requirements{}}
	var err error
	if p.Default, err = parseRequirements(raw.Default); err != nil {
		return nil, fmt.Errorf("default: %w", err)
	}
	for tr, scopes := range raw.Transports {
		if tr == "" {
			return nil, fmt.Errorf("empty transport name")
		}
		p.Transports[tr] = map[string]Requirements{}
		for scope, reqs := range scopes {
			if err := validScope(tr, scope); err != nil {
				return nil, err
			}
			if p.Transports[tr][scope], err = parseRequirements(reqs); err != nil {
				return nil, fmt.Errorf("transport %q scope %q: %w", tr, scope, err)
			}
		}
	}
	return p, nil
}

// strict decodes JSON refusing unknown fields and trailing data.
func strict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

func parseRequirements(raws []json.RawMessage) (Requirements, error) {
	if len(raws) == 0 {
		return nil, fmt.Errorf("no requirements: an empty list would accept nothing; use reject")
	}
	out := make(Requirements, 0, len(raws))
	for _, r := range raws {
		req, err := parseRequirement(r)
		if err != nil {
			return nil, err
		}
		out = append(out, req)
	}
	return out, nil
}

func parseRequirement(data json.RawMessage) (Requirement, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, err
	}
	switch head.Type {
	case "reject":
		var v struct {
			Type string `json:"type"`
		}
		return &Reject{}, strict(data, &v)
	case "insecureAcceptAnything":
		var v struct {
			Type string `json:"type"`
		}
		return &InsecureAcceptAnything{}, strict(data, &v)
	case "signedBy":
		var v struct {
			Type           string          `json:"type"`
			KeyType        string          `json:"keyType"`
			KeyPath        string          `json:"keyPath"`
			KeyPaths       []string        `json:"keyPaths"`
			KeyData        []byte          `json:"keyData"`
			SignedIdentity json.RawMessage `json:"signedIdentity"`
		}
		if err := strict(data, &v); err != nil {
			return nil, fmt.Errorf("signedBy: %w", err)
		}
		switch v.KeyType {
		case "GPGKeys":
		case "":
			return nil, fmt.Errorf(`signedBy: "keyType" is missing`)
		case "signedByGPGKeys", "X509Certificates", "signedByX509CAs":
			return &Unsupported{Kind: "signedBy", Why: fmt.Sprintf("keyType %q is not supported (only GPGKeys)", v.KeyType), raw: data}, nil
		default:
			return nil, fmt.Errorf("signedBy: unknown keyType %q", v.KeyType)
		}
		if n := count(v.KeyPath != "", v.KeyPaths != nil, v.KeyData != nil); n != 1 {
			return nil, fmt.Errorf("signedBy: exactly one of keyPath, keyPaths and keyData is needed, %d given", n)
		}
		if v.KeyPaths != nil && len(v.KeyPaths) == 0 {
			return nil, fmt.Errorf("signedBy: keyPaths is empty")
		}
		id, err := parseIdentity(v.SignedIdentity)
		if err != nil {
			return nil, fmt.Errorf("signedBy: %w", err)
		}
		return &SignedBy{KeyType: v.KeyType, KeyPath: v.KeyPath, KeyPaths: v.KeyPaths, KeyData: v.KeyData, SignedIdentity: id}, nil
	case "sigstoreSigned":
		var v struct {
			Type                string          `json:"type"`
			KeyPath             string          `json:"keyPath"`
			KeyPaths            []string        `json:"keyPaths"`
			KeyData             []byte          `json:"keyData"`
			KeyDatas            [][]byte        `json:"keyDatas"`
			Fulcio              json.RawMessage `json:"fulcio"`
			PKI                 json.RawMessage `json:"pki"`
			RekorPublicKeyPath  string          `json:"rekorPublicKeyPath"`
			RekorPublicKeyPaths []string        `json:"rekorPublicKeyPaths"`
			RekorPublicKeyData  []byte          `json:"rekorPublicKeyData"`
			RekorPublicKeyDatas [][]byte        `json:"rekorPublicKeyDatas"`
			SignedIdentity      json.RawMessage `json:"signedIdentity"`
		}
		if err := strict(data, &v); err != nil {
			return nil, fmt.Errorf("sigstoreSigned: %w", err)
		}
		if v.Fulcio != nil || v.PKI != nil || v.RekorPublicKeyPath != "" || v.RekorPublicKeyPaths != nil || v.RekorPublicKeyData != nil || v.RekorPublicKeyDatas != nil {
			return &Unsupported{Kind: "sigstoreSigned", Why: "fulcio, pki and rekor are not supported (only public keys)", raw: data}, nil
		}
		if n := count(v.KeyPath != "", v.KeyPaths != nil, v.KeyData != nil, v.KeyDatas != nil); n != 1 {
			return nil, fmt.Errorf("sigstoreSigned: exactly one of keyPath, keyPaths, keyData and keyDatas is needed, %d given", n)
		}
		if v.KeyPaths != nil && len(v.KeyPaths) == 0 || v.KeyDatas != nil && len(v.KeyDatas) == 0 {
			return nil, fmt.Errorf("sigstoreSigned: an empty key list")
		}
		id, err := parseIdentity(v.SignedIdentity)
		if err != nil {
			return nil, fmt.Errorf("sigstoreSigned: %w", err)
		}
		return &SigstoreSigned{KeyPath: v.KeyPath, KeyPaths: v.KeyPaths, KeyData: v.KeyData, KeyDatas: v.KeyDatas, SignedIdentity: id}, nil
	case "":
		return nil, fmt.Errorf(`a requirement without "type"`)
	}
	return nil, fmt.Errorf("unknown requirement type %q", head.Type)
}

func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// validScope checks a scope's syntax for the transports kiln knows; the
// scopes of other transports are kept as they are.
func validScope(transport, scope string) error {
	if scope == "" {
		return nil
	}
	switch transport {
	case "docker", "atomic":
		if strings.HasPrefix(scope, "*.") {
			if strings.ContainsAny(scope[2:], "/*@:") || scope == "*." {
				return fmt.Errorf("transport %q: invalid wildcard scope %q", transport, scope)
			}
			return nil
		}
		if strings.Contains(scope, "://") || strings.HasPrefix(scope, "/") || strings.HasSuffix(scope, "/") {
			return fmt.Errorf("transport %q: invalid scope %q", transport, scope)
		}
	case "dir", "oci", "oci-archive", "docker-archive":
		if !strings.HasPrefix(scope, "/") {
			return fmt.Errorf("transport %q: scope %q is not an absolute path", transport, scope)
		}
	}
	return nil
}

// MarshalJSON writes the policy as containers/image does.
func (p *Policy) MarshalJSON() ([]byte, error) {
	type out struct {
		Default    Requirements                       `json:"default"`
		Transports map[string]map[string]Requirements `json:"transports,omitempty"`
	}
	return json.Marshal(out{Default: p.Default, Transports: p.Transports})
}

// MarshalIndent returns the policy as containers/image writes
// policy.json: four spaces of indentation and a final newline.
func (p *Policy) MarshalIndent() ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "    "); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// MarshalJSON implements json.Marshaler.
func (*Reject) MarshalJSON() ([]byte, error) { return []byte(`{"type":"reject"}`), nil }

// MarshalJSON implements json.Marshaler.
func (*InsecureAcceptAnything) MarshalJSON() ([]byte, error) {
	return []byte(`{"type":"insecureAcceptAnything"}`), nil
}

// MarshalJSON implements json.Marshaler.
func (r *SignedBy) MarshalJSON() ([]byte, error) {
	type o struct {
		Type           string            `json:"type"`
		KeyType        string            `json:"keyType"`
		KeyPath        string            `json:"keyPath,omitempty"`
		KeyPaths       []string          `json:"keyPaths,omitempty"`
		KeyData        string            `json:"keyData,omitempty"`
		SignedIdentity map[string]string `json:"signedIdentity,omitempty"`
	}
	v := o{Type: r.Type(), KeyType: r.KeyType, KeyPath: r.KeyPath, KeyPaths: r.KeyPaths, SignedIdentity: identityJSON(r.SignedIdentity)}
	if r.KeyData != nil {
		v.KeyData = base64.StdEncoding.EncodeToString(r.KeyData)
	}
	return json.Marshal(v)
}

// MarshalJSON implements json.Marshaler.
func (r *SigstoreSigned) MarshalJSON() ([]byte, error) {
	type o struct {
		Type           string            `json:"type"`
		KeyPath        string            `json:"keyPath,omitempty"`
		KeyPaths       []string          `json:"keyPaths,omitempty"`
		KeyData        []byte            `json:"keyData,omitempty"`
		KeyDatas       [][]byte          `json:"keyDatas,omitempty"`
		SignedIdentity map[string]string `json:"signedIdentity,omitempty"`
	}
	return json.Marshal(o{Type: r.Type(), KeyPath: r.KeyPath, KeyPaths: r.KeyPaths, KeyData: r.KeyData, KeyDatas: r.KeyDatas, SignedIdentity: identityJSON(r.SignedIdentity)})
}

// Scopes lists the transports and scopes of the policy, sorted.
func (p *Policy) Scopes() [][2]string {
	var out [][2]string
	for tr, scopes := range p.Transports {
		for s := range scopes {
			out = append(out, [2]string{tr, s})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out
}
