package run

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseVolume(t *testing.T) {
	tests := []struct {
		in   string
		want specs.Mount
		err  bool
	}{
		{in: "/src:/dst", want: specs.Mount{Destination: "/dst", Type: "bind", Source: "/src", Options: []string{"rbind", "rw"}}},
		{in: "/src/:/dst/:ro", want: specs.Mount{Destination: "/dst", Type: "bind", Source: "/src", Options: []string{"rbind", "ro"}}},
		{in: "/src:/dst:ro,z,nosuid,bind,rslave", want: specs.Mount{Destination: "/dst", Type: "bind", Source: "/src", Options: []string{"bind", "ro", "nosuid", "rslave"}}},
		{in: "named:/dst", err: true},
		{in: "/src:rel", err: true},
		{in: "/src", err: true},
		{in: "/src:/dst:ro,rw", err: true},
		{in: "/src:/dst:O", want: specs.Mount{Destination: "/dst", Type: "overlay", Source: "/src"}},
		{in: "/src:/dst:O,upperdir=/u,workdir=/w,U", want: specs.Mount{Destination: "/dst", Type: "overlay", Source: "/src", Options: []string{"U", "upperdir=/u", "workdir=/w"}}},
		{in: "/src:/dst:z,U", want: specs.Mount{Destination: "/dst", Type: "bind", Source: "/src", Options: []string{"rbind", "rw", "U"}}},
		{in: "/src:/dst:O,upperdir=/u", err: true},
		{in: "/src:/dst:upperdir=/u,workdir=/w", err: true},
		{in: "/src:/dst:O,upperdir=u,workdir=/w", err: true},
		{in: "/a:/b:ro:x", err: true},
	}
	for _, tt := range tests {
		got, err := ParseVolume(tt.in)
		if tt.err {
			if !errors.Is(err, ErrBadMount) {
				t.Errorf("ParseVolume(%q) error = %v, want ErrBadMount", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseVolume(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseVolume(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseMount(t *testing.T) {
	bind := func(src, dst string, opts ...string) MountRequest {
		return MountRequest{Mount: specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}}
	}
	fromImage := bind("/sub", "/b", "rbind", "ro")
	fromImage.From = "img"
	cache := bind("", "/c", "rbind", "rw")
	cache.Cache = &CacheRequest{ID: "/c"}
	cacheWithID := bind("", "/c", "rbind", "ro", "U")
	cacheWithID.Cache = &CacheRequest{ID: "x", Mode: 0o700, UID: 7, GID: 8, Locked: true}
	tests := []struct {
		in   string
		want MountRequest
		err  bool
	}{
		// Buildah's default for a bind is read-only.
		{in: "type=bind,src=/a,dst=/b", want: bind("/a", "/b", "rbind", "ro")},
		{in: "type=bind,src=/a,dst=/b,rw", want: bind("/a", "/b", "rbind", "rw")},
		{in: "source=/a,target=/b,readonly", want: bind("/a", "/b", "rbind", "ro")},
		{in: "type=bind,src=/a,destination=/b,ro=true,bind-propagation=rshared,bind-nonrecursive=true",
			want: bind("/a", "/b", "bind", "ro", "rshared")},
		{in: "type=bind,src=/a,dst=/b,rw=false", want: bind("/a", "/b", "rbind", "ro")},
		{in: "type=bind,src=/a,dst=/b,rw=true,z,U,nosuid", want: bind("/a", "/b", "rbind", "rw", "U", "nosuid")},
		{in: "type=bind,src=rel,dst=/b,rw", want: bind("rel", "/b", "rbind", "rw")},
		{in: "type=bind,source=sub/../sub,from=img,target=/b,z", want: fromImage},
		{in: "type=cache,target=/c", want: cache},
		{in: "type=cache,target=/c,id=x,mode=0700,uid=7,gid=8,sharing=locked,ro,U", want: cacheWithID},
		{in: "type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1777",
			want: MountRequest{Mount: specs.Mount{Destination: "/t", Type: "tmpfs", Source: "tmpfs", Options: []string{"rw", "nosuid", "nodev", "size=64m", "mode=1777"}}}},
		{in: "type=tmpfs,dst=/t,src=/x", err: true},
		{in: "type=tmpfs,dst=/t,tmpfs-mode=9", err: true},
		{in: "type=cache,dst=/t,from=stage", err: true},
		{in: "type=cache,dst=/t,sharing=sometimes", err: true},
		{in: "type=cache,dst=/t,mode=9", err: true},
		{in: "type=volume,dst=/t", err: true},
		{in: "type=bind,dst=/b", err: true},
		{in: "type=bind,src=/a", err: true},
		{in: "type=bind,src=/a,dst=/b,dst=/c", err: true},
		{in: "type=bind,src=/a,dst=/b,ro,rw", err: true},
		{in: "type=bind,src=/a,dst=/b,ro=maybe", err: true},
		{in: "type=bind,src=/a,dst=/b,id=x", err: true},
		{in: "type=bind,src=/a,dst=/b,colour=red", err: true},
	}
	for _, tt := range tests {
		got, err := ParseMount(tt.in)
		if tt.err {
			if !errors.Is(err, ErrBadMount) {
				t.Errorf("ParseMount(%q) error = %v, want ErrBadMount", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseMount(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseMount(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseEnums(t *testing.T) {
	for _, s := range []string{"oci", "chroot"} {
		i, err := ParseIsolation(s)
		if err != nil || i.String() != s {
			t.Errorf("ParseIsolation(%q) = %v, %v", s, i, err)
		}
	}
	if _, err := ParseIsolation("rootless"); err == nil {
		t.Error("ParseIsolation(rootless) succeeded")
	}
	for _, s := range []string{"host", "none", "private"} {
		n, err := ParseNetwork(s)
		if err != nil || n.String() != s {
			t.Errorf("ParseNetwork(%q) = %v, %v", s, n, err)
		}
	}
	if n, err := ParseNetwork("container"); err != nil || n != NetworkPrivate {
		t.Errorf("ParseNetwork(container) = %v, %v; want private", n, err)
	}
	// Buildah's words for a network it cannot find, which scripts match.
	if _, err := ParseNetwork("bogus"); err == nil || !strings.HasPrefix(err.Error(), "unable to find network with name or ID bogus: network not found") {
		t.Errorf("ParseNetwork(bogus) error = %v", err)
	}
}

func TestResolveCaps(t *testing.T) {
	tests := []struct {
		add, drop []string
		want      []string
	}{
		{drop: []string{"ALL"}, add: []string{"chown", "CAP_KILL"}, want: []string{"CAP_CHOWN", "CAP_KILL"}},
		{drop: []string{"ALL"}, want: nil},
		{drop: []string{"CAP_CHOWN", "mknod", "net_raw", "setfcap", "audit_write", "dac_override", "fowner", "fsetid",
			"setgid", "setuid", "setpcap", "sys_chroot", "net_bind_service"}, want: []string{"CAP_KILL"}},
	}
	for _, tt := range tests {
		got, err := resolveCaps(tt.add, tt.drop)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("resolveCaps(%v, %v) (-want +got):\n%s", tt.add, tt.drop, diff)
		}
	}
	if _, err := resolveCaps([]string{"CAP_FLY"}, nil); err == nil {
		t.Error("resolveCaps accepted an unknown capability")
	}
}
