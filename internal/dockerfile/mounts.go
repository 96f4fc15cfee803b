package dockerfile

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"

	cfs "github.com/containerd/continuity/fs"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/store"
)

// runMounts are the mounts one RUN step gets, and what to undo after.
// The mount points themselves are run's: it creates each target and the
// parents it lacks, and removes again those still empty after the
// process (an empty directory, or the placeholder of a file mount), so
// that, as in BuildKit (executor.MountStubsCleaner, recursive since
// v0.11), no stub ends up in the layer while anything the step put there
// stays.
type runMounts struct {
	specs    []specs.Mount
	late     []specs.Mount
	env      []string
	cleanups []func(ctx context.Context)
}

func (m *runMounts) release(ctx context.Context) {
	for i := len(m.cleanups) - 1; i >= 0; i-- {
		m.cleanups[i](ctx)
	}
}

// prepareMounts turns RUN --mount options into runtime mounts.
// extras are each mount's Buildah options (see rewriteMountFlags).
func (r *stageRun) prepareMounts(ctx context.Context, mounts []*instructions.Mount, extras [][]string) (*runMounts, error) {
	rm := &runMounts{}
	for i, mt := range mounts {
		var extra []string
		if i < len(extras) {
			extra = extras[i]
		}
		copyUp := false
		for _, e := range extra {
			switch {
			case e == "tmpcopyup" && mt.Type == instructions.MountTypeTmpfs:
				copyUp = true
			default:
				return rm, fmt.Errorf("--mount type=%s: option %q is not supported", mt.Type, e)
			}
		}
		var err error
		switch mt.Type {
		case instructions.MountTypeBind:
			err = r.bindMount(ctx, rm, mt)
		case instructions.MountTypeCache:
			if mt.From != "" {
				// A cache based on a stage, context or image (BuildKit's
				// from=): what it has at source, in a writable copy.
				err = r.bindMount(ctx, rm, mt)
				break
			}
			err = r.cacheMount(rm, mt)
		case instructions.MountTypeTmpfs:
			opts := []string{"nosuid", "nodev"}
			if mt.SizeLimit > 0 {
				opts = append(opts, fmt.Sprintf("size=%d", mt.SizeLimit))
			}
			if copyUp {
				// The tmpfs starts with what the image has there (runc's
				// option, as Buildah passes it).
				opts = append(opts, "tmpcopyup")
			}
			rm.specs = append(rm.specs, specs.Mount{Destination: mt.Target, Type: "tmpfs", Source: "tmpfs", Options: opts})
		case instructions.MountTypeSecret:
			err = r.secretMount(rm, mt)
		case instructions.MountTypeSSH:
			err = r.sshMount(rm, mt, i)
		default:
			err = fmt.Errorf("unsupported mount type %q", mt.Type)
		}
		if err != nil {
			return rm, fmt.Errorf("--mount type=%s: %w", mt.Type, err)
		}
	}
	for i := range rm.specs {
		if !path.IsAbs(rm.specs[i].Destination) {
			rm.specs[i].Destination = path.Join("/", r.config().Config.WorkingDir, rm.specs[i].Destination)
		}
	}
	return rm, nil
}

// bindMount binds a path of the context, a stage or an image; writes to
// a rw bind go to a throwaway copy.
func (r *stageRun) bindMount(ctx context.Context, rm *runMounts, mt *instructions.Mount) error {
	src, err := r.mountSource(ctx, rm, mt.From, mt.Source)
	if err != nil {
		return err
	}
	opts := []string{"rbind"}
	if mt.ReadOnly {
		opts = append(opts, "ro")
	} else {
		tmp, err := os.MkdirTemp(r.b.st.RunRoot(), "bind-")
		if err != nil {
			return err
		}
		rm.cleanups = append(rm.cleanups, func(context.Context) { os.RemoveAll(tmp) })
		dst := filepath.Join(tmp, "data")
		if fi, err := os.Stat(src); err == nil && !fi.IsDir() {
			err = cfs.CopyFile(dst, src)
			if err != nil {
				return err
			}
		} else if err := cfs.CopyDir(dst, src); err != nil {
			return err
		}
		src = dst
	}
	rm.specs = append(rm.specs, specs.Mount{Destination: mt.Target, Type: "bind", Source: src, Options: opts})
	return nil
}

