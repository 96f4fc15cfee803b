package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

// These tests run kiln as a user does on base images that other tools
// made (umoci, skopeo, docker build; see internal/testbase), because a
// layer kiln generated can always be generated again and hides what
// breaks on a layer it did not.

// foreignBusybox puts in e's store, as localhost/busybox, a busybox that
// umoci made and skopeo pushed (gzip layer, Docker v2s2 manifest) to a
// registry of the test's own, pulled by kiln as a user would. Tests that
// build on busybox use it rather than busybox (kiln's own image).
func (e *env) foreignBusybox() testbase.Base {
	e.t.Helper()
	b := testbase.Push(e.t, plainRegistry(e.t), testbase.Spec{Kind: testbase.Busybox})
	e.mustKiln("pull", "-q", "--tls-verify=false", b.Ref)
	e.mustKiln("tag", b.Name, "localhost/busybox")
	e.mustKiln("rmi", b.Name)
	return b
}

// in returns e for the subtest t: the same store, failing t.
func (e *env) in(t *testing.T) *env { return &env{t: t, root: e.root} }

// foreign is a base image another tool wrote and how kiln reaches it.
type foreign struct {
	base testbase.Base
	// env is DOCKER_HOST for a docker-daemon: base.
	env []string
	// blobs says the base arrived as blobs kiln must send on unchanged
	// (from a registry or a layout); from docker-archive: and
	// docker-daemon: it arrived as layer tars, known by diff ID only.
	blobs bool
}

// tlsFlag is what kiln and skopeo need to reach the plain-HTTP test
// registry for a docker:// ref.
func tlsFlag(ref string) []string {
	if strings.HasPrefix(ref, "docker://") {
		return []string{"--tls-verify=false"}
	}
	return nil
}

// pull pulls f into e's store, names it localhost/base and returns its ID.
func (e *env) pull(f foreign) string {
	e.t.Helper()
	out := e.mustRun("", f.env, append(append([]string{"pull", "-q"}, tlsFlag(f.base.Ref)...), f.base.Ref)...)
	id := out[strings.LastIndex(out, "\n")+1:]
	e.mustKiln("tag", id, "localhost/base")
	return id
}

// chainFile is the file the chain copies in.
func chainFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "copied")
	must(t, os.WriteFile(p, []byte("copied\n"), 0o644))
	return p
}

// chain makes name from image with the working-container verbs: run
// (busybox sh writes /chain/ran), copy (/chain/copied), config (CHAIN=1)
// and commit in format.
func (e *env) chain(image, name, format string) {
	e.t.Helper()
	c := e.mustKiln("from", image)
	e.mustKiln("run", c, "--", "sh", "-c", "mkdir -p /chain && echo ran > /chain/ran")
	e.mustKiln("copy", c, chainFile(e.t), "/chain/copied")
	e.mustKiln("config", "--env", "CHAIN=1", "--label", "chain="+name, c)
	e.mustKiln("commit", "-q", "--rm", "--format", format, c, name)
}

// chainProbe is k's probe plus what every chain (and build) adds.
func chainProbe(k testbase.Kind) (script, want string) {
	s, w := k.Probe()
	return s + "\ncat /chain/ran /chain/copied\necho CHAIN=$CHAIN", w + "\nran\ncopied\nCHAIN=1"
}

// verifyChain checks a rootfs on disk for the base's files and the
// chain's.
func verifyChain(t *testing.T, root string, k testbase.Kind) {
	t.Helper()
	testbase.Verify(t, root, k)
	for name, body := range map[string]string{"chain/ran": "ran\n", "chain/copied": "copied\n"} {
		if b, err := os.ReadFile(filepath.Join(root, name)); err != nil || string(b) != body {
			t.Errorf("%s reads %q (%v), want %q", name, b, err, body)
		}
	}
}

// diffIDs returns the diff IDs of a stored image.
func (e *env) diffIDs(image string) []digest.Digest {
	e.t.Helper()
	var ids []digest.Digest
	decodeJSON(e.t, e.mustKiln("inspect", "--type", "image", "--format", "{{json .OCIv1.RootFS.DiffIDs}}", image), &ids)
	return ids
}

