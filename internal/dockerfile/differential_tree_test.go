package dockerfile

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/google/go-cmp/cmp"
)

// treeEntry is one path of an image's flattened root file system, as the
// layers' tar headers describe it. Times are left out on purpose: each
// builder stamps its own.
type treeEntry struct {
	Type   byte // tar.TypeReg, tar.TypeDir, tar.TypeSymlink, ...
	Mode   int64
	UID    int
	GID    int
	Digest string // sha256 of a regular file's content
	Data   []byte // the content of a regular file
	Link   string // a symlink's target
	// Inode numbers the file: hard links share it (a TypeLink entry).
	Inode int
}

// imageTree is an image read from a docker-archive: its flattened file
// tree, its config's "config" object and the config's top level.
type imageTree struct {
	Files  map[string]*treeEntry
	Config map[string]json.RawMessage
	Image  map[string]json.RawMessage
	inodes int
}

// readDockerArchive reads the first image of a docker-archive (as written
// by `docker save`, `buildah push docker-archive:` and kiln's
// dockerarchive destination) and applies its layers in order, whiteouts
// included, without extracting anything to disk.
func readDockerArchive(file string) (*imageTree, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	members := map[string][]byte{}
	links := map[string]string{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", file, err)
		}
		if hdr.Typeflag == tar.TypeSymlink {
			// docker save writes a layer that another already holds as a
			// symlink to the first one's layer.tar.
			links[path.Clean(hdr.Name)] = path.Join(path.Dir(path.Clean(hdr.Name)), hdr.Linkname)
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading %s of %s: %w", hdr.Name, file, err)
		}
		members[path.Clean(hdr.Name)] = b
	}
	for name, target := range links {
		if b, ok := members[target]; ok {
			members[name] = b
		}
	}
	var manifest []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(members["manifest.json"], &manifest); err != nil || len(manifest) == 0 {
		return nil, fmt.Errorf("reading manifest.json of %s: %v", file, err)
	}
	var cfg struct {
		Config map[string]json.RawMessage `json:"config"`
	}
	rawCfg := members[path.Clean(manifest[0].Config)]
	if err := json.Unmarshal(rawCfg, &cfg); err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", file, err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(rawCfg, &doc); err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", file, err)
	}
	t := &imageTree{Files: map[string]*treeEntry{"/": {Type: tar.TypeDir, Mode: 0o755}}, Config: cfg.Config, Image: doc}
	for _, l := range manifest[0].Layers {
		b, ok := members[path.Clean(l)]
		if !ok {
			return nil, fmt.Errorf("%s: layer %s missing", file, l)
		}
		if err := t.applyLayer(b); err != nil {
			return nil, fmt.Errorf("applying layer %s of %s: %w", l, file, err)
		}
	}
	return t, nil
}

// layerEntry is one tar header of a layer with its content.
type layerEntry struct {
	hdr  *tar.Header
	name string
	data []byte
}

func readLayer(b []byte) ([]layerEntry, error) {
	var r io.Reader = bytes.NewReader(b)
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		r = zr
	}
	var out []layerEntry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out = append(out, layerEntry{hdr: hdr, name: path.Join("/", hdr.Name), data: data})
	}
}

// applyLayer applies one layer: whiteouts against the lower layers first,
// then the layer's own entries.
func (t *imageTree) applyLayer(b []byte) error {
	entries, err := readLayer(b)
	if err != nil {
		return err
	}
	for _, e := range entries {
		dir, base := path.Split(e.name)
		switch {
		case base == ".wh..wh..opq":
			t.removeUnder(path.Clean(dir))
		case strings.HasPrefix(base, ".wh."):
			p := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			delete(t.Files, p)
			t.removeUnder(p)
		}
	}
	for _, e := range entries {
		if strings.HasPrefix(path.Base(e.name), ".wh.") {
			continue
		}
		if err := t.add(e); err != nil {
			return err
		}
	}
	return nil
}

