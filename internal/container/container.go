// Package container is the working container: a writable snapshot on an
// image plus the image config being edited, with one file per verb (new,
// mount, config, copy, run, commit). Builds use the same steps.
package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/store"
)

// State is what kiln keeps about a working container; its JSON field
// names are Buildah's, so `--format` templates written for Buildah work.
type State struct {
	Type             string            `json:"Type"`
	FromImage        string            `json:"FromImage"`
	FromImageID      string            `json:"FromImageID"`
	FromImageDigest  string            `json:"FromImageDigest"`
	Container        string            `json:"Container"`
	ContainerID      string            `json:"ContainerID"`
	MountPoint       string            `json:"MountPoint"`
	Config           *image.Config     `json:"Config"`
	ImageAnnotations map[string]string `json:"ImageAnnotations,omitempty"`
	ImageCreatedBy   string            `json:"ImageCreatedBy,omitempty"`
	HistoryComment   string            `json:"HistoryComment,omitempty"`
	Isolation        string            `json:"Isolation,omitempty"`
	// SecurityOpts are the --security-opt values given to from, applied
	// to every later run (run.ParseSecurityOpts), as Buildah does.
	SecurityOpts []string `json:"SecurityOpts,omitempty"`
	// CapAdd, CapDrop and Volumes (run.ParseVolume) given to from apply
	// to every later run, before the run's own.
	CapAdd  []string `json:"CapAdd,omitempty"`
	CapDrop []string `json:"CapDrop,omitempty"`
	Volumes []string `json:"Volumes,omitempty"`
	// Network ("host", "none", "private"; "" for the default) and
	// RunSettings (limits, DNS, hosts, devices, namespaces) given to from
	// apply to every later run that does not set its own; NoHTTPProxy
	// keeps kiln's proxy variables out of them (from --http-proxy=false).
	Network     string        `json:"Network,omitempty"`
	RunSettings *run.Settings `json:"RunSettings,omitempty"`
	NoHTTPProxy bool          `json:"NoHTTPProxy,omitempty"`
	// PrependedHistory are entries AddHistory recorded since the last
	// commit; the next commit writes them before its own.
	PrependedHistory []image.History `json:"PrependedHistory,omitempty"`
	// LastCommit is what the last commit with a layer left: the layer it
	// made and the history's length after it (see CommitOptions.Again).
	LastCommit *CommitMark `json:"LastCommit,omitempty"`
}

// CommitMark is where a container's last commit left it.
type CommitMark struct {
	Layer   string `json:"Layer"`
	History int    `json:"History"`
}

// Container is an open working container.
type Container struct {
	st    *store.Store
	rec   store.Container
	State State
}

// stateType marks the state format.
const stateType = "kiln 0.1"

// Open loads the container named by ref (name, ID or ID prefix).
func Open(ctx context.Context, st *store.Store, ref string) (*Container, error) {
	rec, err := st.LookupContainer(ctx, ref)
	if err != nil {
		return nil, err
	}
	return fromRecord(ctx, st, rec)
}

func fromRecord(ctx context.Context, st *store.Store, rec store.Container) (*Container, error) {
	c := &Container{st: st, rec: rec}
	if err := json.Unmarshal(rec.Data, &c.State); err != nil {
		return nil, fmt.Errorf("reading state of container %s: %w", rec.Name, err)
	}
	if c.State.Config == nil {
		c.State.Config = &image.Config{OS: "linux", Architecture: "amd64"}
	}
	c.State.Container, c.State.ContainerID = rec.Name, rec.ID
	c.State.MountPoint = st.Mountpoint(ctx, rec)
	return c, nil
}

