package transport

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/transport/dir"
)

func TestSignatureStorage(t *testing.T) {
	d := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "default-docker:\n  lookaside: https://sigs.example/default\ndocker:\n  registry.example/team:\n    lookaside: https://sigs.example/team\n    lookaside-staging: file:///staging/team\n")
	write("b.yaml", "docker:\n  registry.example/team/app:\n    sigstore: file:///old/app\n    use-sigstore-attachments: false\n  '*.example':\n    lookaside: file:///wild\n")
	write("ignored.txt", "not yaml: [")
	sys := &SystemContext{RegistriesDir: d}
	s, err := loadSignatureStorage(sys)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		full, repo string
		write      bool
		want       string
		attach     bool
	}{
		{"registry.example/team/app:1", "registry.example/team/app", false, "file:///old/app/team/app", false},
		{"registry.example/team/tool:1", "registry.example/team/tool", false, "https://sigs.example/team/team/tool", true},
		{"registry.example/team/tool:1", "registry.example/team/tool", true, "file:///staging/team/team/tool", true},
		{"other.example/x:1", "other.example/x", false, "file:///wild/x", true},
		{"docker.io/library/busybox:latest", "docker.io/library/busybox", false, "https://sigs.example/default/library/busybox", true},
	}
	for _, tt := range tests {
		u, err := s.lookasideBase(tt.full, tt.repo, tt.write)
		if err != nil {
			t.Fatal(err)
		}
		if u.String() != tt.want || s.useAttachments(tt.full, tt.repo) != tt.attach {
			t.Errorf("%s write=%v: %s attachments=%v, want %s %v", tt.full, tt.write, u, s.useAttachments(tt.full, tt.repo), tt.want, tt.attach)
		}
	}
	write("c.yaml", "docker:\n  registry.example/team:\n    lookaside: file:///dup\n")
	if _, err := loadSignatureStorage(sys); err == nil {
		t.Error("a namespace defined twice was accepted")
	}
}

func TestLookasideFiles(t *testing.T) {
	base, err := (&signatureStorage{Docker: map[string]lookasideNamespace{"r.example": {Lookaside: "file://" + t.TempDir()}}}).lookasideBase("r.example/a:1", "r.example/a", true)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("manifest")
	ctx := context.Background()
	for _, sigs := range [][][]byte{{[]byte("one"), []byte("two"), []byte("three")}, {[]byte("four")}} {
		if err := writeLookaside(base, d, sigs); err != nil {
			t.Fatal(err)
		}
		got, err := readLookaside(ctx, base, d)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(sigs, got); diff != "" {
			t.Errorf("read back (-want +got):\n%s", diff)
		}
	}
}

// TestDirSignatures: a dir: image keeps signatures as containers/image
// does (signature-N beside manifest.json).
func TestDirSignatures(t *testing.T) {
	path := t.TempDir()
	dst, err := dir.NewDestination(path)
	if err != nil {
		t.Fatal(err)
	}
	manifest := []byte(`{"schemaVersion":2}`)
	ctx := context.Background()
	if err := dst.PutManifest(ctx, manifest, "", nil); err != nil {
		t.Fatal(err)
	}
	sigs := [][]byte{[]byte("a"), []byte("b")}
	if err := dst.PutSignatures(ctx, digest.FromBytes(manifest), sigs); err != nil {
		t.Fatal(err)
	}
	if err := dst.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(path, "signature-2")); err != nil {
		t.Fatal(err)
	}
	src, err := dir.NewSource(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Signatures(ctx, src, digest.FromBytes(manifest))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sigs, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestCopyIndexSignatures: copying an index whole carries the
// signatures of the index and of each instance; --remove-signatures
// drops them.
func TestCopyIndexSignatures(t *testing.T) {
	src := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	ld := digest.FromBytes(layer.Bytes())
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + ld.String() + `"]}}`)
	cd := digest.FromBytes(cfg)
	m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`, cd, len(cfg), ld, layer.Len()))
	md := digest.FromBytes(m)
	idx := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d,"platform":{"architecture":"amd64","os":"linux"}}]}`, md, len(m)))
	write("version", []byte(dir.Version))
	write(ld.Encoded(), layer.Bytes())
	write(cd.Encoded(), cfg)
	write(md.Encoded()+".manifest.json", m)
	write("manifest.json", idx)
	write("signature-1", []byte("index signature"))
	write(md.Encoded()+".signature-1", []byte("instance signature"))
	ctx := context.Background()
	for _, remove := range []bool{false, true} {
		out := t.TempDir()
		s, err := dir.NewSource(src)
		if err != nil {
			t.Fatal(err)
		}
		d, err := dir.NewDestination(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Copy(ctx, d, s, CopyOptions{All: true, RemoveSignatures: remove}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"signature-1", md.Encoded() + ".signature-1"} {
			_, err := os.Stat(filepath.Join(out, name))
			if got := err == nil; got == remove {
				t.Errorf("remove=%v: %s exists: %v", remove, name, got)
			}
		}
	}
}

// TestLookasideDefault: with no registries.d entry, root's signatures are
// under /var/lib/containers/sigstore and an unprivileged user's under
// ~/.local/share/containers/sigstore, as containers/image has them.
func TestLookasideDefault(t *testing.T) {
	home := t.TempDir()
	env := func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	}
	for _, tt := range []struct {
		rootless bool
		want     string
	}{
		{false, "file:///var/lib/containers/sigstore/team/app"},
		{true, "file://" + home + "/.local/share/containers/sigstore/team/app"},
	} {
		sys := &SystemContext{RegistriesDir: t.TempDir(), Env: env, Rootless: tt.rootless}
		s, err := loadSignatureStorage(sys)
		if err != nil {
			t.Fatal(err)
		}
		u, err := s.lookasideBase("r.example/team/app:1", "r.example/team/app", false)
		if err != nil {
			t.Fatal(err)
		}
		if u.String() != tt.want {
			t.Errorf("rootless=%v: lookaside %s, want %s", tt.rootless, u, tt.want)
		}
	}
}
