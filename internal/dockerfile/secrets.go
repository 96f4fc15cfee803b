package dockerfile

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// secretMount gives a RUN a --secret: a read-only file (by default at
// /run/secrets/ID) or, with env=, an environment variable. A secret the
// build was not given is skipped unless required=true.
func (r *stageRun) secretMount(rm *runMounts, mt *instructions.Mount) error {
	id := mt.CacheID
	if id == "" && mt.Target != "" {
		id = path.Base(mt.Target)
	}
	if id == "" {
		return fmt.Errorf("a secret mount needs id= or target=")
	}
	sec, ok := r.b.o.Run.Secrets[id]
	if !ok {
		if mt.Required {
			return fmt.Errorf("secret required but no secret with id %s found (give it with --secret id=%s,src=FILE)", id, id)
		}
		return nil
	}
	data, err := secretData(sec)
	if err != nil {
		return fmt.Errorf("secret %q: %w", id, err)
	}
	if mt.Env != nil {
		name := *mt.Env
		if name == "" {
			name = id
		}
		rm.env = append(rm.env, name+"="+string(data))
		if mt.Target == "" {
			return nil
		}
	}
	target := mt.Target
	if target == "" {
		target = "/run/secrets/" + id
	}
	dir, err := os.MkdirTemp(r.b.st.RunRoot(), "secret-")
	if err != nil {
		return err
	}
	rm.cleanups = append(rm.cleanups, func(context.Context) { os.RemoveAll(dir) })
	file := filepath.Join(dir, "secret")
	mode := os.FileMode(0o400)
	if mt.Mode != nil {
		mode = os.FileMode(*mt.Mode)
	}
	if err := os.WriteFile(file, data, mode); err != nil {
		return err
	}
	uid, gid := 0, 0
	if mt.UID != nil {
		uid = int(*mt.UID)
	}
	if mt.GID != nil {
		gid = int(*mt.GID)
	}
	if err := os.Chown(file, uid, gid); err != nil {
		return err
	}
	rm.late = append(rm.late, specs.Mount{Destination: target, Type: "bind", Source: file, Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
	return nil
}

func secretData(s Secret) ([]byte, error) {
	if s.Env != "" {
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return []byte(v), nil
	}
	return os.ReadFile(s.Src)
}

// sshMount forwards the build's SSH agent socket.
func (r *stageRun) sshMount(rm *runMounts, mt *instructions.Mount, n int) error {
	sock := r.b.o.Run.SSHAuthSock
	if sock == "" {
		if mt.Required {
			return fmt.Errorf("an ssh mount is required but the build has no --ssh")
		}
		return nil
	}
	target := mt.Target
	if target == "" {
		target = fmt.Sprintf("/run/buildkit/ssh_agent.%d", n)
	}
	rm.late = append(rm.late, specs.Mount{Destination: target, Type: "bind", Source: sock, Options: []string{"bind"}})
	rm.env = append(rm.env, "SSH_AUTH_SOCK="+target)
	return nil
}

// scriptMount puts a heredoc script at heredocPath, executable.
func (r *stageRun) scriptMount(rm *runMounts, script string) error {
	dir, err := os.MkdirTemp(r.b.st.RunRoot(), "heredoc-")
	if err != nil {
		return err
	}
	rm.cleanups = append(rm.cleanups, func(context.Context) { os.RemoveAll(dir) })
	file := filepath.Join(dir, "script")
	if err := os.WriteFile(file, []byte(script), 0o755); err != nil {
		return err
	}
	rm.late = append(rm.late, specs.Mount{Destination: heredocPath, Type: "bind", Source: file, Options: []string{"bind", "ro"}})
	return nil
}