// mountSource resolves source inside the root --from names: the build
// context when from is empty, a named context, a stage or an image.
func (r *stageRun) mountSource(ctx context.Context, rm *runMounts, from, source string) (string, error) {
	root, err := r.fromRoot(ctx, from, &rm.cleanups)
	if err != nil {
		return "", err
	}
	if root == "" {
		root = r.b.bctx.dir
		if err := checkSource(source); err != nil {
			return "", err
		}
	}
	p, err := cfs.RootPath(root, source)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(p); err != nil {
		return "", fmt.Errorf("mount source %q: %w", source, err)
	}
	return p, nil
}

// fromRoot returns the root directory --from names: "" for the build
// context; a named context's directory; or a stage's or image's
// mounted root (its cleanup appended to cleanups).
func (r *stageRun) fromRoot(ctx context.Context, from string, cleanups *[]func(context.Context)) (string, error) {
	if from == "" {
		return "", nil
	}
	img, dir, err := r.fromImage(ctx, from)
	if err != nil || dir != "" {
		return dir, err
	}
	root, release, err := container.MountImage(ctx, r.b.st, img.ID)
	if err != nil {
		return "", err
	}
	*cleanups = append(*cleanups, release)
	return root, nil
}

// fromImage resolves a --from value to a named context (directory or
// image: it wins over a stage of the same name, as in BuildKit), a
// stage's image, or an image reference.
func (r *stageRun) fromImage(ctx context.Context, from string) (store.Image, string, error) {
	if name, ok := r.b.namedContext(from, r.s.index); ok {
		v := r.b.o.Contexts[name]
		if _, isImage := imageRef(v); !isImage {
			return store.Image{}, v, nil
		}
		img, err := r.b.resolveImage(ctx, name, r.platform)
		return img, "", err
	}
	if s, ok := r.b.df.lookupStage(from, r.s.index); ok {
		img, err := r.b.waitStage(ctx, s)
		return img, "", err
	}
	if _, ok := r.b.df.lookupStage(from, -1); ok {
		// Buildah's words, then why.
		return store.Image{}, "", fmt.Errorf("%w: %s --from=%s: no stage or image found with that name (it names this stage or a later one)", ErrNoStage, r.verb, from)
	}
	img, err := r.b.resolveImage(ctx, from, r.platform)
	return img, "", err
}

// cacheMount binds a directory kept in the store across builds.
func (r *stageRun) cacheMount(rm *runMounts, mt *instructions.Mount) error {
	id := mt.CacheID
	if id == "" {
		id = mt.Target
	}
	o := container.CacheDirOptions{ID: id}
	if mt.Mode != nil {
		o.Mode = os.FileMode(*mt.Mode)
	}
	if mt.UID != nil {
		o.UID = int(*mt.UID)
	}
	if mt.GID != nil {
		o.GID = int(*mt.GID)
	}
	dir, err := container.CacheDir(r.b.st, o)
	if err != nil {
		return err
	}
	opts := []string{"rbind"}
	if mt.ReadOnly {
		opts = append(opts, "ro")
	}
	rm.specs = append(rm.specs, specs.Mount{Destination: mt.Target, Type: "bind", Source: dir, Options: opts})
	return nil
}

// mountKeyParts are the cache-key parts of a RUN's mounts: what a bind
// mount (or a cache based on from=) shows is part of the key; caches,
// tmpfs and secrets are not.
func (r *stageRun) mountKeyParts(ctx context.Context, mounts []*instructions.Mount) ([]string, error) {
	var parts []string
	for _, mt := range mounts {
		parts = append(parts, fmt.Sprintf("mount:%s:%s:%s:%t", mt.Type, mt.Target, mt.CacheID, mt.ReadOnly))
		if mt.Type != instructions.MountTypeBind && !(mt.Type == instructions.MountTypeCache && mt.From != "") {
			continue
		}
		d, err := r.sourceDigest(ctx, mt.From, []string{mt.Source})
		if err != nil {
			return nil, err
		}
		parts = append(parts, "bind:"+d)
	}
	return parts, nil
}

// targets lists the destinations of the RUN's --mount mounts: they stay in
// the image as docker build here leaves them (run.Options.KeepMountTargets).
func (rm *runMounts) targets() []string {
	var out []string
	for _, ms := range [][]specs.Mount{rm.specs, rm.late} {
		for _, m := range ms {
			out = append(out, m.Destination)
		}
	}
	return out
}
