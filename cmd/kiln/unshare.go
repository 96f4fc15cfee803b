package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
)

type unshareOptions struct {
	// Mounts are [VAR=]CONTAINER: each container is mounted for the
	// command, its mount point in $VAR (the container's name by default).
	Mounts []string
}

func init() { register(newUnshareCommand) }

// newUnshareCommand is Buildah's unshare: the command (the user's shell
// by default) runs in the user and mount namespace a rootless kiln works
// in (cmd/kiln/rootless.go entered it before this runs), where the user
// is root, the store's files show their in-image owners, and the mounts
// `kiln mount` makes stay until the command exits. Every kiln the command
// starts works in the same namespace. As root it runs the command as it
// is.
func newUnshareCommand() *cobra.Command {
	var o unshareOptions
	cmd := &cobra.Command{
		Use:   "unshare [options] [COMMAND [ARGS...]]",
		Short: "Run a command in the user namespace a rootless kiln works in",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				shell := os.Getenv("SHELL")
				if shell == "" {
					shell = "/bin/sh"
				}
				args = []string{shell}
			}
			env, unmount, err := unshareMounts(cmd, o.Mounts)
			if err != nil {
				return err
			}
			c := exec.Command(args[0], args[1:]...)
			c.Env = append(os.Environ(), env...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
			err = c.Run()
			err = errors.Join(err, unmount())
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee):
				return &exitError{code: exitCode(ee)}
			case errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist):
				return &exitError{code: 127, err: fmt.Errorf("running %s: %w", args[0], err)}
			case err != nil:
				return &exitError{code: 126, err: fmt.Errorf("running %s: %w", args[0], err)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringArrayVarP(&o.Mounts, "mount", "m", nil, "mount the working container [VARIABLE=]CONTAINER and set $VARIABLE (default: the container's name) to its mount point")
	return cmd
}

// exitCode is a finished command's status, 128+n for a signal.
func exitCode(ee *exec.ExitError) int {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}

// unshareMounts mounts the containers specs name and returns the
// variables that name their mount points, and a function that unmounts
// them again.
func unshareMounts(cmd *cobra.Command, specs []string) (env []string, unmount func() error, err error) {
	unmount = func() error { return nil }
	if len(specs) == 0 {
		return nil, unmount, nil
	}
	ctx := cmd.Context()
	st, err := openStore(ctx)
	if err != nil {
		return nil, unmount, err
	}
	defer st.Close()
	var mounted []string
	unmount = func() error {
		st, err := openStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		var errs []error
		for _, id := range mounted {
			c, err := container.Open(ctx, st, id)
			if err == nil {
				err = c.Unmount(ctx, false)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("unmounting %s: %w", id, err))
			}
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, unmount())
		}
	}()
	for _, spec := range specs {
		name, ref, ok := strings.Cut(spec, "=")
		if !ok {
			ref = name
		}
		c, err := container.Open(ctx, st, ref)
		if err != nil {
			return nil, unmount, err
		}
		if !ok {
			name = c.Name()
		}
		mp, err := c.Mount(ctx)
		if err != nil {
			return nil, unmount, fmt.Errorf("mounting %s: %w", ref, err)
		}
		mounted = append(mounted, c.ID())
		env = append(env, name+"="+mp)
	}
	return env, unmount, nil
}
