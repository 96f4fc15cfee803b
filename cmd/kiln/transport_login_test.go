package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

// TestTransportLogin logs in to a registry with htpasswd over TLS (its
// CA given by --cert-dir), pushes and pulls with the stored credentials,
// and checks that a wrong password is a clear error and that no password
// is ever printed.
func TestTransportLogin(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	reg := transporttest.StartRegistry(t, true)
	auth := filepath.Join(t.TempDir(), "auth.json")
	certs := filepath.Join(reg.CertsDir, reg.Host)
	tlsFlags := []string{"--authfile", auth, "--cert-dir", certs}
	secret := []string{reg.Pass, "wrong-" + reg.Pass}
	noSecrets := func(what string, outs ...string) {
		t.Helper()
		for _, o := range outs {
			for _, s := range secret {
				if strings.Contains(o, s) {
					t.Errorf("%s printed a password: %q", what, o)
				}
			}
		}
	}

	out, errOut, code := e.run("wrong-"+reg.Pass+"\n", nil, append([]string{"--log-level", "debug", "login", "-u", reg.User, "--password-stdin"}, append(tlsFlags, reg.Host)...)...)
	if code != 125 || !strings.Contains(errOut, "invalid username or password") || !strings.Contains(errOut, reg.Host) {
		t.Errorf("login with a wrong password: exit %d, stderr %q; want 125 and a clear error naming the registry", code, errOut)
	}
	noSecrets("failed login", out, errOut)
	_, errOut, code = e.run("", nil, "login", "-u", reg.User, "-p", "wrong-"+reg.Pass, "--authfile", auth, "--tls-verify=false", reg.Host)
	if code != 125 || !strings.Contains(errOut, "invalid username or password") {
		t.Errorf("login -p wrong --tls-verify=false: exit %d, stderr %q", code, errOut)
	}
	noSecrets("failed login -p", errOut)

	out, errOut, _ = e.run(reg.Pass+"\n", nil, append([]string{"--log-level", "debug", "login", "-u", reg.User, "--password-stdin"}, append(tlsFlags, "docker://"+reg.Host)...)...)
	if out != "Login Succeeded!" {
		t.Fatalf("login: stdout %q, stderr %q", out, errOut)
	}
	noSecrets("login", out, errOut)
	if got := e.mustKiln("login", "--get-login", "--authfile", auth, reg.Host); got != reg.User {
		t.Errorf("login --get-login = %q, want %q", got, reg.User)
	}
	if got := e.mustKiln(append([]string{"login"}, append(tlsFlags, reg.Host)...)...); !strings.Contains(got, "Already logged in to "+reg.Host) {
		t.Errorf("login with stored credentials: %q", got)
	}

	dest := "docker://" + reg.Host + "/private/bb:1"
	out, errOut, _ = e.run("", nil, append([]string{"--log-level", "debug", "push"}, append(tlsFlags, "localhost/busybox", dest)...)...)
	noSecrets("push", out, errOut)
	e.mustKiln(append([]string{"image", "inspect"}, append(tlsFlags, dest)...)...)
	if got := e.mustKiln(append([]string{"image", "tags"}, append(tlsFlags, "docker://"+reg.Host+"/private/bb")...)...); !strings.Contains(got, `"1"`) {
		t.Errorf("image tags: %s", got)
	}

	if got := e.mustKiln("logout", "--authfile", auth, reg.Host); got != "Removed login credentials for "+reg.Host {
		t.Errorf("logout: %q", got)
	}
	if errOut := e.fails("logout", "--authfile", auth, reg.Host); !strings.Contains(errOut, "not logged into "+reg.Host) {
		t.Errorf("second logout: %q", errOut)
	}
	errOut = e.fails(append([]string{"image", "inspect"}, append(tlsFlags, dest)...)...)
	if !strings.Contains(errOut, "401") && !strings.Contains(strings.ToLower(errOut), "unauthorized") {
		t.Errorf("inspect after logout: %q, want an authorization error", errOut)
	}
	if errOut := e.fails("login", "--get-login", "--authfile", auth, reg.Host); !strings.Contains(errOut, "not logged into") {
		t.Errorf("--get-login after logout: %q", errOut)
	}
	e.mustKiln("login", "-u", reg.User, "-p", reg.Pass, "--authfile", auth, "--cert-dir", certs, reg.Host)
	if got := e.mustKiln("logout", "--all", "--authfile", auth); got != "Removed login credentials for all registries" {
		t.Errorf("logout --all: %q", got)
	}
	if strings.Contains(readFile(t, auth), reg.Host) {
		t.Errorf("auth file still names the registry after logout --all:\n%s", readFile(t, auth))
	}
}
