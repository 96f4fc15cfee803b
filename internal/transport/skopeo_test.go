package transport

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
)

// TestSkopeoReadsKiln has skopeo inspect and copy what kiln wrote, and kiln
// read what skopeo wrote, keeping the manifest digest.
func TestSkopeoReadsKiln(t *testing.T) {
	skopeo := needBinary(t, "skopeo")
	reg := startRegistry(t, false)
	sys := reg.sys(t)
	img := testImage(t, 2, "amd64")
	want := digest.FromBytes(img.manifest)
	dir := t.TempDir()
	kilnWrote := []string{
		"oci:" + filepath.Join(dir, "layout") + ":v1",
		"oci-archive:" + filepath.Join(dir, "img.tar") + ":v1",
		"docker://" + reg.host + "/kiln/skopeo:v1",
		"dir:" + filepath.Join(dir, "dir"),
	}
	for _, ref := range kilnWrote {
		t.Run(ref, func(t *testing.T) {
			copyRef(t, sys, img, ref, CopyOptions{})
			out := runCmd(t, skopeo, "inspect", "--tls-verify=false", ref)
			var info ImageInspect
			if err := json.Unmarshal([]byte(out), &info); err != nil {
				t.Fatalf("skopeo inspect output: %v\n%s", err, out)
			}
			if info.Digest != want || len(info.Layers) != 2 || info.Labels["kiln.test"] != "yes" {
				t.Errorf("skopeo inspect %s = %+v, want digest %s with 2 layers and the label", ref, info, want)
			}
			// skopeo copies it on; kiln reads skopeo's copy.
			back := "oci:" + filepath.Join(t.TempDir(), "skopeo") + ":copy"
			runCmd(t, skopeo, "copy", "--src-tls-verify=false", ref, back)
			raw, _, err := openSource(t, sys, back).Manifest(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := digest.FromBytes(raw); got != want {
				t.Errorf("skopeo's copy has digest %s, want %s", got, want)
			}
			got := copyRef(t, sys, openSource(t, sys, back), "dir:"+filepath.Join(t.TempDir(), "again"), CopyOptions{})
			if got != want {
				t.Errorf("kiln copy of skopeo's layout: digest %s, want %s", got, want)
			}
		})
	}
}

// TestKilnReadsSkopeoDockerArchive reads a docker-archive written by
// skopeo, and has skopeo read a docker-archive written by kiln.
func TestKilnReadsSkopeoDockerArchive(t *testing.T) {
	skopeo := needBinary(t, "skopeo")
	sys := (*testRegistry)(nil).sys(t)
	img := testImage(t, 2, "amd64")
	dir := t.TempDir()
	layout := "oci:" + filepath.Join(dir, "layout") + ":v1"
	copyRef(t, sys, img, layout, CopyOptions{})
	theirs := "docker-archive:" + filepath.Join(dir, "skopeo.tar") + ":kiln/skopeo:v1"
	runCmd(t, skopeo, "copy", layout, theirs)
	info, err := Inspect(context.Background(), openSource(t, sys, theirs), InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Layers) != 2 || info.Labels["kiln.test"] != "yes" {
		t.Errorf("kiln inspect of skopeo's archive = %+v", info)
	}
	ours := "docker-archive:" + filepath.Join(dir, "kiln.tar") + ":kiln/ours:v2"
	copyRef(t, sys, openSource(t, sys, theirs), ours, CopyOptions{})
	out := runCmd(t, skopeo, "inspect", ours)
	var got ImageInspect
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	// The manifest of a docker-archive is synthesized (skopeo labels
	// uncompressed layers as gzip, kiln does not), so compare the layers,
	// which are the diff IDs in both.
	if diff := cmp.Diff(info.Layers, got.Layers); diff != "" {
		t.Errorf("layers skopeo sees in kiln's archive differ from kiln's view of skopeo's (-kiln +skopeo):\n%s", diff)
	}
}