// checkKept asserts that got (an image built on base, as another tool
// reads it where kiln pushed it) starts with base's layers: the same diff
// IDs, and with blobs also the same blobs (digest and size), the media
// type being the only thing allowed to change (an uncompressed layer too
// stays uncompressed). The one exception: a zstd layer in a Docker v2s2
// manifest, which has no zstd media type Docker or skopeo read, arrives
// as gzip or as its tar.
func checkKept(t *testing.T, base, got testbase.Base, blobs bool) {
	t.Helper()
	n := len(base.DiffIDs)
	if len(got.DiffIDs) <= n || len(got.Layers) != len(got.DiffIDs) {
		t.Fatalf("%s: %d layers, %d diff IDs; want more than the base's %d", got.Ref, len(got.Layers), len(got.DiffIDs), n)
	}
	if diff := cmp.Diff(base.DiffIDs, got.DiffIDs[:n]); diff != "" {
		t.Errorf("%s: the base's diff IDs changed (-base +pushed):\n%s", got.Ref, diff)
	}
	if !blobs {
		return
	}
	for i, l := range base.Layers {
		g := got.Layers[i]
		was, is := image.LayerCompression(l.MediaType), image.LayerCompression(g.MediaType)
		if was == "zstd" && got.ManifestMediaType == image.MediaTypeDockerManifest {
			if is == "zstd" {
				t.Errorf("%s: inherited layer %d is zstd (%s) in a Docker manifest, which Docker and skopeo do not read", got.Ref, i, g.MediaType)
			}
			continue
		}
		if g.Digest != l.Digest || g.Size != l.Size {
			t.Errorf("%s: inherited layer %d is %s (%d bytes, %s), want the base's blob %s (%d bytes, %s)",
				got.Ref, i, g.Digest, g.Size, g.MediaType, l.Digest, l.Size, l.MediaType)
		}
	}
}

// checkTars asserts that a docker-archive's (or a daemon's) layer tars
// are the image's diff IDs and start with the base's.
func checkTars(t *testing.T, base testbase.Base, tars, diffIDs []digest.Digest) {
	t.Helper()
	if diff := cmp.Diff(diffIDs, tars); diff != "" {
		t.Errorf("the layer tars are not the config's diff IDs (-diffIDs +tars):\n%s", diff)
	}
	if len(tars) <= len(base.DiffIDs) {
		t.Fatalf("%d layer tars, want more than the base's %d", len(tars), len(base.DiffIDs))
	}
	if diff := cmp.Diff(base.DiffIDs, tars[:len(base.DiffIDs)]); diff != "" {
		t.Errorf("the inherited layer tars are not the base's diff IDs (-base +tars):\n%s", diff)
	}
}