func (t *imageTree) add(e layerEntry) error {
	h := e.hdr
	n := &treeEntry{Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid, Link: h.Linkname}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		n.Type = tar.TypeReg
		n.Data = e.data
		sum := sha256.Sum256(e.data)
		n.Digest = hex.EncodeToString(sum[:])
		t.inodes++
		n.Inode = t.inodes
	case tar.TypeLink:
		target, ok := t.Files[path.Join("/", h.Linkname)]
		if !ok {
			return fmt.Errorf("hardlink %s to missing %s", e.name, h.Linkname)
		}
		c := *target
		n = &c
	case tar.TypeSymlink:
	case tar.TypeDir:
		n.Link = ""
	default:
		n.Link = ""
	}
	if old, ok := t.Files[e.name]; ok && old.Type == tar.TypeDir && n.Type != tar.TypeDir {
		t.removeUnder(e.name)
	}
	t.Files[e.name] = n
	return nil
}

func (t *imageTree) removeUnder(dir string) {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for p := range t.Files {
		if strings.HasPrefix(p, prefix) {
			delete(t.Files, p)
		}
	}
}

// lookup finds p as the kernel would inside the image's root: symlinks
// in the directories of p are followed (never out of the root), the last
// element only when follow is set. It returns nil if there is no such path.
func (t *imageTree) lookup(p string, follow bool) *treeEntry {
	return t.lookupHops(path.Join("/", p), follow, 0)
}

