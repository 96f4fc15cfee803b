package transport

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	gtransport "github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/kiln-build/kiln/internal/digestio"
)

// ErrUnauthorized reports credentials the registry refused.
var ErrUnauthorized = errors.New("invalid username or password")

// Credentials are a user name and password (or identity token).
type Credentials struct {
	Username, Password string
}

func (sys *SystemContext) getenv(k string) string {
	if sys != nil && sys.Env != nil {
		return sys.Env(k)
	}
	return os.Getenv(k)
}

// AuthFiles returns the credential files searched, in order: the
// --authfile one alone when set, else $REGISTRY_AUTH_FILE,
// $XDG_RUNTIME_DIR/containers/auth.json,
// ~/.config/containers/auth.json and ~/.docker/config.json.
func AuthFiles(sys *SystemContext) []string {
	if sys != nil && sys.AuthFile != "" {
		return []string{sys.AuthFile}
	}
	var files []string
	if f := sys.getenv("REGISTRY_AUTH_FILE"); f != "" {
		files = append(files, f)
	}
	if d := sys.getenv("XDG_RUNTIME_DIR"); d != "" {
		files = append(files, filepath.Join(d, "containers", "auth.json"))
	} else {
		files = append(files, filepath.Join("/run/containers", strconv.Itoa(os.Getuid()), "auth.json"))
	}
	if home := sys.getenv("HOME"); home != "" {
		files = append(files, filepath.Join(home, ".config", "containers", "auth.json"),
			filepath.Join(home, ".docker", "config.json"))
	}
	return files
}

// LoginFile is the file Login writes, where Buildah and Podman read:
// --authfile, else $REGISTRY_AUTH_FILE, else
// $XDG_RUNTIME_DIR/containers/auth.json, else /run/containers/UID/auth.json.
func LoginFile(sys *SystemContext) string {
	if sys != nil && sys.AuthFile != "" {
		return sys.AuthFile
	}
	if f := sys.getenv("REGISTRY_AUTH_FILE"); f != "" {
		return f
	}
	if d := sys.getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "containers", "auth.json")
	}
	return filepath.Join("/run/containers", strconv.Itoa(os.Getuid()), "auth.json")
}

type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

type authFile struct {
	Auths       map[string]authEntry `json:"auths"`
	CredHelpers map[string]string    `json:"credHelpers,omitempty"`
	CredsStore  string               `json:"credsStore,omitempty"`
}

func readAuthFile(path string) (map[string]json.RawMessage, *authFile, error) {
	raw := map[string]json.RawMessage{}
	af := &authFile{Auths: map[string]authEntry{}}
	f, err := os.Open(path)
	if err != nil {
		return raw, af, err
	}
	defer f.Close()
	b, err := digestio.ReadDocument(f)
	if err != nil {
		return raw, af, err
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return raw, af, fmt.Errorf("parsing credential file %s: %w", path, err)
	}
	if err := json.Unmarshal(b, af); err != nil {
		return raw, af, fmt.Errorf("parsing credential file %s: %w", path, err)
	}
	if af.Auths == nil {
		af.Auths = map[string]authEntry{}
	}
	return raw, af, nil
}

// normalizeAuthKey turns "https://index.docker.io/v1/" into "docker.io".
func normalizeAuthKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	k = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(k, "/"), "/v1"), "/v2")
	if k == "index.docker.io" || k == "registry-1.docker.io" {
		return "docker.io"
	}
	return k
}

// authKeys returns the keys to look up for "host/path", most specific first.
func authKeys(ref string) []string {
	ref = normalizeAuthKey(ref)
	var keys []string
	for {
		keys = append(keys, ref)
		i := strings.LastIndexByte(ref, '/')
		if i < 0 {
			return keys
		}
		ref = ref[:i]
	}
}

// LookupCredentials finds credentials for ref ("host[/path]") in the
// credential files and helpers; sys.Creds wins. It returns zero
// Credentials and ErrNotLoggedIn when there are none.
func LookupCredentials(ref string, sys *SystemContext) (Credentials, error) {
	if sys != nil && sys.Creds != "" {
		u, p, _ := strings.Cut(sys.Creds, ":")
		return Credentials{Username: u, Password: p}, nil
	}
	keys := authKeys(ref)
	for _, path := range AuthFiles(sys) {
		_, af, err := readAuthFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return Credentials{}, err
		}
		if c, ok, err := lookupIn(af, keys); ok || err != nil {
			return c, err
		}
	}
	return Credentials{}, fmt.Errorf("%s: %w", keys[len(keys)-1], ErrNotLoggedIn)
}

func lookupIn(af *authFile, keys []string) (Credentials, bool, error) {
	entries := map[string]authEntry{}
	for k, v := range af.Auths {
		entries[normalizeAuthKey(k)] = v
	}
	for _, k := range keys {
		if e, ok := entries[k]; ok {
			c, err := decodeAuth(e)
			return c, err == nil, err
		}
	}
	host := keys[len(keys)-1]
	helper := af.CredsStore
	if h, ok := af.CredHelpers[host]; ok {
		helper = h
	}
	if helper == "" {
		return Credentials{}, false, nil
	}
	c, err := credHelper(helper, host)
	return c, err == nil && c.Username != "", err
}