// TestInteropBases runs one chain on each kind of foreign base: pull,
// from (the rootfs holds what the base's layers say, whiteouts and all),
// run, copy, config, commit in both formats, push to a registry; the
// pushed images keep the base's layers and read back with skopeo and
// umoci; a docker-archive: of one holds the base's layers as tars whose
// digests are the base's diff IDs.
func TestInteropBases(t *testing.T) {
	requiresRoot(t)
	rich := testbase.Spec{Kind: testbase.Rich, Format: testbase.OCI}
	registry := func(s testbase.Spec) func(t *testing.T, reg string) foreign {
		return func(t *testing.T, reg string) foreign {
			return foreign{base: testbase.Push(t, reg, s), blobs: true}
		}
	}
	cases := []struct {
		name string
		make func(t *testing.T, reg string) foreign
	}{
		{"registry-busybox-v2s2-gzip", registry(testbase.Spec{Kind: testbase.Busybox})},
		{"registry-busybox-oci-zstd", registry(testbase.Spec{Kind: testbase.Busybox, Format: testbase.OCI, Compression: testbase.Zstd})},
		{"registry-busybox-v2s2-none", registry(testbase.Spec{Kind: testbase.Busybox, Compression: testbase.Uncompressed})},
		{"registry-rich-oci-gzip", registry(rich)},
		{"registry-docker-v2s2-gzip", registry(testbase.Spec{Kind: testbase.Docker})},
		{"oci-rich", func(t *testing.T, _ string) foreign {
			return foreign{base: testbase.OCILayout(t, rich), blobs: true}
		}},
		{"oci-archive-busybox-zstd", func(t *testing.T, _ string) foreign {
			return foreign{base: testbase.OCIArchive(t, testbase.Spec{Kind: testbase.Busybox, Format: testbase.OCI, Compression: testbase.Zstd}), blobs: true}
		}},
		{"dir-rich-v2s2-none", func(t *testing.T, _ string) foreign {
			return foreign{base: testbase.Dir(t, testbase.Spec{Kind: testbase.Rich, Compression: testbase.Uncompressed}), blobs: true}
		}},
		{"docker-archive-docker", func(t *testing.T, _ string) foreign {
			return foreign{base: testbase.DockerArchive(t, testbase.Spec{Kind: testbase.Docker})}
		}},
		{"docker-daemon-docker", func(t *testing.T, _ string) foreign {
			d := transporttest.StartDockerd(t)
			return foreign{base: testbase.Daemon(t, d, testbase.Spec{Kind: testbase.Docker}), env: []string{"DOCKER_HOST=" + d.Host}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := plainRegistry(t)
			f := tc.make(t, reg)
			k := f.base.Spec.Kind
			e := newEnv(t, "")
			id := e.pull(f)

			c := e.mustKiln("from", id)
			testbase.Verify(t, e.mustKiln("mount", c), k)
			script, want := k.Probe()
			if got := e.mustKiln("run", c, "--", "sh", "-c", script); got != want {
				t.Errorf("probe in kiln run on the base (-want +got):\n%s", cmp.Diff(want, got))
			}
			e.mustKiln("rm", c)

			for _, format := range []string{"oci", "docker"} {
				name := "localhost/derived-" + format
				e.chain("localhost/base", name, format)
				ref := "docker://" + reg + "/derived-" + format + ":latest"
				if _, errOut, code := e.kiln("push", "-q", "--tls-verify=false", name, ref); code != 0 {
					t.Errorf("push --format %s image to %s: exit %d: %s", format, ref, code, errOut)
					continue
				}
				checkKept(t, f.base, testbase.Describe(t, ref, "--tls-verify=false"), f.blobs)
				verifyChain(t, testbase.Unpack(t, ref, "--src-tls-verify=false"), k)
			}
			// Layer tars, whatever the base's blobs were: each is its diff ID.
			file := filepath.Join(t.TempDir(), "derived.tar")
			if _, errOut, code := e.kiln("push", "-q", "localhost/derived-docker", "docker-archive:"+file); code != 0 {
				t.Fatalf("push to docker-archive: exit %d: %s", code, errOut)
			}
			got := testbase.ReadDockerArchive(t, file)
			checkTars(t, f.base, got.LayerDigests(), got.DiffIDs)
		})
	}
}

// buildOnBase makes, on localhost/base, one image per way users build:
// the chain's commit in each format, build in place, an ONBUILD parent
// (Docker format: OCI has no ONBUILD) and a child that is only FROM
// parent, and a multi-stage build with
// COPY --from. Each adds what chainProbe shows. It returns their names.
func (e *env) buildOnBase() []string {
	e.t.Helper()
	e.chain("localhost/base", "localhost/commit-oci", "oci")
	e.chain("localhost/base", "localhost/commit-docker", "docker")
	builds := []struct {
		name, dockerfile string
		flags            []string
	}{
		{"inplace", "FROM localhost/base\nRUN mkdir -p /chain && echo ran > /chain/ran\nCOPY copied /chain/copied\nENV CHAIN=1\n", nil},
		{"onbuild-parent", "FROM localhost/base\nENV CHAIN=1\nONBUILD COPY copied /chain/copied\nONBUILD RUN echo ran > /chain/ran\n", []string{"--format", "docker"}},
		{"onbuild-child", "FROM localhost/onbuild-parent\n", nil},
		{"multistage", "FROM localhost/base AS builder\nRUN mkdir -p /out && echo ran > /out/ran\n" +
			"FROM localhost/base\nCOPY --from=builder /out/ran /chain/ran\nCOPY copied /chain/copied\nENV CHAIN=1\n", nil},
	}
	names := []string{"localhost/commit-oci", "localhost/commit-docker"}
	for _, b := range builds {
		dir := e.t.TempDir()
		must(e.t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(b.dockerfile), 0o644))
		must(e.t, os.WriteFile(filepath.Join(dir, "copied"), []byte("copied\n"), 0o644))
		e.mustKiln(append(append([]string{"build", "-q", "-t", "localhost/" + b.name}, b.flags...), dir)...)
		if b.name != "onbuild-parent" {
			names = append(names, "localhost/"+b.name)
		}
	}
	return names
}

