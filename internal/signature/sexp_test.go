package signature

import (
	"bytes"
	"testing"
)

// TestSexpQuoted: quoted strings in gpg-agent's extended key files carry
// the bytes libgcrypt could not print as escapes (\xHH, \ooo, \n, ...),
// and may be folded with a backslash before the line end. Reading them
// wrong broke about one passphrase-protected key in forty (a salt or OCB
// nonce written as a quoted string failed with "malformed OCB nonce" or
// "wrong passphrase").
func TestSexpQuoted(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []byte
	}{
		{`"plain"`, []byte("plain")},
		{`"a\x41\101\n\t\r\b\f\v\"\\z"`, []byte("aAA\n\t\r\b\f\v\"\\z")},
		{"\"fol\\\nded\"", []byte("folded")},
		{"\"crlf\\\r\nfold\"", []byte("crlffold")},
		{`"\000\377\xff"`, []byte{0, 0xff, 0xff}},
	} {
		n, err := parseSexp([]byte(tt.in))
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if !bytes.Equal(n.Atom, tt.want) {
			t.Errorf("%q: %q, want %q", tt.in, n.Atom, tt.want)
		}
	}
	for _, bad := range []string{`"\x4"`, `"\xzz"`, `"\12"`, `"\189"`, `"open`} {
		if _, err := parseSexp([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