func decodeAuth(e authEntry) (Credentials, error) {
	b, err := base64.StdEncoding.DecodeString(e.Auth)
	if err != nil {
		return Credentials{}, errors.New("credential file entry is not valid base64")
	}
	u, p, _ := strings.Cut(string(b), ":")
	if e.IdentityToken != "" {
		p = e.IdentityToken
	}
	return Credentials{Username: u, Password: p}, nil
}

// credHelper runs docker-credential-NAME get for host.
func credHelper(helper, host string) (Credentials, error) {
	cmd := exec.Command("docker-credential-"+helper, "get")
	cmd.Stdin = strings.NewReader(host)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		if strings.Contains(out.String(), "credentials not found") {
			return Credentials{}, nil
		}
		return Credentials{}, fmt.Errorf("running credential helper docker-credential-%s for %s: %w", helper, host, err)
	}
	var r struct{ Username, Secret string }
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return Credentials{}, fmt.Errorf("credential helper docker-credential-%s: %w", helper, err)
	}
	return Credentials{Username: r.Username, Password: r.Secret}, nil
}

// authenticator returns the authn.Authenticator for ref.
func authenticator(ref string, sys *SystemContext) (authn.Authenticator, error) {
	c, err := LookupCredentials(ref, sys)
	if errors.Is(err, ErrNotLoggedIn) {
		return authn.Anonymous, nil
	}
	if err != nil {
		return nil, err
	}
	if c.Username == "<token>" || c.Username == "" && c.Password != "" {
		return authn.FromConfig(authn.AuthConfig{IdentityToken: c.Password}), nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password}), nil
}

// Login checks user and password against registry (host[:port], or
// host[:port]/path for credentials that apply to part of a registry) with
// a /v2/ request, then stores them in LoginFile(sys). The password never
// appears in errors or logs.
func Login(ctx context.Context, registry, user, pass string, sys *SystemContext) error {
	if err := CheckCredentials(ctx, registry, user, pass, sys); err != nil {
		return err
	}
	path := LoginFile(sys)
	return updateAuthFile(path, func(af *authFile) error {
		af.Auths[registry] = authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
		return nil
	})
}

// CheckCredentials checks user and password against the registry of
// registry (host[:port][/path]) without storing them; a refusal is
// ErrUnauthorized. The password never appears in errors.
func CheckCredentials(ctx context.Context, registry, user, pass string, sys *SystemContext) error {
	host, _, _ := strings.Cut(registry, "/")
	reg, err := name.NewRegistry(host, registryOpts(host, sys)...)
	if err != nil {
		return fmt.Errorf("logging in to %q: %w", registry, err)
	}
	if err := checkLogin(ctx, reg, user, pass, sys); err != nil {
		return fmt.Errorf("logging in to %s as %q: %w", registry, user, err)
	}
	return nil
}

func checkLogin(ctx context.Context, reg name.Registry, user, pass string, sys *SystemContext) error {
	base, err := httpTransport(reg.RegistryStr(), sys)
	if err != nil {
		return err
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})
	rt, err := gtransport.NewWithContext(ctx, reg, auth, base, nil)
	if err != nil {
		var te *gtransport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized {
			return ErrUnauthorized
		}
		return scrub(err, pass)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return scrub(err, pass)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	}
	return fmt.Errorf("registry answered %d to /v2/", resp.StatusCode)
}

// scrub removes a secret from an error's text.
func scrub(err error, secret string) error {
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "********"))
}

func updateAuthFile(path string, f func(*authFile) error) error {
	raw, af, err := readAuthFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := f(af); err != nil {
		return err
	}
	auths, err := json.Marshal(af.Auths)
	if err != nil {
		return err
	}
	raw["auths"] = auths
	b, err := json.MarshalIndent(raw, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return digestio.WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// Logout removes the credentials of registry (every registry when all is
// true) from LoginFile(sys). It returns ErrNotLoggedIn when there were none.
func Logout(registry string, all bool, sys *SystemContext) error {
	path := LoginFile(sys)
	return updateAuthFile(path, func(af *authFile) error {
		if all {
			clear(af.Auths)
			return nil
		}
		for k := range af.Auths {
			if normalizeAuthKey(k) == normalizeAuthKey(registry) {
				delete(af.Auths, k)
				return nil
			}
		}
		return fmt.Errorf("logging out of %s: %w", registry, ErrNotLoggedIn)
	})
}

// GetLogin returns the user name stored for registry.
func GetLogin(registry string, sys *SystemContext) (string, error) {
	c, err := LookupCredentials(registry, &SystemContext{AuthFile: sysAuthFile(sys), Env: sysEnv(sys)})
	if err != nil {
		return "", err
	}
	return c.Username, nil
}

func sysAuthFile(sys *SystemContext) string {
	if sys == nil {
		return ""
	}
	return sys.AuthFile
}

func sysEnv(sys *SystemContext) func(string) string {
	if sys == nil {
		return nil
	}
	return sys.Env
}
