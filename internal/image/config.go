package image

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultPath is the PATH entry Docker gives a process whose environment
// has none, and BuildKit and Buildah's bud an image built on a base (or
// scratch) whose config has none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// HealthConfig is Docker's healthcheck, a Docker-only field.
type HealthConfig struct {
	Test          []string      `json:",omitempty"`
	Interval      time.Duration `json:",omitempty"`
	Timeout       time.Duration `json:",omitempty"`
	StartPeriod   time.Duration `json:",omitempty"`
	StartInterval time.Duration `json:",omitempty"`
	Retries       int           `json:",omitempty"`
}

// ContainerConfig is the runtime part of a Docker image config. It is a
// superset of OCI's ImageConfig: the fields OCI lacks (Healthcheck,
// OnBuild, Shell, Domainname, Hostname) survive only in Docker format.
type ContainerConfig struct {
	Hostname     string              `json:"Hostname,omitempty"`
	Domainname   string              `json:"Domainname,omitempty"`
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	Healthcheck  *HealthConfig       `json:"Healthcheck,omitempty"`
	ArgsEscaped  bool                `json:"ArgsEscaped,omitempty"`
	Image        string              `json:"Image,omitempty"`
	Volumes      map[string]struct{} `json:"Volumes,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	OnBuild      []string            `json:"OnBuild,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	Shell        []string            `json:"Shell,omitempty"`
}

// RootFS lists the diff IDs of an image's layers, bottom first.
type RootFS struct {
	Type    string          `json:"type"`
	DiffIDs []digest.Digest `json:"diff_ids"`
}

// MarshalJSON writes diff_ids as an array even for an image without
// layers ([], never null): the image spec makes it a required array.
func (r RootFS) MarshalJSON() ([]byte, error) {
	type plain RootFS
	p := plain(r)
	p.DiffIDs = nonNil(p.DiffIDs)
	return json.Marshal(p)
}

// nonNil returns ids, or an empty slice where ids is nil.
func nonNil(ids []digest.Digest) []digest.Digest {
	if ids == nil {
		return []digest.Digest{}
	}
	return ids
}

// History describes how one layer (or an empty step) was made.
type History struct {
	Created    *time.Time `json:"created,omitempty"`
	CreatedBy  string     `json:"created_by,omitempty"`
	Author     string     `json:"author,omitempty"`
	Comment    string     `json:"comment,omitempty"`
	EmptyLayer bool       `json:"empty_layer,omitempty"`
}

// Config is an image config in Docker's schema 2 shape, the superset kiln
// keeps for a working container. OCI() and ParseConfig convert to and
// from the OCI form.
type Config struct {
	Created         *time.Time       `json:"created,omitempty"`
	Author          string           `json:"author,omitempty"`
	Architecture    string           `json:"architecture"`
	Variant         string           `json:"variant,omitempty"`
	OS              string           `json:"os"`
	OSVersion       string           `json:"os.version,omitempty"`
	OSFeatures      []string         `json:"os.features,omitempty"`
	Config          ContainerConfig  `json:"config"`
	Container       string           `json:"container,omitempty"`
	Parent          string           `json:"parent,omitempty"`
	ContainerConfig *ContainerConfig `json:"container_config,omitempty"`
	DockerVersion   string           `json:"docker_version,omitempty"`
	Comment         string           `json:"comment,omitempty"`
	RootFS          RootFS           `json:"rootfs"`
	History         []History        `json:"history,omitempty"`
}

// ParseConfig decodes a config of either format; the JSON shapes agree on
// every field both have.
func ParseConfig(raw []byte) (*Config, error) {
	if len(raw) > MaxDocumentSize {
		return nil, fmt.Errorf("image config is %d bytes, over the %d-byte limit", len(raw), MaxDocumentSize)
	}
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decoding image config: %w", err)
	}
	if c.RootFS.Type == "" {
		c.RootFS.Type = "layers"
	}
	for _, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("image config lists a bad diff ID %q: %w", d, err)
		}
	}
	return &c, nil
}

