package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// makeBusybox makes localhost/busybox in kiln's store from Debian's
// busybox-static with kiln's own verbs, exports it as an OCI archive and
// loads that same archive into buildah's store and dockerd, so every tool
// starts from one image (one digest).
func (b *bench) makeBusybox(ctx context.Context) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox-static is not installed: %w", err)
	}
	if err := b.busyboxImage(ctx, bb, "localhost/busybox", "from", "scratch"); err != nil {
		return err
	}
	return b.shareBase(ctx, "localhost/busybox")
}

// busyboxImage commits name in kiln's store: the busybox binary bb with
// its links (made by running it, through the emulator for another
// architecture's), a root user and /bin/sh as the command; from are the
// arguments of `kiln from` that start it.
func (b *bench) busyboxImage(ctx context.Context, bb, name string, from ...string) error {
	c, err := sh(ctx, nil, b.kiln(from...)...)
	if err != nil {
		return err
	}
	mp, err := sh(ctx, nil, b.kiln("mount", c)...)
	if err != nil {
		return err
	}
	for _, d := range []string{"bin", "etc", "tmp", "root", "usr/local/bin"} {
		if err := os.MkdirAll(filepath.Join(mp, d), 0o755); err != nil {
			return err
		}
	}
	if _, err := sh(ctx, nil, "cp", bb, filepath.Join(mp, "bin/busybox")); err != nil {
		return err
	}
	if _, err := sh(ctx, nil, "chroot", mp, "/bin/busybox", "--install", "-s", "/bin"); err != nil {
		return err
	}
	files := map[string]string{"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(mp, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if _, err := sh(ctx, nil, b.kiln("config", "--cmd", "/bin/sh", c)...); err != nil {
		return err
	}
	_, err = sh(ctx, nil, b.kiln("commit", "--rm", c, name)...)
	return err
}

// shareBase exports name from kiln's store as an OCI archive and loads it
// into buildah's store and dockerd under the same name.
func (b *bench) shareBase(ctx context.Context, name string) error {
	archive := b.path("base", filepath.Base(name)+".tar")
	os.MkdirAll(filepath.Dir(archive), 0o755)
	os.Remove(archive)
	if _, err := sh(ctx, nil, b.kiln("push", "--quiet", name, "oci-archive:"+archive+":latest")...); err != nil {
		return err
	}
	if _, err := sh(ctx, nil, "skopeo", "copy", "--quiet", "oci-archive:"+archive+":latest", b.buildahStore(name+":latest")); err != nil {
		return err
	}
	if b.dockerSock != "" {
		_, err := sh(ctx, nil, "skopeo", "copy", "--quiet", "--dest-daemon-host", "unix://"+b.dockerSock,
			"oci-archive:"+archive+":latest", "docker-daemon:"+name+":latest")
		return err
	}
	return nil
}

// makeDebian makes localhost/debian from a debootstrap minbase of the
// release apt is configured for, with the mirror apt uses.
func (b *bench) makeDebian(ctx context.Context, mirror, suite string) error {
	dir := b.path("base", "debian-rootfs")
	if _, err := os.Stat(filepath.Join(dir, "etc/debian_version")); err != nil {
		os.RemoveAll(dir)
		if out, err := sh(ctx, nil, "debootstrap", "--variant=minbase", suite, dir, mirror); err != nil {
			return fmt.Errorf("debootstrap: %w: %s", err, tail(out, 300))
		}
	}
	c, err := sh(ctx, nil, b.kiln("from", "scratch")...)
	if err != nil {
		return err
	}
	mp, err := sh(ctx, nil, b.kiln("mount", c)...)
	if err != nil {
		return err
	}
	if _, err := sh(ctx, nil, "sh", "-c", `tar -C "$1" -c . | tar -C "$2" -x`, "sh", dir, mp); err != nil {
		return err
	}
	if _, err := sh(ctx, nil, b.kiln("config", "--cmd", "/bin/bash", c)...); err != nil {
		return err
	}
	if _, err := sh(ctx, nil, b.kiln("commit", "--rm", c, "localhost/debian")...); err != nil {
		return err
	}
	return b.shareBase(ctx, "localhost/debian")
}

// aptMirror returns the Debian mirror and suite apt uses here: the first
// source whose suite is a release (not -updates or -security).
func aptMirror() (mirror, suite string) {
	for _, f := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m, s, ok := releaseSource(string(b)); ok {
			return m, s
		}
	}
	return "http://deb.debian.org/debian", "bookworm"
}

// releaseSource finds the first release suite in a one-line-style
// sources.list or a deb822 .sources file, whose stanzas (separated by
// blank lines) each name URIs and Suites.
func releaseSource(text string) (mirror, suite string, ok bool) {
	var uri string
	var suites []string
	flush := func() bool {
		for _, s := range suites {
			if uri != "" && !strings.Contains(s, "-") {
				mirror, suite = uri, s
				return true
			}
		}
		uri, suites = "", nil
		return false
	}
	for line := range strings.SplitSeq(text+"\n", "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			if flush() {
				return mirror, suite, true
			}
		case fields[0] == "deb":
			rest := fields[1:]
			for len(rest) > 0 && strings.HasPrefix(rest[0], "[") { // [arch=… signed-by=…]
				closed := strings.HasSuffix(rest[0], "]")
				rest = rest[1:]
				for !closed && len(rest) > 0 {
					closed = strings.HasSuffix(rest[0], "]")
					rest = rest[1:]
				}
			}
			if len(rest) >= 2 && !strings.Contains(rest[1], "-") {
				return rest[0], rest[1], true
			}
		case fields[0] == "URIs:" && len(fields) >= 2:
			uri = fields[1]
		case fields[0] == "Suites:":
			suites = fields[1:]
		}
	}
	return mirror, suite, flush()
}

// makeData writes count files of size bytes of random data under dir,
// once; later runs reuse them.
func makeData(dir string, count, size int) error {
	marker := dir + ".complete"
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{'k', 'i', 'l', 'n'})
	buf := make([]byte, size)
	for i := range count {
		rng.Read(buf)
		name := filepath.Join(dir, fmt.Sprintf("d%02d", i%16), fmt.Sprintf("f%05d", i))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(name, buf, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(marker, nil, 0o644)
}

// makeSmallFiles writes count small text files (100–2,000 bytes) under
// dir, once.
func makeSmallFiles(dir string, count int) error {
	return makeFiles(dir, count, 2000)
}

// makeFiles makes count files of 100 to maxSize bytes under dir, a
// thousand to a directory, once (a marker beside dir says it is done).
// Up to 2,000 bytes they are text; larger ones are random, as the
// context of issue 16's first table (149 MB) was.
func makeFiles(dir string, count, maxSize int) error {
	marker := dir + ".complete"
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	os.RemoveAll(dir)
	rng := rand.New(rand.NewPCG(1, 2))
	line := strings.Repeat("kiln bench small file line\n", 80)
	for i := range count {
		name := filepath.Join(dir, fmt.Sprintf("d%02d", i/1000), fmt.Sprintf("f%05d.txt", i))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return err
		}
		n := 100 + rng.IntN(maxSize-100)
		data := []byte(fmt.Sprintf("%d\n%s", i, line[:min(n, len(line))]))
		if maxSize > len(line) {
			data = make([]byte, n)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(marker, nil, 0o644)
}
