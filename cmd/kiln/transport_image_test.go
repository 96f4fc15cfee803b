package main

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
)

type inspectOut struct {
	Name, Digest, Architecture, Os string
	RepoTags, Layers               []string
	Labels                         map[string]string
	LayersData                     []struct {
		MIMEType, Digest string
		Size             int64
	}
}

// TestTransportImageVerbs pushes to a registry, then inspects, copies,
// lists tags of and deletes images there without the store, and pulls
// every tag back. Each result is checked against skopeo.
func TestTransportImageVerbs(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	host := plainRegistry(t)
	repo := "docker://" + host + "/bb"
	e.labelled("localhost/bb2", "--label", "v=2")
	out, errOut, _ := e.run("", nil, "push", "--tls-verify=false", "localhost/busybox", repo+":1")
	if out != "" || !strings.Contains(errOut, "Copying blob sha256:") || !strings.Contains(errOut, " done") || !strings.Contains(errOut, "Writing manifest to image destination") {
		t.Errorf("push progress (not a terminal): stdout %q, stderr %q", out, errOut)
	}
	if _, errOut, _ := e.run("", nil, "push", "-q", "--tls-verify=false", "localhost/bb2", repo+":2"); errOut != "" {
		t.Errorf("push --quiet printed %q", errOut)
	}

	var info inspectOut
	decodeJSON(t, e.mustKiln("image", "inspect", "--tls-verify=false", repo+":1"), &info)
	raw := e.mustKiln("image", "inspect", "--raw", "--tls-verify=false", repo+":1")
	if info.Name != host+"/bb" || info.Digest != digest.FromString(raw).String() || info.Architecture != runtime.GOARCH || info.Os != "linux" {
		t.Errorf("image inspect: %+v (raw manifest digest %s)", info, digest.FromString(raw))
	}
	if diff := cmp.Diff([]string{"1", "2"}, slices.Sorted(slices.Values(info.RepoTags))); diff != "" {
		t.Errorf("RepoTags (-want +got):\n%s", diff)
	}
	var sk inspectOut
	decodeJSON(t, runPeer(t, "skopeo", "inspect", "--tls-verify=false", repo+":1"), &sk)
	if sk.LayersData == nil { // skopeo before 1.10 has no LayersData
		sk.LayersData = info.LayersData
	}
	if diff := cmp.Diff(sk, info); diff != "" {
		t.Errorf("kiln image inspect differs from skopeo inspect (-skopeo +kiln):\n%s", diff)
	}
	if got := e.mustKiln("image", "inspect", "--tls-verify=false", "--format", "{{.Digest}} {{index .Labels \"v\"}}", repo+":2"); !strings.HasSuffix(got, " 2") || !strings.HasPrefix(got, "sha256:") {
		t.Errorf("inspect --format: %q", got)
	}
	if cfg := e.mustKiln("image", "inspect", "--config", "--tls-verify=false", repo+":1"); !strings.Contains(cfg, `"architecture": "`+runtime.GOARCH+`"`) {
		t.Errorf("inspect --config: %s", cfg)
	}

	checkImageCopies(t, e, repo, info)

	tags := e.mustKiln("image", "tags", "--tls-verify=false", repo)
	var tl struct {
		Repository string
		Tags       []string
	}
	decodeJSON(t, tags, &tl)
	if tl.Repository != host+"/bb" || !cmp.Equal(slices.Sorted(slices.Values(tl.Tags)), []string{"1", "2"}) {
		t.Errorf("image tags: %s", tags)
	}
	ids := strings.Fields(e.mustKiln("pull", "-q", "--all-tags", "--tls-verify=false", repo))
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Errorf("pull --all-tags printed %v, want two image IDs", ids)
	}
	names := e.mustKiln("images", "--format", "{{.Name}}:{{.Tag}}")
	for _, want := range []string{host + "/bb:1", host + "/bb:2"} {
		if !strings.Contains(names, want) {
			t.Errorf("images after pull --all-tags lacks %s:\n%s", want, names)
		}
	}
	e.mustKiln("image", "delete", "--tls-verify=false", repo+":2")
	decodeJSON(t, e.mustKiln("image", "tags", "--tls-verify=false", repo), &tl)
	if slices.Contains(tl.Tags, "2") {
		t.Errorf("tag 2 is still listed after image delete: %v", tl.Tags)
	}
	if errOut := e.fails("image", "inspect", "--tls-verify=false", repo+":2"); !strings.Contains(errOut, "bb") {
		t.Errorf("inspecting a deleted image: %q", errOut)
	}
}