// DockerOnlyFields names the fields of c that an OCI config cannot hold.
func (c *Config) DockerOnlyFields() []string {
	var names []string
	cc := c.Config
	if cc.Healthcheck != nil {
		names = append(names, "healthcheck")
	}
	if len(cc.OnBuild) > 0 {
		names = append(names, "onbuild")
	}
	if len(cc.Shell) > 0 {
		names = append(names, "shell")
	}
	if cc.Hostname != "" {
		names = append(names, "hostname")
	}
	if cc.Domainname != "" {
		names = append(names, "domainname")
	}
	return names
}

// OCIWarnings are the warnings, in Buildah's words, that writing c in
// OCI format drops its Docker-only fields (see DockerOnlyFields).
func (c *Config) OCIWarnings() []string {
	const tail = " Must use `docker` format"
	cc := c.Config
	var out []string
	if len(cc.OnBuild) > 0 {
		out = append(out, fmt.Sprintf("ONBUILD is not supported for OCI image format, %v will be ignored.", cc.OnBuild)+tail)
	}
	if len(cc.Shell) > 0 {
		out = append(out, fmt.Sprintf("SHELL is not supported for OCI image format, %v will be ignored.", cc.Shell)+tail)
	}
	if cc.Hostname != "" {
		out = append(out, fmt.Sprintf("HOSTNAME is not supported for OCI image format, hostname %s will be ignored.", cc.Hostname)+tail)
	}
	if cc.Domainname != "" {
		out = append(out, fmt.Sprintf("DOMAINNAME is not supported for OCI image format, domainname %s will be ignored.", cc.Domainname)+tail)
	}
	if cc.Healthcheck != nil {
		out = append(out, "HEALTHCHECK is not supported for OCI image format and will be ignored."+tail)
	}
	return out
}

// Docker returns the config in Docker's shape as Buildah's inspect shows
// it: an image without a container_config (an OCI one) shows its config
// there, so that templates reading .Docker.ContainerConfig work for
// either format.
func (c *Config) Docker() *Config {
	d := *c
	if d.ContainerConfig == nil {
		cc := c.Config
		d.ContainerConfig = &cc
	}
	return &d
}

// OCI returns the config as it is written in OCI format: Docker-only
// fields are dropped.
func (c *Config) OCI() ocispec.Image {
	img := ocispec.Image{
		Created: c.Created,
		Author:  c.Author,
		Platform: ocispec.Platform{
			Architecture: c.Architecture,
			OS:           c.OS,
			OSVersion:    c.OSVersion,
			OSFeatures:   c.OSFeatures,
			Variant:      c.Variant,
		},
		Config: ocispec.ImageConfig{
			User:         c.Config.User,
			ExposedPorts: c.Config.ExposedPorts,
			Env:          c.Config.Env,
			Entrypoint:   c.Config.Entrypoint,
			Cmd:          c.Config.Cmd,
			Volumes:      c.Config.Volumes,
			WorkingDir:   c.Config.WorkingDir,
			Labels:       c.Config.Labels,
			StopSignal:   c.Config.StopSignal,
			ArgsEscaped:  c.Config.ArgsEscaped, //nolint:staticcheck // kept for Windows images
		},
		RootFS: ocispec.RootFS{Type: c.RootFS.Type, DiffIDs: nonNil(c.RootFS.DiffIDs)},
	}
	for _, h := range c.History {
		img.History = append(img.History, ocispec.History{
			Created: h.Created, CreatedBy: h.CreatedBy, Author: h.Author,
			Comment: h.Comment, EmptyLayer: h.EmptyLayer,
		})
	}
	return img
}

// Marshal encodes the config in the given format, deterministically.
func (c *Config) Marshal(f Format) ([]byte, error) {
	if f == FormatDocker {
		return json.Marshal(c)
	}
	return json.Marshal(c.OCI())
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	raw, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("image config does not round-trip: %v", err))
	}
	var out Config
	if err := json.Unmarshal(raw, &out); err != nil {
		panic(fmt.Sprintf("image config does not round-trip: %v", err))
	}
	return &out
}

// SortedKeys returns the keys of a set-like map in order, for stable output.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