func (t *imageTree) lookupHops(p string, follow bool, hops int) *treeEntry {
	if hops > 40 {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i, c := range parts {
		next := path.Join(cur, c)
		e, ok := t.Files[next]
		if !ok {
			return nil
		}
		last := i == len(parts)-1
		if e.Type == tar.TypeSymlink && (!last || follow) {
			target := e.Link
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest := append([]string{target}, parts[i+1:]...)
			return t.lookupHops(path.Join("/", path.Join(rest...)), follow, hops+1)
		}
		if last {
			return e
		}
		cur = next
	}
	return t.Files["/"]
}

// checkExpect checks the tree against a case's expect.json the way
// checkTree and checkConfig check kiln's mounted image, and returns the
// problems found.
func (t *imageTree) checkExpect(exp expectation) []string {
	var probs []string
	for _, p := range sortedKeys(exp.Files) {
		e := t.lookup(p, true)
		switch {
		case e == nil:
			probs = append(probs, fmt.Sprintf("%s: missing", p))
		case e.Type != tar.TypeReg:
			probs = append(probs, fmt.Sprintf("%s: not a regular file (type %q)", p, e.Type))
		case string(e.Data) != exp.Files[p]:
			probs = append(probs, fmt.Sprintf("%s content = %q, want %q", p, e.Data, exp.Files[p]))
		}
	}
	for _, p := range exp.Absent {
		if t.lookup(p, false) != nil {
			probs = append(probs, fmt.Sprintf("%s exists, want it absent", p))
		}
	}
	for _, p := range sortedKeys(exp.Modes) {
		e := t.lookup(p, false)
		if e == nil {
			probs = append(probs, fmt.Sprintf("%s: missing (mode)", p))
		} else if got := fmt.Sprintf("%04o", e.Mode&0o1777); got != exp.Modes[p] {
			probs = append(probs, fmt.Sprintf("%s mode = %s, want %s", p, got, exp.Modes[p]))
		}
	}
	for _, p := range sortedKeys(exp.Owners) {
		e := t.lookup(p, false)
		if e == nil {
			probs = append(probs, fmt.Sprintf("%s: missing (owner)", p))
		} else if got := fmt.Sprintf("%d:%d", e.UID, e.GID); got != exp.Owners[p] {
			probs = append(probs, fmt.Sprintf("%s owner = %s, want %s", p, got, exp.Owners[p]))
		}
	}
	for _, p := range sortedKeys(exp.Links) {
		e := t.lookup(p, false)
		if e == nil || e.Type != tar.TypeSymlink || e.Link != exp.Links[p] {
			probs = append(probs, fmt.Sprintf("%s link = %s, want %q", p, describe(e), exp.Links[p]))
		}
	}
	for _, k := range sortedKeys(exp.Config) {
		if diff := cmp.Diff(normalize(exp.Config[k]), normalize(t.Config[k])); diff != "" {
			probs = append(probs, fmt.Sprintf("config %s = %s, want %s", k, compact(t.Config[k]), compact(exp.Config[k])))
		}
	}
	for _, k := range sortedKeys(exp.Image) {
		if compact(t.Image[k]) != compact(exp.Image[k]) {
			probs = append(probs, fmt.Sprintf("image config %s = %s, want %s", k, compact(t.Image[k]), compact(exp.Image[k])))
		}
	}
	return append(probs, t.checkLinks(exp)...)
}

// checkLinks checks the hard link groups of a case.
func (t *imageTree) checkLinks(exp expectation) []string {
	var probs []string
	inode := func(p string) int {
		if e := t.lookup(p, false); e != nil && e.Type == tar.TypeReg {
			return e.Inode
		}
		probs = append(probs, fmt.Sprintf("%s: missing (hard link)", p))
		return -1
	}
	for _, group := range exp.Hardlinks {
		first := inode(group[0])
		for _, p := range group[1:] {
			if got := inode(p); first >= 0 && got >= 0 && got != first {
				probs = append(probs, fmt.Sprintf("%s and %s are not hard links of one file", group[0], p))
			}
		}
	}
	for _, group := range exp.Distinct {
		for i, p := range group {
			for _, q := range group[i+1:] {
				if a, b := inode(p), inode(q); a >= 0 && a == b {
					probs = append(probs, fmt.Sprintf("%s and %s are hard links of one file, want two files", p, q))
				}
			}
		}
	}
	return probs
}

// comparedConfig lists the config fields the differential run compares
// between builders.
var comparedConfig = []string{"Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts",
	"Volumes", "StopSignal", "Shell", "Healthcheck", "OnBuild"}

// diffTrees lists how b differs from a: paths only in one, and for paths
// in both their type, mode, owner, content and symlink target; then the
// compared config fields. Empty lists, empty objects and null count as
// the same (absent) value.
func diffTrees(a, b *imageTree, aName, bName string) []string {
	var out []string
	paths := map[string]bool{}
	for p := range a.Files {
		paths[p] = true
	}
	for p := range b.Files {
		paths[p] = true
	}
	for _, p := range sortedKeys(paths) {
		x, y := a.Files[p], b.Files[p]
		switch {
		case x == nil:
			out = append(out, fmt.Sprintf("%s: only in %s (%s)", p, bName, describe(y)))
		case y == nil:
			out = append(out, fmt.Sprintf("%s: only in %s (%s)", p, aName, describe(x)))
		case describe(x) != describe(y):
			out = append(out, fmt.Sprintf("%s: %s has %s, %s has %s", p, aName, describe(x), bName, describe(y)))
		}
	}
	for _, k := range comparedConfig {
		if !cmp.Equal(normalize(a.Config[k]), normalize(b.Config[k])) {
			out = append(out, fmt.Sprintf("config %s: %s has %s, %s has %s", k, aName, compact(a.Config[k]), bName, compact(b.Config[k])))
		}
	}
	return out
}

// describe renders an entry for comparison and messages.
func describe(e *treeEntry) string {
	if e == nil {
		return "nothing"
	}
	s := fmt.Sprintf("%s %04o %d:%d", typeName(e.Type), e.Mode, e.UID, e.GID)
	switch e.Type {
	case tar.TypeReg:
		if len(e.Data) <= 40 {
			return s + fmt.Sprintf(" %q", e.Data)
		}
		return s + " sha256:" + e.Digest[:12]
	case tar.TypeSymlink:
		return s + " -> " + e.Link
	}
	return s
}

func typeName(t byte) string {
	switch t {
	case tar.TypeReg:
		return "file"
	case tar.TypeDir:
		return "dir"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeChar:
		return "chardev"
	case tar.TypeBlock:
		return "blockdev"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("type%q", t)
}

// normalize decodes a JSON value and maps null, "", [] and {} to nil.
func normalize(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	switch x := v.(type) {
	case string:
		if x == "" {
			return nil
		}
	case []any:
		if len(x) == 0 {
			return nil
		}
	case map[string]any:
		if len(x) == 0 {
			return nil
		}
	}
	return v
}

func compact(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "(absent)"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
