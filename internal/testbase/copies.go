package testbase

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

// source is the reference skopeo copies a kind from: umoci's layout, or
// docker save's tarball.
func source(t testing.TB, k Kind) string {
	t.Helper()
	switch k {
	case Busybox, Rich:
		return "oci:" + umociLayout(t) + ":" + k.String()
	case Docker:
		return "docker-archive:" + dockerSave(t)
	}
	t.Fatalf("unknown kind %v", k)
	return ""
}

// stage returns a dir: copy of s, made once per test binary by skopeo
// copy from the kind's source with the spec's format and compression.
// Copies of it elsewhere keep its blobs (--preserve-digests).
func stage(t testing.TB, s Spec) string {
	t.Helper()
	needRoot(t, "skopeo")
	if s.Compression == Zstd && s.Format != OCI {
		t.Fatalf("base %s: zstd layers need an OCI manifest", s)
	}
	src := source(t, s.Kind)
	return filepath.Join(cached(t, "stage-"+s.String(), func(t testing.TB, dir string) {
		args := []string{"copy", "-q", "--format", s.Format.String()}
		switch s.Compression {
		case Gzip:
			args = append(args, "--dest-compress", "--dest-compress-format", "gzip")
		case Zstd:
			args = append(args, "--dest-compress", "--dest-compress-format", "zstd")
		case Uncompressed:
			args = append(args, "--dest-decompress")
		}
		skopeo(t, append(args, src, "dir:"+filepath.Join(dir, "image"))...)
	}), "image")
}

// Push has skopeo copy s to the registry at host (plain HTTP, as
// transporttest.StartRegistry(t, false) runs it) as
// HOST/testbase/SPEC:latest, keeping the staged blobs byte for byte.
func Push(t testing.TB, host string, s Spec) Base {
	t.Helper()
	st := stage(t, s)
	name := host + "/testbase/" + s.String() + ":latest"
	skopeo(t, "copy", "-q", "--preserve-digests", "--dest-tls-verify=false", "dir:"+st, "docker://"+name)
	b := Describe(t, "docker://"+name, "--tls-verify=false")
	b.Spec, b.Name = s, name
	return b
}

// OCILayout has skopeo write s (an OCI manifest) to a new OCI layout in
// t's temporary directory, tagged latest.
func OCILayout(t testing.TB, s Spec) Base {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	return layoutCopy(t, s, dir, "oci:"+dir+":latest", "oci:"+dir+":latest")
}

// OCIArchive has skopeo write s (an OCI manifest) to a new oci-archive
// tarball in t's temporary directory; Ref names no image in it (the
// archive holds one).
func OCIArchive(t testing.TB, s Spec) Base {
	t.Helper()
	file := filepath.Join(t.TempDir(), "base-oci.tar")
	return layoutCopy(t, s, file, "oci-archive:"+file+":latest", "oci-archive:"+file)
}

// Dir has skopeo write s to a new dir: directory in t's temporary
// directory.
func Dir(t testing.TB, s Spec) Base {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dir")
	return layoutCopy(t, s, dir, "dir:"+dir, "dir:"+dir)
}

func layoutCopy(t testing.TB, s Spec, path, dest, ref string) Base {
	t.Helper()
	if s.Format != OCI && !strings.HasPrefix(dest, "dir:") {
		t.Fatalf("base %s: an OCI layout holds OCI manifests", s)
	}
	st := stage(t, s)
	skopeo(t, "copy", "-q", "--preserve-digests", "dir:"+st, dest)
	b := Describe(t, ref)
	b.Spec, b.Path = s, path
	return b
}