// All loads every working container.
func All(ctx context.Context, st *store.Store) ([]*Container, error) {
	recs, err := st.Containers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Container, 0, len(recs))
	for _, r := range recs {
		c, err := fromRecord(ctx, st, r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ID is the container's full ID.
func (c *Container) ID() string { return c.rec.ID }

// Name is the container's name.
func (c *Container) Name() string { return c.rec.Name }

// Created is when the container was made.
func (c *Container) Created() time.Time { return c.rec.Created }

// Config is the image config being edited; change it, then Save.
func (c *Container) Config() *image.Config { return c.State.Config }

// Save writes the container's state back to the store.
func (c *Container) Save(ctx context.Context) error {
	raw, err := json.Marshal(c.State)
	if err != nil {
		return err
	}
	if err := c.st.SetContainerData(ctx, c.rec.ID, raw); err != nil {
		return fmt.Errorf("saving container %s: %w", c.rec.Name, err)
	}
	c.rec.Data = raw
	return nil
}

// Rename gives the container a new name.
func (c *Container) Rename(ctx context.Context, name string) error {
	if err := c.st.RenameContainer(ctx, c.rec.ID, name); err != nil {
		return err
	}
	c.rec.Name, c.State.Container = name, name
	return c.Save(ctx)
}

// Remove unmounts and deletes the container.
func (c *Container) Remove(ctx context.Context) error {
	// A run whose kiln was killed may have left its runtime container
	// (and processes) behind: end them first.
	if err := run.Cleanup(c.RunDir()); err != nil {
		return fmt.Errorf("cleaning up the runs of container %s: %w", c.rec.Name, err)
	}
	_ = os.RemoveAll(c.RunDir())
	return c.st.DeleteContainer(ctx, c.rec.ID)
}

// RunDir is the scratch directory runs in this container use (see
// run.Options.RunDir).
func (c *Container) RunDir() string { return filepath.Join(c.st.RunRoot(), "run", c.rec.ID) }

// RemoveAbandoned removes the temporary containers whose kiln process
// died, and returns how many it removed.
func RemoveAbandoned(ctx context.Context, st *store.Store) (int, error) {
	ids, err := st.AbandonedTemporary(ctx)
	if err != nil {
		return 0, err
	}
	if len(ids) > 0 && st.SnapshotsReadOnly() {
		// Their runs' state and files need the rights this process lacks.
		return 0, fmt.Errorf("%w: removing the containers of a killed build", store.ErrSnapshotsReadOnly)
	}
	n := 0
	for _, id := range ids {
		c, err := Open(ctx, st, id)
		if errors.Is(err, store.ErrContainerUnknown) {
			continue
		}
		if err == nil {
			err = c.Remove(ctx)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Inspect is the shape `inspect --type container` prints: the state plus
// the config in both formats.
type Inspect struct {
	State
	OCIv1  ocispec.Image `json:"OCIv1"`
	Docker *image.Config `json:"Docker"`
}

// Inspect describes the container.
func (c *Container) Inspect() Inspect {
	return Inspect{State: c.State, OCIv1: c.State.Config.OCI(), Docker: c.State.Config.Docker()}
}

// baseName is the name Buildah gives the image of a working container
// made from spec (the reference as given): among the image's names the
// first that contains spec's own short name, else its first name, else
// that short name ("dir" for dir:PATH).
func baseName(spec string, names []string) string {
	prefix := namePrefix(spec)
	if len(names) == 0 {
		return prefix
	}
	for _, n := range names {
		if strings.Contains(n, prefix) {
			return n
		}
	}
	return names[0]
}

// namePrefix is the short name in a reference, as Buildah cuts it: a
// digest or an ID is its first 12 hex digits, then what comes before the
// first ":", after the last "/" and before "@" ("docker.io/library/
// alpine:latest" is "alpine", "dir:/x/y" is "dir").
func namePrefix(s string) string {
	hex := strings.TrimPrefix(s, "sha256:")
	if len(hex) == 64 && isLowerHex(hex) {
		return hex[:12]
	}
	s, _, _ = strings.Cut(s, ":")
	if i := strings.LastIndex(s, "/"); i >= 0 {
		s = s[i+1:]
	}
	s, _, _ = strings.Cut(s, "@")
	return s
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// defaultName is Buildah's container name for an image name: its short
// name, then "-working-container" (or "-" and the suffix asked for).
func defaultName(imageName, suffix string) string {
	if suffix == "" {
		suffix = "working-container"
	}
	if imageName == "" || imageName == "scratch" {
		return suffix
	}
	return namePrefix(imageName) + "-" + suffix
}
