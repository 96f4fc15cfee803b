package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/kiln-build/kiln/internal/transport"
)

type loginOptions struct {
	Username, Password      string
	PasswordStdin, GetLogin bool
	Verbose                 bool
	registryFlags
}

func init() { register(newLoginCommand) }

func newLoginCommand() *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "login [options] [REGISTRY]",
		Short: "Log in to a container registry, storing the credentials where Buildah and Podman read them",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLogin(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Username, "username", "u", "", "user name")
	f.StringVarP(&o.Password, "password", "p", "", "password (visible to other users of this host: prefer --password-stdin)")
	f.BoolVar(&o.PasswordStdin, "password-stdin", false, "read the password from standard input")
	f.BoolVar(&o.GetLogin, "get-login", false, "print the user name stored for the registry")
	f.BoolVarP(&o.Verbose, "verbose", "v", false, "print the credential file used")
	o.addLoginFlags(f)
	return cmd
}

// addLoginFlags adds the registry flags login and logout have.
func (r *registryFlags) addLoginFlags(f *pflag.FlagSet) {
	f.Var(&r.TLSVerify, "tls-verify", "require HTTPS and verify certificates (default true)")
	f.Lookup("tls-verify").NoOptDefVal = "true"
	f.StringVar(&r.CertDir, "cert-dir", "", "directory of certificates for the registry")
	f.StringVar(&r.AuthFile, "authfile", "", "path of the authentication file (default $REGISTRY_AUTH_FILE, else ${XDG_RUNTIME_DIR}/containers/auth.json)")
}

func runLogin(cmd *cobra.Command, o loginOptions, args []string) error {
	ctx := cmd.Context()
	sys := o.systemContext()
	reg, err := registryArg(args, sys)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if o.GetLogin {
		user, err := transport.GetLogin(reg, sys)
		if err != nil {
			return fmt.Errorf("not logged into %s: %w", reg, err)
		}
		fmt.Fprintln(out, user)
		return nil
	}
	if o.Username == "" && o.Password == "" && !o.PasswordStdin {
		if ok := existingLoginValid(ctx, cmd, reg, sys); ok {
			return nil
		}
	}
	user, pass, err := loginCredentials(cmd, o)
	if err != nil {
		return err
	}
	if err := transport.Login(ctx, reg, user, pass, sys); err != nil {
		return err
	}
	if o.Verbose {
		fmt.Fprintf(out, "Used: %s\n", transport.LoginFile(sys))
	}
	fmt.Fprintln(out, "Login Succeeded!")
	return nil
}

// existingLoginValid checks stored credentials, as Podman does when
// login is given none, and says so when they work.
func existingLoginValid(ctx context.Context, cmd *cobra.Command, reg string, sys *transport.SystemContext) bool {
	c, err := transport.LookupCredentials(reg, sys)
	if err != nil || c.Username == "" {
		return false
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Authenticating with existing credentials for %s\n", reg)
	if err := transport.CheckCredentials(ctx, reg, c.Username, c.Password, sys); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "Existing credentials are invalid, please enter valid username and password\n")
		return false
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Existing credentials are valid. Already logged in to %s\n", reg)
	return true
}

// registryArg returns the registry login and logout act on: the
// argument without a scheme or transport, else the first
// unqualified-search registry of registries.conf.
func registryArg(args []string, sys *transport.SystemContext) (string, error) {
	if len(args) == 1 {
		r := args[0]
		for _, p := range []string{"docker://", "https://", "http://"} {
			r = strings.TrimPrefix(r, p)
		}
		r = strings.TrimSuffix(r, "/")
		if r == "" {
			return "", usageErrorf("empty registry name %q", args[0])
		}
		return r, nil
	}
	conf, err := transport.LoadRegistriesConf(sys)
	if err != nil {
		return "", err
	}
	if len(conf.UnqualifiedSearchRegistries) == 0 {
		return "", usageErrorf("no registry given, and registries.conf has no unqualified-search-registries")
	}
	return conf.UnqualifiedSearchRegistries[0], nil
}

// loginCredentials gathers the user name and password from the flags,
// standard input or the terminal.
func loginCredentials(cmd *cobra.Command, o loginOptions) (string, string, error) {
	if o.PasswordStdin && o.Password != "" {
		return "", "", usageErrorf("--password and --password-stdin cannot be used together")
	}
	in := cmd.InOrStdin()
	user, pass := o.Username, o.Password
	if o.PasswordStdin {
		if user == "" {
			return "", "", usageErrorf("--password-stdin needs --username")
		}
		b, err := io.ReadAll(io.LimitReader(in, 1<<20))
		if err != nil {
			return "", "", fmt.Errorf("reading the password from standard input: %w", err)
		}
		return user, strings.TrimRight(string(b), "\r\n"), nil
	}
	f, ok := in.(*os.File)
	tty := ok && term.IsTerminal(int(f.Fd()))
	if (user == "" || pass == "") && !tty {
		return "", "", usageErrorf("no terminal to ask for credentials: use --username with --password-stdin (or --password)")
	}
	if user == "" {
		fmt.Fprint(cmd.ErrOrStderr(), "Username: ")
		line, err := bufio.NewReader(f).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", "", err
		}
		user = strings.TrimSpace(line)
	}
	if pass == "" {
		fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", "", fmt.Errorf("reading the password: %w", err)
		}
		pass = string(b)
	}
	if user == "" {
		return "", "", usageErrorf("a user name is required")
	}
	return user, pass, nil
}