// DockerArchive returns a docker-archive tarball of s in t's temporary
// directory: for the Docker kind, docker save's own tarball; for the
// others, what skopeo copy writes, named testbase/KIND:latest. Format
// and Compression do not apply: a docker-archive holds plain layer tars
// and Docker's manifest.json.
func DockerArchive(t testing.TB, s Spec) Base {
	t.Helper()
	needRoot(t, "skopeo")
	file := filepath.Join(t.TempDir(), "base-docker.tar")
	name := "testbase/" + s.Kind.String() + ":latest"
	if s.Kind == Docker {
		data, err := os.ReadFile(dockerSave(t))
		mustT(t, err)
		mustT(t, os.WriteFile(file, data, 0o644))
		name = dockerName
	} else {
		skopeo(t, "copy", "-q", source(t, s.Kind), "docker-archive:"+file+":"+name)
	}
	b := ReadDockerArchive(t, file)
	b.Spec, b.Ref, b.Name, b.Path = s, "docker-archive:"+file, name, file
	return b
}

// Daemon docker-loads DockerArchive(t, s) into d and returns it as a
// docker-daemon: reference; its layers are the archive's, which d keeps
// as its diff IDs (checked).
func Daemon(t testing.TB, d *transporttest.Dockerd, s Spec) Base {
	t.Helper()
	b := DockerArchive(t, s)
	d.Docker(t, "load", "-q", "-i", b.Path)
	var layers []digest.Digest
	out := d.Docker(t, "image", "inspect", "--format", "{{json .RootFS.Layers}}", b.Name)
	if err := json.Unmarshal([]byte(out), &layers); err != nil {
		t.Fatalf("parsing docker image inspect: %v\n%s", err, out)
	}
	if len(layers) != len(b.DiffIDs) {
		t.Fatalf("docker loaded %s with layers %v, want %v", b.Name, layers, b.DiffIDs)
	}
	for i := range layers {
		if layers[i] != b.DiffIDs[i] {
			t.Fatalf("docker loaded %s with layers %v, want %v", b.Name, layers, b.DiffIDs)
		}
	}
	b.Ref, b.Path = "docker-daemon:"+b.Name, ""
	return b
}

// dockerManifest is one entry of a docker-archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// ReadDockerArchive describes a docker-archive tarball (docker save's or
// anyone's): its first image's layer tars (digest and size of each, as
// stored) and its config's diff IDs. Tests use it on what kiln writes.
func ReadDockerArchive(t testing.TB, file string) Base {
	t.Helper()
	f, err := os.Open(file)
	mustT(t, err)
	defer f.Close()
	type blob struct {
		digest digest.Digest
		size   int64
		data   []byte
	}
	entries := map[string]blob{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		mustT(t, err)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		dg := digest.Canonical.Digester()
		var keep bytes.Buffer
		var w io.Writer = dg.Hash()
		if h.Size < 1<<20 { // manifest.json and configs, whatever their names
			w = io.MultiWriter(dg.Hash(), &keep)
		}
		n, err := io.Copy(w, tr)
		mustT(t, err)
		entries[filepath.Clean(h.Name)] = blob{dg.Digest(), n, keep.Bytes()}
	}
	var ms []dockerManifest
	if err := json.Unmarshal(entries["manifest.json"].data, &ms); err != nil || len(ms) == 0 {
		t.Fatalf("%s: reading manifest.json: %v (%d images)", file, err, len(ms))
	}
	m := ms[0]
	cfg, ok := entries[filepath.Clean(m.Config)]
	if !ok {
		t.Fatalf("%s: config %s is not in the archive", file, m.Config)
	}
	var c ocispec.Image
	if err := json.Unmarshal(cfg.data, &c); err != nil {
		t.Fatalf("%s: parsing config %s: %v", file, m.Config, err)
	}
	b := Base{
		ManifestMediaType: image.MediaTypeDockerManifest,
		Config:            ocispec.Descriptor{MediaType: image.MediaTypeDockerConfig, Digest: cfg.digest, Size: cfg.size},
		DiffIDs:           c.RootFS.DiffIDs,
	}
	for _, l := range m.Layers {
		e, ok := entries[filepath.Clean(l)]
		if !ok {
			t.Fatalf("%s: layer %s is not in the archive", file, l)
		}
		b.Layers = append(b.Layers, ocispec.Descriptor{MediaType: image.MediaTypeDockerLayer, Digest: e.digest, Size: e.size})
	}
	if len(m.RepoTags) > 0 {
		b.Name = m.RepoTags[0]
	}
	return b
}
