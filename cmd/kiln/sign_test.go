package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/signature/signaturetest"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/testenv"
)

// signEnv is a store, a registry with a foreign base image, a GnuPG home
// and a registries.d whose lookaside store is a temporary directory.
type signEnv struct {
	*env
	reg, base       string // registry host, the base's name there
	gpg             *signaturetest.GPGHome
	dir             string
	registriesD     string
	passFile        string
	kilnKey, skoKey string // fingerprints
	kilnPub, skoPub string // exported public keys
	cosignKey       string // cosign private key (passphrase in passFile)
	cosignPub       string
}

func newSignEnv(t *testing.T) *signEnv {
	testenv.NeedBinary(t, "skopeo")
	s := &signEnv{env: newEnv(t, ""), dir: t.TempDir()}
	s.reg = plainRegistry(t)
	s.base = testbase.Push(t, s.reg, testbase.Spec{Kind: testbase.Busybox}).Name
	s.gpg = signaturetest.NewGPGHome(t)
	s.kilnKey = s.gpg.GenerateKey(t, signaturetest.Key{Name: "Kiln Signer", Algo: "ed25519", Passphrase: "pass phrase"})
	s.skoKey = s.gpg.GenerateKey(t, signaturetest.Key{Name: "Skopeo Signer", Algo: "rsa2048", Passphrase: "pass phrase"})
	s.kilnPub = s.gpg.WritePublicKey(t, s.dir, s.kilnKey)
	s.skoPub = s.gpg.WritePublicKey(t, s.dir, s.skoKey)
	s.passFile = filepath.Join(s.dir, "passphrase")
	must(t, os.WriteFile(s.passFile, []byte("pass phrase\n"), 0o600))
	s.cosignKey, s.cosignPub = signaturetest.CosignKeyPair(t, s.dir, "cosign", "pass phrase")
	s.registriesD = filepath.Join(s.dir, "registries.d")
	must(t, os.MkdirAll(s.registriesD, 0o755))
	must(t, os.WriteFile(filepath.Join(s.registriesD, "default.yaml"), []byte("default-docker:\n  lookaside: file://"+filepath.Join(s.dir, "sigstore")+"\n  use-sigstore-attachments: true\n"), 0o644))
	return s
}

// policy writes a policy.json whose docker scope REG/NS needs reqs and
// whose default accepts anything, and returns its path.
func (s *signEnv) policy(name, scope, reqs string) string {
	p := filepath.Join(s.dir, name+".json")
	must(s.t, os.WriteFile(p, []byte(`{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"`+scope+`":[`+reqs+`]}}}`), 0o644))
	return p
}

func signedBy(key, identity string) string {
	r := `{"type":"signedBy","keyType":"GPGKeys","keyPath":"` + key + `"`
	if identity != "" {
		r += `,"signedIdentity":` + identity
	}
	return r + `}`
}

// kilnSigned runs kiln with GNUPGHOME set.
func (s *signEnv) kilnSigned(a ...string) (string, string, int) {
	s.t.Helper()
	return s.run("", []string{"GNUPGHOME=" + s.gpg.Dir}, a...)
}