// dockerStdout runs the docker CLI against d and returns its standard
// output, trimmed.
func dockerStdout(t *testing.T, d *transporttest.Dockerd, args ...string) string {
	t.Helper()
	cmd := d.Command(args...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s%s", strings.Join(args, " "), err, out, errb.String())
	}
	return strings.TrimSpace(string(out))
}

// dockerLayers returns the diff IDs d holds for an image.
func dockerLayers(t *testing.T, d *transporttest.Dockerd, name string) []digest.Digest {
	t.Helper()
	var layers []digest.Digest
	decodeJSON(t, dockerStdout(t, d, "image", "inspect", "--format", "{{json .RootFS.Layers}}", name), &layers)
	return layers
}

// podmanRun runs a command in image with podman (a store of its own,
// runc, no network, modest ulimits) and returns its standard output.
func podmanRun(t *testing.T, image string, cmd ...string) string {
	t.Helper()
	bin := transporttest.NeedBinary(t, "podman")
	// podman refuses a run root longer than 50 characters.
	dir, err := os.MkdirTemp("", "kp-")
	must(t, err)
	t.Cleanup(func() {
		// conmon runs podman's cleanup of a --rm container after the run
		// returns; it would write into dir again.
		waitNoProcess(t, dir)
		transporttest.UnmountUnder(dir)
		os.RemoveAll(dir)
	})
	args := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--tmpdir", filepath.Join(dir, "tmp"),
		"--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--storage-driver", "vfs",
		"run", "--rm", "-q", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", image}
	c := exec.Command(bin, append(args, cmd...)...)
	var errb strings.Builder
	c.Stderr = &errb
	out, err := c.Output()
	if err != nil {
		t.Fatalf("podman run %s: %v\n%s%s", image, err, out, errb.String())
	}
	return strings.TrimSpace(string(out))
}

