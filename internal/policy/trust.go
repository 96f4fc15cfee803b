package policy

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/internal/signature"
)

// TrustType is `image trust set --type`.
type TrustType int

const (
	// TrustSignedBy needs a GPG signature by one of the keys.
	TrustSignedBy TrustType = iota
	// TrustAccept accepts anything (insecureAcceptAnything).
	TrustAccept
	// TrustReject rejects everything.
	TrustReject
	// TrustSigstoreSigned needs a sigstore signature by one of the keys.
	TrustSigstoreSigned
)

// ParseTrustType parses Podman's names: signedBy, accept (or
// insecureAcceptAnything), reject, sigstoreSigned.
func ParseTrustType(s string) (TrustType, error) {
	switch s {
	case "signedBy", "":
		return TrustSignedBy, nil
	case "accept", "insecureAcceptAnything":
		return TrustAccept, nil
	case "reject":
		return TrustReject, nil
	case "sigstoreSigned":
		return TrustSigstoreSigned, nil
	}
	return 0, fmt.Errorf("invalid trust type %q: use signedBy, accept, reject or sigstoreSigned", s)
}

// Set makes scope ("default", or a registry, namespace or repository
// of the docker transport) need what t says, with the public key files
// keys (made absolute) for the signed types; several keys are
// alternatives (keyPaths), as a key rotation needs. It replaces what
// the scope needed before and leaves the rest of the policy as it was.
func (p *Policy) Set(scope string, t TrustType, keys []string) error {
	var req Requirement
	abs := make([]string, 0, len(keys))
	for _, k := range keys {
		a, err := filepath.Abs(k)
		if err != nil {
			return err
		}
		abs = append(abs, a)
	}
	switch t {
	case TrustAccept, TrustReject:
		if len(keys) != 0 {
			return fmt.Errorf("%d public keys given for a trust type that takes none", len(keys))
		}
		req = &InsecureAcceptAnything{}
		if t == TrustReject {
			req = &Reject{}
		}
	case TrustSignedBy:
		if len(keys) == 0 {
			return fmt.Errorf("at least one public key must be given for type signedBy")
		}
		sb := &SignedBy{KeyType: "GPGKeys"}
		if len(abs) == 1 {
			sb.KeyPath = abs[0]
		} else {
			sb.KeyPaths = abs
		}
		req = sb
	case TrustSigstoreSigned:
		if len(keys) == 0 {
			return fmt.Errorf("at least one public key must be given for type sigstoreSigned")
		}
		ss := &SigstoreSigned{}
		if len(abs) == 1 {
			ss.KeyPath = abs[0]
		} else {
			ss.KeyPaths = abs
		}
		req = ss
	default:
		return fmt.Errorf("invalid trust type %d", t)
	}
	if scope == "default" {
		p.Default = Requirements{req}
		return nil
	}
	if err := validScope("docker", scope); err != nil || strings.ContainsAny(scope, "@") {
		return fmt.Errorf("%w: invalid scope %q", ErrInvalidPolicy, scope)
	}
	if p.Transports == nil {
		p.Transports = map[string]map[string]Requirements{}
	}
	if p.Transports["docker"] == nil {
		p.Transports["docker"] = map[string]Requirements{}
	}
	p.Transports["docker"][scope] = Requirements{req}
	return nil
}

// Entry is one line of `image trust show`.
type Entry struct {
	Transport string   `json:"transport"`
	Name      string   `json:"name,omitempty"`
	RepoName  string   `json:"repo_name,omitempty"`
	Keys      []string `json:"keys,omitempty"`
	// Store is the lookaside signature store of the scope (filled in
	// by the caller, which knows registries.d).
	Store string `json:"sigstore,omitempty"`
	Type  string `json:"type"`
	// ID names the keys' owners (their user IDs, or a sigstore key's
	// digest).
	ID string `json:"gpg_id,omitempty"`
}

// Describe lists the policy as `podman image trust show` does: the
// default first ("all"), then each scope of each transport.
func (p *Policy) Describe() []Entry {
	var out []Entry
	for _, r := range p.Default {
		e := describe(r)
		e.Transport, e.Name, e.RepoName = "all", "* (default)", "default"
		out = append(out, e)
	}
	for _, ts := range p.Scopes() {
		tr, scope := ts[0], ts[1]
		for _, r := range p.Transports[tr][scope] {
			e := describe(r)
			e.Transport, e.Name, e.RepoName = "repository", scope, scope
			if tr != "docker" {
				e.Transport = tr
			}
			if scope == "" {
				e.Name, e.RepoName = "* (default for "+tr+")", tr+" default"
			}
			out = append(out, e)
		}
	}
	return out
}

func describe(r Requirement) Entry {
	switch r := r.(type) {
	case *InsecureAcceptAnything:
		return Entry{Type: "accept"}
	case *Reject:
		return Entry{Type: "reject"}
	case *SignedBy:
		e := Entry{Type: "signed", Keys: r.KeyPaths}
		if r.KeyPath != "" {
			e.Keys = []string{r.KeyPath}
		}
		var kr *signature.Keyring
		if k, err := r.keyring(); err == nil {
			kr = k
		}
		if kr != nil {
			e.ID = strings.Join(kr.UserIDs(), ", ")
		}
		return e
	case *SigstoreSigned:
		e := Entry{Type: "sigstoreSigned", Keys: r.KeyPaths}
		if r.KeyPath != "" {
			e.Keys = []string{r.KeyPath}
		}
		if k, err := r.keys(); err == nil {
			e.ID = strings.Join(k.Identities(), ", ")
		}
		return e
	}
	return Entry{Type: r.Type()}
}