// skopeo runs skopeo with the test's registries.d and GnuPG home.
func (s *signEnv) skopeo(policy string, a ...string) (string, error) {
	s.t.Helper()
	args := []string{"--registries.d", s.registriesD}
	if policy == "" {
		args = append(args, "--insecure-policy")
	} else {
		args = append(args, "--policy", policy)
	}
	cmd := exec.Command("skopeo", append(args, a...)...)
	cmd.Env = s.gpg.Env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// state is what the store holds, to show a refused pull changed nothing.
func (s *signEnv) state() string {
	return s.mustKiln("images", "-a", "--noheading", "--no-trunc") + "\n" + s.mustKiln("storage", "check")
}

// TestSignPushSkopeoVerifies: what kiln signs on push, skopeo (another
// implementation, containers/image with gpgme) accepts by policy, and
// rejects when the policy trusts another key.
func TestSignPushSkopeoVerifies(t *testing.T) {
	s := newSignEnv(t)
	s.mustKiln("pull", "--tls-verify=false", s.base)
	dest := s.reg + "/signed/app:1"
	if out, errOut, code := s.kilnSigned("push", "--tls-verify=false", "--registries.d", s.registriesD, "--sign-by", s.kilnKey, "--sign-passphrase-file", s.passFile, s.base, "docker://"+dest); code != 0 {
		t.Fatalf("push --sign-by: %d %s %s", code, out, errOut)
	}
	sigs, _ := filepath.Glob(filepath.Join(s.dir, "sigstore", "signed/app@sha256=*", "signature-1"))
	if len(sigs) != 1 {
		t.Fatalf("lookaside signatures: %v", sigs)
	}
	good := s.policy("kiln-key", s.reg+"/signed", signedBy(s.kilnPub, ""))
	out := filepath.Join(t.TempDir(), "copy")
	if o, err := s.skopeo(good, "copy", "--src-tls-verify=false", "docker://"+dest, "dir:"+out); err != nil {
		t.Fatalf("skopeo refused what kiln signed: %v\n%s", err, o)
	}
	// skopeo's standalone check, through gpg, of the copy it made.
	if o, err := s.skopeo("", "standalone-verify", filepath.Join(out, "manifest.json"), dest, s.kilnKey, filepath.Join(out, "signature-1")); err != nil || !strings.Contains(o, "Signature verified") {
		t.Errorf("skopeo standalone-verify: %v\n%s", err, o)
	}
	bad := s.policy("other-key", s.reg+"/signed", signedBy(s.skoPub, ""))
	if o, err := s.skopeo(bad, "copy", "--src-tls-verify=false", "docker://"+dest, "dir:"+filepath.Join(t.TempDir(), "x")); err == nil {
		t.Errorf("skopeo accepted a signature by a key its policy does not trust:\n%s", o)
	}
	// A manifest list is signed as it is pushed with its images.
	s.mustKiln("manifest", "create", "localhost/signed-list")
	s.mustKiln("manifest", "add", "localhost/signed-list", s.base)
	list := s.reg + "/signed/list:1"
	if out, errOut, code := s.kilnSigned("manifest", "push", "--tls-verify=false", "--registries.d", s.registriesD, "--sign-by", s.kilnKey, "--sign-passphrase-file", s.passFile, "localhost/signed-list", "docker://"+list); code != 0 {
		t.Fatalf("manifest push --sign-by: %d %s %s", code, out, errOut)
	}
	if o, err := s.skopeo(good, "copy", "--all", "--src-tls-verify=false", "docker://"+list, "dir:"+filepath.Join(t.TempDir(), "list")); err != nil {
		t.Errorf("skopeo refused the signed list: %v\n%s", err, o)
	}
	// kiln agrees, and names who signed.
	rep := s.mustRun("", nil, "image", "verify", "--tls-verify=false", "--registries.d", s.registriesD, "--signature-policy", good, "docker://"+dest)
	if !strings.Contains(rep, s.kilnKey) || !strings.Contains(rep, "Verdict:   accepted") {
		t.Errorf("image verify:\n%s", rep)
	}
}

// TestSkopeoSignsKilnVerifies: kiln pulls what skopeo copy --sign-by
// signed when its policy trusts the key, and refuses it, storing
// nothing, when the policy trusts another key, the key file is missing
// or the policy does not parse.
func TestSkopeoSignsKilnVerifies(t *testing.T) {
	s := newSignEnv(t)
	dest := s.reg + "/skopeo/app:1"
	if o, err := s.skopeo("", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--sign-by", s.skoKey, "--sign-passphrase-file", s.passFile, "docker://"+s.base, "docker://"+dest); err != nil {
		t.Fatalf("skopeo copy --sign-by: %v\n%s", err, o)
	}
	before := s.state()
	pull := func(policy string) (string, int) {
		_, errOut, code := s.kiln("pull", "-q", "--tls-verify=false", "--registries.d", s.registriesD, "--signature-policy", policy, dest)
		return errOut, code
	}
	for name, tc := range map[string]struct{ policy, wantErr string }{
		"another key":               {s.policy("kiln-key", s.reg+"/skopeo/app", signedBy(s.kilnPub, "")), "image rejected by the signature policy"},
		"missing key":               {s.policy("missing", s.reg, signedBy(filepath.Join(s.dir, "missing.gpg"), "")), "missing.gpg"},
		"policy does not parse":     {writeTemp(t, "broken.json", `{"default":[{"type":"signedBy"}]}`), "broken.json"},
		"policy missing":            {filepath.Join(s.dir, "nope.json"), "nope.json"},
		"signature for another tag": {s.policy("exact", s.reg+"/skopeo/app", signedBy(s.skoPub, `{"type":"exactReference","dockerReference":"`+s.reg+`/skopeo/app:2"}`)), "image rejected"},
	} {
		t.Run(name, func(t *testing.T) {
			errOut, code := pull(tc.policy)
			if code != 125 || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want 125 and %q", code, errOut, tc.wantErr)
			}
			if after := s.state(); after != before {
				t.Errorf("a refused pull changed the store:\n%s\nto\n%s", before, after)
			}
		})
	}
	if errOut, code := pull(s.policy("skopeo-key", s.reg+"/skopeo", signedBy(s.skoPub, ""))); code != 0 {
		t.Fatalf("pull with the signer's key trusted: %d %s", code, errOut)
	}
	// A layout keeps no signatures: they are dropped, the push goes on.
	s.mustKiln("push", dest, "oci:"+filepath.Join(t.TempDir(), "layout")+":x")
	// The store keeps the signature: a re-push keeps it valid (same
	// manifest digest), and skopeo checks it at the new place.
	repushed := s.reg + "/repushed/app:1"
	s.mustKiln("push", "--tls-verify=false", "--registries.d", s.registriesD, dest, "docker://"+repushed)
	moved := s.policy("moved", s.reg+"/repushed", signedBy(s.skoPub, `{"type":"exactRepository","dockerRepository":"`+s.reg+`/skopeo/app"}`))
	if o, err := s.skopeo(moved, "copy", "--src-tls-verify=false", "docker://"+repushed, "dir:"+filepath.Join(t.TempDir(), "x")); err != nil {
		t.Errorf("the re-pushed signature does not verify: %v\n%s", err, o)
	}
	// image copy carries signatures; --remove-signatures drops them.
	copied, stripped := s.reg+"/copied/app:1", s.reg+"/stripped/app:1"
	s.mustKiln("image", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--registries.d", s.registriesD, "docker://"+dest, "docker://"+copied)
	s.mustKiln("image", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--registries.d", s.registriesD, "--remove-signatures", "docker://"+dest, "docker://"+stripped)
	for _, tc := range []struct {
		ref string
		ok  bool
	}{{copied, true}, {stripped, false}} {
		p := s.policy("carry", tc.ref[:strings.LastIndex(tc.ref, ":")], signedBy(s.skoPub, `{"type":"exactRepository","dockerRepository":"`+s.reg+`/skopeo/app"}`))
		_, errOut, code := s.kiln("pull", "-q", "--tls-verify=false", "--registries.d", s.registriesD, "--signature-policy", p, tc.ref)
		if (code == 0) != tc.ok {
			t.Errorf("pull %s: exit %d (%s), want accepted=%v", tc.ref, code, errOut, tc.ok)
		}
	}
}

// TestSigstoreSignatures: kiln's cosign-format signatures are read and
// checked by a second implementation (go-containerregistry, sigstore's
// payload package and the standard library's ECDSA: Debian's skopeo is
// built without sigstore), and kiln accepts what that implementation
// signed, by policy.
func TestSigstoreSignatures(t *testing.T) {
	s := newSignEnv(t)
	s.mustKiln("pull", "--tls-verify=false", s.base)
	dest := s.reg + "/cosign/app:1"
	digestFile := filepath.Join(t.TempDir(), "digest")
	s.mustKiln("push", "--tls-verify=false", "--registries.d", s.registriesD, "--digestfile", digestFile, "--sign-by-sigstore-private-key", s.cosignKey, "--sign-passphrase-file", s.passFile, s.base, "docker://"+dest)
	dig := readFile(t, digestFile)
	for _, p := range signaturetest.CosignVerify(t, s.reg+"/cosign/app", dig, s.cosignPub) {
		if p.ClaimedIdentity != dest {
			t.Errorf("the signature names %q, want %q", p.ClaimedIdentity, dest)
		}
	}
	// A wrong passphrase: nothing is pushed.
	wrong := writeTemp(t, "wrong", "nope")
	if _, errOut, code := s.kiln("push", "--tls-verify=false", "--sign-by-sigstore-private-key", s.cosignKey, "--sign-passphrase-file", wrong, s.base, "docker://"+s.reg+"/never/app:1"); code != 125 || !strings.Contains(errOut, "passphrase") {
		t.Errorf("wrong passphrase: exit %d, %q", code, errOut)
	}
	if o, err := s.skopeo("", "inspect", "--tls-verify=false", "docker://"+s.reg+"/never/app:1"); err == nil {
		t.Errorf("a push with a wrong passphrase wrote the image:\n%s", o)
	}
	// The other implementation signs (naming the repository, as cosign
	// does), kiln verifies.
	other := s.reg + "/cosign-other/app:1"
	if o, err := s.skopeo("", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+s.base, "docker://"+other); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, o)
	}
	otherDigest, err := s.skopeo("", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+other)
	must(t, err)
	signaturetest.CosignSign(t, s.reg+"/cosign-other/app", strings.TrimSpace(otherDigest), s.cosignKey, "pass phrase")
	before := s.state()
	_, otherKey := signaturetest.CosignKeyPair(t, s.dir, "other", "x")
	repo := `,"signedIdentity":{"type":"matchRepository"}}`
	otherPolicy := s.policy("cosign-other", s.reg+"/cosign-other", `{"type":"sigstoreSigned","keyPath":"`+otherKey+`"`+repo)
	if _, errOut, code := s.kiln("pull", "-q", "--tls-verify=false", "--registries.d", s.registriesD, "--signature-policy", otherPolicy, other); code != 125 || !strings.Contains(errOut, "rejected") {
		t.Errorf("pull with another cosign key trusted: exit %d %s", code, errOut)
	}
	// from and build FROM go through the same check.
	if _, errOut, code := s.kiln("from", "--pull=always", "--tls-verify=false", "--registries.d", s.registriesD, "--signature-policy", otherPolicy, other); code != 125 || !strings.Contains(errOut, "rejected") {
		t.Errorf("from with an untrusted signature: exit %d %s", code, errOut)
	}
	ctx := t.TempDir()
	must(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM "+other+"\n"), 0o644))
	if _, errOut, code := s.kiln("build", "--pull=always", "--tls-verify=false", "--registries.d", s.registriesD, "--signature-policy", otherPolicy, ctx); code != 125 || !strings.Contains(errOut, "rejected") {
		t.Errorf("build FROM with an untrusted signature: exit %d %s", code, errOut)
	}
	if after := s.state(); after != before {
		t.Errorf("refused pulls changed the store:\n%s\nto\n%s", before, after)
	}
	// The default identity rule wants the tag the cosign payload lacks.
	exact := s.policy("cosign-exact", s.reg+"/cosign-other", `{"type":"sigstoreSigned","keyPath":"`+s.cosignPub+`"}`)
	if _, _, code := s.kiln("pull", "-q", "--tls-verify=false", "--registries.d", s.registriesD, "--signature-policy", exact, other); code != 125 {
		t.Errorf("pull of a repository-signed image under matchRepoDigestOrExact: exit %d", code)
	}
	keyData := base64.StdEncoding.EncodeToString([]byte(readFile(t, s.cosignPub)))
	good := s.policy("cosign-good", s.reg+"/cosign-other", `{"type":"sigstoreSigned","keyData":"`+keyData+`"`+repo)
	s.mustKiln("pull", "-q", "--tls-verify=false", "--registries.d", s.registriesD, "--signature-policy", good, other)
}

// TestImageTrust: trust set writes what trust show shows and what a
// pull then applies: a key rotation, trusting both keys, then the new.
func TestImageTrust(t *testing.T) {
	s := newSignEnv(t)
	dest := s.reg + "/rotate/app:1"
	if o, err := s.skopeo("", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--sign-by", s.skoKey, "--sign-passphrase-file", s.passFile, "docker://"+s.base, "docker://"+dest); err != nil {
		t.Fatalf("skopeo copy --sign-by: %v\n%s", err, o)
	}
	p := filepath.Join(s.dir, "trust.json")
	s.mustKiln("image", "trust", "set", "--policypath", p, "-t", "reject", "default")
	s.mustKiln("image", "trust", "set", "--policypath", p, "-f", s.skoPub, "-f", s.kilnPub, s.reg+"/rotate")
	show := s.mustKiln("image", "trust", "show", "--policypath", p)
	if !strings.Contains(show, "default") || !strings.Contains(show, "reject") || !strings.Contains(show, s.reg+"/rotate") || !strings.Contains(show, "Skopeo Signer") {
		t.Errorf("trust show:\n%s", show)
	}
	pull := func() int {
		_, _, code := s.kiln("pull", "-q", "--tls-verify=false", "--registries.d", s.registriesD, "--signature-policy", p, dest)
		return code
	}
	if code := pull(); code != 0 {
		t.Errorf("pull during the changeover (both keys trusted): exit %d", code)
	}
	s.mustKiln("rmi", "-a", "-f")
	s.mustKiln("image", "trust", "set", "--policypath", p, "-f", s.kilnPub, s.reg+"/rotate")
	if code := pull(); code != 125 {
		t.Errorf("pull after the old key was dropped: exit %d, want 125", code)
	}
	// skopeo reads the policy kiln wrote the same way.
	if o, err := s.skopeo(p, "copy", "--src-tls-verify=false", "docker://"+dest, "dir:"+filepath.Join(t.TempDir(), "x")); err == nil {
		t.Errorf("skopeo accepted under the written policy:\n%s", o)
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	must(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}