// waitNoProcess waits up to 20 s until no process has dir in its command
// line.
func waitNoProcess(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		busy := ""
		pids, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range pids {
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), dir) {
				busy = strings.ReplaceAll(string(b), "\x00", " ")
			}
		}
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("still running after 20 s: %s", busy)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestInteropDestinations builds every way users build on the rich base
// (skopeo-pushed, Docker v2s2, gzip, as in the issue) and pushes each
// image to every destination, read back by another tool there: skopeo
// and umoci (registry, oci:, dir:), docker run (docker-daemon:, and
// docker load of the docker-archive:), podman run (oci-archive:).
// Inherited layers keep the base's blobs where a destination holds
// blobs, and the base's diff IDs where it holds layer tars.
func TestInteropDestinations(t *testing.T) {
	requiresRoot(t)
	t.Parallel()
	reg := plainRegistry(t)
	f := foreign{base: testbase.Push(t, reg, testbase.Spec{Kind: testbase.Rich}), blobs: true}
	k := f.base.Spec.Kind
	d := transporttest.StartDockerd(t)
	daemonEnv := []string{"DOCKER_HOST=" + d.Host}
	e := newEnv(t, "")
	e.pull(f)
	images := e.buildOnBase()
	script, want := chainProbe(k)
	probe := func(t *testing.T, where, got string) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("probe in %s (-want +got):\n%s", where, diff)
		}
	}

	for _, img := range images {
		short := strings.TrimPrefix(img, "localhost/")
		t.Run(short, func(t *testing.T) {
			e := e.in(t)
			diffIDs := e.diffIDs(img)
			tmp := t.TempDir()
			push := func(t *testing.T, env []string, dest string) bool {
				t.Helper()
				args := append(append([]string{"push", "-q"}, tlsFlag(dest)...), img, dest)
				if _, errOut, code := e.in(t).run("", env, args...); code != 0 {
					t.Errorf("kiln push %s %s: exit %d: %s", img, dest, code, errOut)
					return false
				}
				return true
			}
			t.Run("docker", func(t *testing.T) {
				ref := "docker://" + reg + "/out/" + short + ":latest"
				if push(t, nil, ref) {
					checkKept(t, f.base, testbase.Describe(t, ref, "--tls-verify=false"), true)
					verifyChain(t, testbase.Unpack(t, ref, "--src-tls-verify=false"), k)
				}
			})
			t.Run("docker-daemon", func(t *testing.T) {
				name := "out/" + short + ":daemon"
				if push(t, daemonEnv, "docker-daemon:"+name) {
					checkTars(t, f.base, dockerLayers(t, d, name), diffIDs)
					probe(t, "docker run", dockerStdout(t, d, "run", "--rm", "--network", "none", name, "/bin/sh", "-c", script))
				}
			})
			t.Run("oci", func(t *testing.T) {
				ref := "oci:" + filepath.Join(tmp, "layout") + ":" + short
				if push(t, nil, ref) {
					checkKept(t, f.base, testbase.Describe(t, ref), true)
					verifyChain(t, testbase.Unpack(t, ref), k)
				}
			})
			t.Run("oci-archive", func(t *testing.T) {
				file := filepath.Join(tmp, "oci.tar")
				if push(t, nil, "oci-archive:"+file) {
					checkKept(t, f.base, testbase.Describe(t, "oci-archive:"+file), true)
					probe(t, "podman run", podmanRun(t, "oci-archive:"+file, "/bin/sh", "-c", script))
				}
			})
			t.Run("docker-archive", func(t *testing.T) {
				file := filepath.Join(tmp, "docker.tar")
				name := "out/" + short + ":archive"
				if push(t, nil, "docker-archive:"+file+":"+name) {
					got := testbase.ReadDockerArchive(t, file)
					checkTars(t, f.base, got.LayerDigests(), got.DiffIDs)
					if diff := cmp.Diff(diffIDs, got.DiffIDs); diff != "" {
						t.Errorf("the archive's diff IDs are not the image's (-image +archive):\n%s", diff)
					}
					d.Docker(t, "load", "-q", "-i", file)
					probe(t, "docker run of the loaded archive", dockerStdout(t, d, "run", "--rm", "--network", "none", name, "/bin/sh", "-c", script))
				}
			})
			t.Run("dir", func(t *testing.T) {
				ref := "dir:" + filepath.Join(tmp, "dir")
				if push(t, nil, ref) {
					checkKept(t, f.base, testbase.Describe(t, ref), true)
					verifyChain(t, testbase.Unpack(t, ref), k)
				}
			})
		})
	}
}

