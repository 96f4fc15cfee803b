package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// RegistrySources limit the registries images come from and go to: none
// in Blocked, only those in Allowed when it is not empty; those in
// Insecure are reached without TLS verification.
type RegistrySources struct {
	Allowed  []string `json:"allowedRegistries,omitempty"`
	Blocked  []string `json:"blockedRegistries,omitempty"`
	Insecure []string `json:"insecureRegistries,omitempty"`
}

// ParseRegistrySources parses the JSON of BUILD_REGISTRY_SOURCES
// ({"allowedRegistries": [...], "blockedRegistries": [...],
// "insecureRegistries": [...]}); "" is no limit.
func ParseRegistrySources(s string) (RegistrySources, error) {
	var rs RegistrySources
	if strings.TrimSpace(s) == "" {
		return rs, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rs); err != nil {
		return RegistrySources{}, fmt.Errorf("parsing registry sources %q: %w", s, err)
	}
	return rs, nil
}

// ErrDenied is matched by a *DeniedError.
var ErrDenied = errors.New("registry denied by policy")

// DeniedError says that RegistrySources keep a registry out.
type DeniedError struct {
	Registry string
	Reason   string // Buildah's: "it is in the blocked registries list", ...
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("registry %q denied by policy: %s", e.Registry, e.Reason)
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// check refuses host when the sources keep it out.
func (rs RegistrySources) check(host string) error {
	if slices.Contains(rs.Blocked, host) {
		return &DeniedError{Registry: host, Reason: "it is in the blocked registries list"}
	}
	if len(rs.Allowed) > 0 && !slices.Contains(rs.Allowed, host) {
		return &DeniedError{Registry: host, Reason: "not in allowed registries list"}
	}
	return nil
}
