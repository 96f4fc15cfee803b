package transport

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoginPushTLS(t *testing.T) {
	reg := startRegistry(t, true)
	sys := reg.sys(t)
	ctx := context.Background()

	err := Login(ctx, reg.host, reg.user, "wrong-"+reg.pass, sys)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("login with a wrong password: %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), reg.pass) {
		t.Errorf("error text contains the password: %v", err)
	}
	if _, err := os.Stat(sys.AuthFile); err == nil {
		t.Errorf("a failed login wrote %s", sys.AuthFile)
	}
	noCA := *sys
	noCA.CertsDirs = []string{t.TempDir()}
	if err := Login(ctx, reg.host, reg.user, reg.pass, &noCA); err == nil {
		t.Errorf("login without the CA succeeded")
	}

	if err := Login(ctx, reg.host, reg.user, reg.pass, sys); err != nil {
		t.Fatalf("login: %v", err)
	}
	if user, err := GetLogin(reg.host, sys); err != nil || user != reg.user {
		t.Errorf("GetLogin = %q, %v; want %q", user, err, reg.user)
	}
	img := testImage(t, 1, "amd64")
	ref := "docker://" + reg.host + "/kiln/auth:v1"
	copyRef(t, sys, img, ref, CopyOptions{})
	tags, err := Tags(ctx, mustParse(t, ref), sys)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"v1"}, tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	info, err := Inspect(ctx, openSource(t, sys, ref), InspectOptions{Name: reg.host + "/kiln/auth"})
	if err != nil || info.Os != "linux" || info.Architecture != "amd64" {
		t.Errorf("inspect = %+v, %v", info, err)
	}
	if err := Delete(ctx, mustParse(t, ref), sys); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := mustParse(t, ref).NewSource(ctx, sys); err == nil {
		t.Errorf("the deleted image can still be read")
	}

	if err := Logout(reg.host, false, sys); err != nil {
		t.Fatal(err)
	}
	if err := Logout(reg.host, false, sys); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("second logout: %v, want ErrNotLoggedIn", err)
	}
	if _, err := mustParse(t, ref).NewDestination(ctx, sys); err == nil {
		dst, _ := mustParse(t, ref).NewDestination(ctx, sys)
		if _, err := Copy(ctx, dst, img, CopyOptions{Retry: -1}); err == nil {
			t.Errorf("push after logout succeeded")
		}
	}
	withCreds := *sys
	withCreds.Creds = reg.user + ":" + reg.pass
	copyRef(t, &withCreds, img, ref, CopyOptions{})
}

func TestCredentialLookupOrder(t *testing.T) {
	home, run := t.TempDir(), t.TempDir()
	write := func(path, host, user string) {
		os.MkdirAll(filepath.Dir(path), 0o700)
		auth := base64.StdEncoding.EncodeToString([]byte(user + ":pw"))
		os.WriteFile(path, []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600)
	}
	regFile := filepath.Join(t.TempDir(), "reg.json")
	write(regFile, "a.example", "from-registry-auth-file")
	write(filepath.Join(run, "containers", "auth.json"), "b.example/ns", "from-xdg")
	write(filepath.Join(run, "containers", "auth.json.unused"), "x", "x")
	write(filepath.Join(home, ".config", "containers", "auth.json"), "b.example", "from-config")
	write(filepath.Join(home, ".docker", "config.json"), "https://index.docker.io/v1/", "from-docker")
	env := map[string]string{"REGISTRY_AUTH_FILE": regFile, "XDG_RUNTIME_DIR": run, "HOME": home}
	sys := &SystemContext{Env: func(k string) string { return env[k] }}
	tests := []struct {
		ref, want string
	}{
		{"a.example/x", "from-registry-auth-file"},
		{"b.example/ns/img", "from-xdg"},
		{"b.example/other", "from-config"},
		{"docker.io/library/busybox", "from-docker"},
		{"c.example/x", ""},
	}
	for _, tc := range tests {
		c, err := LookupCredentials(tc.ref, sys)
		if tc.want == "" {
			if !errors.Is(err, ErrNotLoggedIn) {
				t.Errorf("%s: %v, want ErrNotLoggedIn", tc.ref, err)
			}
			continue
		}
		if err != nil || c.Username != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.ref, c.Username, err, tc.want)
		}
	}
	if got, want := LoginFile(sys), regFile; got != want {
		t.Errorf("LoginFile = %s, want %s", got, want)
	}
	delete(env, "REGISTRY_AUTH_FILE")
	if got, want := LoginFile(sys), filepath.Join(run, "containers", "auth.json"); got != want {
		t.Errorf("LoginFile = %s, want %s", got, want)
	}
}