// TestInteropFromTransport: kiln from TRANSPORT:REF pulls the image and
// makes the working container, as Buildah does, for every transport kiln
// pulls from; the container holds the base.
func TestInteropFromTransport(t *testing.T) {
	requiresRoot(t)
	rich := testbase.Spec{Kind: testbase.Rich, Format: testbase.OCI}
	docker := testbase.Spec{Kind: testbase.Docker}
	cases := []struct {
		name string
		make func(t *testing.T) foreign
	}{
		{"docker", func(t *testing.T) foreign { return foreign{base: testbase.Push(t, plainRegistry(t), rich)} }},
		{"oci", func(t *testing.T) foreign { return foreign{base: testbase.OCILayout(t, rich)} }},
		{"oci-archive", func(t *testing.T) foreign {
			return foreign{base: testbase.OCIArchive(t, testbase.Spec{Kind: testbase.Busybox, Format: testbase.OCI, Compression: testbase.Zstd})}
		}},
		{"dir", func(t *testing.T) foreign {
			return foreign{base: testbase.Dir(t, testbase.Spec{Kind: testbase.Rich, Compression: testbase.Uncompressed})}
		}},
		{"docker-archive", func(t *testing.T) foreign { return foreign{base: testbase.DockerArchive(t, docker)} }},
		{"docker-daemon", func(t *testing.T) foreign {
			d := transporttest.StartDockerd(t)
			return foreign{base: testbase.Daemon(t, d, docker), env: []string{"DOCKER_HOST=" + d.Host}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := tc.make(t)
			e := newEnv(t, "")
			c := e.mustRun("", f.env, append(append([]string{"from", "-q"}, tlsFlag(f.base.Ref)...), f.base.Ref)...)
			k := f.base.Spec.Kind
			testbase.Verify(t, e.mustKiln("mount", c), k)
			script, want := k.Probe()
			if got := e.mustKiln("run", c, "--", "sh", "-c", script); got != want {
				t.Errorf("probe in kiln run (-want +got):\n%s", cmp.Diff(want, got))
			}
		})
	}
}

// blobLog records the blob writes a registry proxy passes on.
type blobLog struct {
	mu sync.Mutex
	// uploaded are the digests of finished uploads (PUT, or a monolithic
	// POST, with ?digest=).
	uploaded []digest.Digest
	// mounted are the digests of cross-repository mounts that the registry
	// answered with 201 Created.
	mounted []digest.Digest
}

func (l *blobLog) reset() (uploaded, mounted []digest.Digest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	uploaded, mounted = l.uploaded, l.mounted
	l.uploaded, l.mounted = nil, nil
	return uploaded, mounted
}

// countingProxy puts a reverse proxy in front of the registry at host and
// returns its host:port; log sees every blob upload and mount through it.
func countingProxy(t *testing.T, host string, log *blobLog) string {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: host}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		q := req.URL.Query()
		if !strings.Contains(req.URL.Path, "/blobs/uploads/") {
			return nil
		}
		log.mu.Lock()
		defer log.mu.Unlock()
		switch {
		case req.Method == http.MethodPost && q.Get("mount") != "" && resp.StatusCode == http.StatusCreated:
			log.mounted = append(log.mounted, digest.Digest(q.Get("mount")))
		case (req.Method == http.MethodPut || req.Method == http.MethodPost) && q.Get("digest") != "" && resp.StatusCode == http.StatusCreated:
			log.uploaded = append(log.uploaded, digest.Digest(q.Get("digest")))
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestInteropPushSendsOnlyNewLayers: pushing an image built on a base to
// a registry that holds the base sends only the new layer and the config:
// the base's blobs are found in the same repository, or mounted from the
// base's repository into another one, never uploaded again.
func TestInteropPushSendsOnlyNewLayers(t *testing.T) {
	requiresRoot(t)
	t.Parallel()
	reg := plainRegistry(t)
	var log blobLog
	proxy := countingProxy(t, reg, &log)
	base := testbase.Push(t, reg, testbase.Spec{Kind: testbase.Rich})
	e := newEnv(t, "")
	e.pull(foreign{base: base})

	baseRepo := strings.TrimPrefix(strings.TrimSuffix(base.Name, ":latest"), reg+"/")
	for _, tc := range []struct{ name, repo string }{
		{"same-repository", baseRepo},
		{"other-repository", "app/derived"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			// A layer of its own, so that nothing new is in the registry yet.
			c := e.mustKiln("from", "localhost/base")
			e.mustKiln("run", c, "--", "sh", "-c", "echo "+tc.name+" > /new")
			img := "localhost/derived-" + tc.name
			e.mustKiln("commit", "-q", "--rm", "--format", "docker", c, img)
			log.reset()
			ref := "docker://" + proxy + "/" + tc.repo + ":" + tc.name
			if _, errOut, code := e.kiln("push", "-q", "--tls-verify=false", img, ref); code != 0 {
				t.Fatalf("push: exit %d: %s", code, errOut)
			}
			uploaded, mounted := log.reset()
			got := testbase.Describe(t, ref, "--tls-verify=false")
			checkKept(t, base, got, true)
			want := []digest.Digest{got.Config.Digest}
			for _, l := range got.Layers[len(base.Layers):] {
				want = append(want, l.Digest)
			}
			less := func(a, b digest.Digest) bool { return a < b }
			if diff := cmp.Diff(want, uploaded, cmpopts.SortSlices(less)); diff != "" {
				t.Errorf("blobs uploaded (-want: the new layer and the config, +got):\n%s", diff)
			}
			t.Logf("uploaded %d blobs, mounted %d", len(uploaded), len(mounted))
		})
	}
}