// checkImageCopies copies repo:1 to another repository (keeping its
// digest), converted to Docker schema 2, to an OCI layout and to a
// docker-archive, and has skopeo read each.
func checkImageCopies(t *testing.T, e *env, repo string, info inspectOut) {
	t.Helper()
	dir := t.TempDir()
	e.mustKiln("image", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", repo+":1", repo+"-copy:c")
	var cp inspectOut
	decodeJSON(t, e.mustKiln("image", "inspect", "--tls-verify=false", repo+"-copy:c"), &cp)
	if cp.Digest != info.Digest {
		t.Errorf("registry-to-registry copy changed the digest: %s, want %s", cp.Digest, info.Digest)
	}
	e.mustKiln("image", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", "--format", "v2s2", repo+":1", repo+"-v2s2:c")
	if raw := runPeer(t, "skopeo", "inspect", "--raw", "--tls-verify=false", repo+"-v2s2:c"); !strings.Contains(raw, "application/vnd.docker.distribution.manifest.v2+json") {
		t.Errorf("image copy --format v2s2 wrote %s", raw)
	}
	e.mustKiln("image", "copy", "-q", "--src-tls-verify=false", repo+":1", "oci:"+dir+"/oci:x")
	e.mustKiln("image", "copy", "-q", "--src-tls-verify=false", repo+":1", "docker-archive:"+dir+"/a.tar:bb:1")
	for _, ref := range []string{"oci:" + dir + "/oci:x", "docker-archive:" + dir + "/a.tar"} {
		var s, k inspectOut
		decodeJSON(t, runPeer(t, "skopeo", "inspect", ref), &s)
		decodeJSON(t, e.mustKiln("image", "inspect", ref), &k)
		if !cmp.Equal(s.Layers, k.Layers) || len(s.Layers) != len(info.Layers) {
			t.Errorf("inspect %s: skopeo sees layers %v, kiln %v", ref, s.Layers, k.Layers)
		}
	}

	if errOut := e.fails("image", "delete", "oci:"+dir+"/oci:x"); !strings.Contains(errOut, "not supported") {
		t.Errorf("deleting from an OCI layout: %q", errOut)
	}
}

// TestTransportPullPolicies checks from --pull=never|missing|newer|always
// against a registry whose tag moves.
func TestTransportPullPolicies(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	host := plainRegistry(t)
	name := host + "/moving:1"
	id1 := e.mustKiln("inspect", "--format", "{{.FromImageID}}", "localhost/busybox")
	e.mustKiln("push", "-q", "--tls-verify=false", "localhost/busybox", "docker://"+name)

	// Buildah's words (from.bats: "busybox: image not known").
	if errOut := e.fails("from", "--pull=never", "--tls-verify=false", name); !strings.Contains(errOut, name+": image not known") {
		t.Errorf("from --pull=never of a missing image: %q", errOut)
	}
	e.mustKiln("from", "-q", "--tls-verify=false", name)
	imageOf := func() string {
		return e.mustKiln("images", "--no-trunc", "--format", "{{.ID}}", name)
	}
	if got := imageOf(); !strings.Contains(got, id1) {
		t.Fatalf("from --pull=missing stored %q, want %s", got, id1)
	}
	id2 := e.labelled("localhost/moved", "--label", "moved=yes")
	e.mustKiln("push", "-q", "--tls-verify=false", "localhost/moved", "docker://"+name)
	e.mustKiln("from", "-q", "--pull=missing", "--tls-verify=false", name)
	if got := imageOf(); !strings.Contains(got, id1) {
		t.Errorf("--pull=missing pulled although the image was there: %q", got)
	}
	e.mustKiln("from", "-q", "--pull=never", "--tls-verify=false", name)
	e.mustKiln("from", "-q", "--pull=newer", "--tls-verify=false", name)
	if got := imageOf(); !strings.Contains(got, id2) {
		t.Errorf("--pull=newer did not pull the moved tag: %q, want %s", got, id2)
	}
	if out, errOut, code := e.run("", nil, "from", "--pull=newer", "--tls-verify=false", "localhost/busybox"); code != 0 || strings.Contains(out, "Copying") {
		t.Errorf("--pull=newer of a local-only image: exit %d, %q %q", code, out, errOut)
	}
	_, errOut, _ := e.run("", nil, "from", "--pull=always", "--tls-verify=false", name)
	if !strings.Contains(errOut, "skipped: already exists") {
		t.Errorf("--pull=always did not pull (or did not say so): %q", errOut)
	}
	if errOut := e.fails("from", "--pull=sometimes", name); !strings.Contains(errOut, `unsupported pull policy "sometimes"`) {
		t.Errorf("bad policy: %q", errOut)
	}
	if errOut := e.fails("pull", "--retry", "0", "--tls-verify=false", "docker://"+host+"/absent:1"); !strings.Contains(errOut, "absent") {
		t.Errorf("pulling a missing image: %q", errOut)
	}
}

// TestTransportManifestList builds a two-platform list from local images,
// pushes it with its images, and pulls each platform back.
func TestTransportManifestList(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	host := plainRegistry(t)
	idArm := e.labelled("localhost/bb-arm", "--arch", "arm64", "--variant", "v8", "--label", "arch=arm64")
	idAmd := e.mustKiln("inspect", "--format", "{{.FromImageID}}", "localhost/busybox")
	if got := e.mustKiln("manifest", "create", "mylist"); got != "localhost/mylist:latest" {
		t.Errorf("manifest create printed %q", got)
	}
	if errOut := e.fails("manifest", "create", "mylist"); !strings.Contains(errOut, "already exists") {
		t.Errorf("creating twice: %q", errOut)
	}
	e.mustKiln("manifest", "add", "mylist", "localhost/busybox")
	// Buildah prints "LIST-ID: DIGEST".
	added := e.mustKiln("manifest", "add", "--annotation", "org.example=yes", "mylist", "localhost/bb-arm")
	_, armDigest, ok := strings.Cut(added, ": ")
	if !ok {
		t.Fatalf("manifest add printed %q, want LIST-ID: DIGEST", added)
	}
	var idx struct {
		MediaType string
		Manifests []struct {
			Digest      string
			Platform    struct{ Architecture, OS, Variant string }
			Annotations map[string]string
		}
	}
	decodeJSON(t, e.mustKiln("manifest", "inspect", "mylist"), &idx)
	if len(idx.Manifests) != 2 || idx.Manifests[1].Digest != armDigest || idx.Manifests[1].Platform.Architecture != "arm64" ||
		idx.Manifests[1].Platform.Variant != "v8" || idx.Manifests[1].Annotations["org.example"] != "yes" || idx.Manifests[0].Platform.Architecture != runtime.GOARCH {
		t.Fatalf("manifest inspect: %+v", idx)
	}
	dest := "docker://" + host + "/multi:1"
	digestFile := tempPath(t, "digest")
	e.mustKiln("manifest", "push", "-q", "--tls-verify=false", "--digestfile", digestFile, "mylist", dest)
	raw := runPeer(t, "skopeo", "inspect", "--raw", "--tls-verify=false", dest)
	if d := digest.FromString(raw).String(); d != readFile(t, digestFile) {
		t.Errorf("pushed list digest %s, --digestfile says %s", d, readFile(t, digestFile))
	}
	var remote inspectOut
	decodeJSON(t, e.mustKiln("image", "inspect", "--tls-verify=false", "--override-arch", "arm64", dest), &remote)
	if remote.Architecture != "arm64" {
		t.Errorf("inspect of the arm64 instance: %+v", remote)
	}
	if got := e.mustKiln("pull", "-q", "--tls-verify=false", "--platform", "linux/arm64/v8", dest); got != idArm {
		t.Errorf("pull --platform linux/arm64/v8 = %s, want %s", got, idArm)
	}
	if got := e.mustKiln("pull", "-q", "--tls-verify=false", "--arch", runtime.GOARCH, dest); got != idAmd {
		t.Errorf("pull --arch %s = %s, want %s", runtime.GOARCH, got, idAmd)
	}
	if errOut := e.fails("pull", "-q", "--tls-verify=false", "--arch", "s390x", dest); !strings.Contains(errOut, "no image found in manifest list for the platform: linux/s390x") {
		t.Errorf("pull of a missing platform: %q", errOut)
	}

	// A list of remote images, copied with --all into an OCI layout.
	e.mustKiln("manifest", "create", "--all", "remote", dest)
	dir := t.TempDir()
	e.mustKiln("manifest", "push", "-q", "--tls-verify=false", "remote", "oci:"+dir+":all")
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		t.Fatal(err)
	}
	runPeer(t, "skopeo", "inspect", "--override-arch", "arm64", "--override-variant", "v8", "oci:"+dir+":all")
	e.mustKiln("push", "-q", "--tls-verify=false", "mylist", "docker://"+host+"/viapush:1")
	if got := runPeer(t, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+host+"/viapush:1"); got != raw {
		t.Errorf("kiln push of a manifest list wrote %s, want %s", got, raw)
	}
	e.mustKiln("manifest", "remove", "mylist", armDigest)
	decodeJSON(t, e.mustKiln("manifest", "inspect", "mylist"), &idx)
	if len(idx.Manifests) != 1 {
		t.Errorf("after manifest remove: %+v", idx)
	}
	e.mustKiln("manifest", "rm", "mylist", "remote")
	if errOut := e.fails("manifest", "inspect", "mylist"); !strings.Contains(errOut, "not a manifest list") {
		t.Errorf("inspect after rm: %q", errOut)
	}
}
