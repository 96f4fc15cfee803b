package signature

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
)

// sexp is a node of an S-expression as libgcrypt and gpg-agent write
// them: an atom (Atom non-nil) or a list.
type sexp struct {
	Atom []byte
	List []*sexp
}

// isAtom reports whether n is an atom.
func (n *sexp) isAtom() bool { return n.Atom != nil }

// head returns the first atom of a list as a string ("" when none).
func (n *sexp) head() string {
	if n == nil || n.isAtom() || len(n.List) == 0 || !n.List[0].isAtom() {
		return ""
	}
	return string(n.List[0].Atom)
}

// find returns the first sub-list of n whose head is name.
func (n *sexp) find(name string) *sexp {
	if n == nil {
		return nil
	}
	for _, c := range n.List {
		if c.head() == name {
			return c
		}
	}
	return nil
}

// value returns the atom after the head of the sub-list name.
func (n *sexp) value(name string) []byte {
	l := n.find(name)
	if l == nil || len(l.List) < 2 || !l.List[1].isAtom() {
		return nil
	}
	return l.List[1].Atom
}

// canonical writes n in canonical form: "(" … ")" and "LEN:bytes".
func (n *sexp) canonical(b *bytes.Buffer) {
	if n.isAtom() {
		b.WriteString(strconv.Itoa(len(n.Atom)))
		b.WriteByte(':')
		b.Write(n.Atom)
		return
	}
	b.WriteByte('(')
	for _, c := range n.List {
		c.canonical(b)
	}
	b.WriteByte(')')
}

// parseSexp parses one S-expression in canonical or advanced form:
// tokens, "LEN:bytes", #hex#, "quoted strings" and |base64|.
func parseSexp(data []byte) (*sexp, error) {
	p := &sexpParser{s: data}
	p.space()
	n, err := p.node()
	if err != nil {
		return nil, fmt.Errorf("parsing S-expression at byte %d: %w", p.i, err)
	}
	return n, nil
}

type sexpParser struct {
	s []byte
	i int
}

func (p *sexpParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *sexpParser) node() (*sexp, error) {
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("unexpected end")
	}
	c := p.s[p.i]
	switch {
	case c == '(':
		p.i++
		n := &sexp{List: []*sexp{}}
		for {
			p.space()
			if p.i >= len(p.s) {
				return nil, fmt.Errorf("unclosed list")
			}
			if p.s[p.i] == ')' {
				p.i++
				return n, nil
			}
			c, err := p.node()
			if err != nil {
				return nil, err
			}
			n.List = append(n.List, c)
		}
	case c == '#':
		end := bytes.IndexByte(p.s[p.i+1:], '#')
		if end < 0 {
			return nil, fmt.Errorf("unclosed hex string")
		}
		h := bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\n' || r == '\t' || r == '\r' {
				return -1
			}
			return r
		}, p.s[p.i+1:p.i+1+end])
		p.i += end + 2
		v := make([]byte, hex.DecodedLen(len(h)))
		if _, err := hex.Decode(v, h); err != nil {
			return nil, err
		}
		return &sexp{Atom: v}, nil
	case c == '|':
		end := bytes.IndexByte(p.s[p.i+1:], '|')
		if end < 0 {
			return nil, fmt.Errorf("unclosed base64 string")
		}
		v, err := base64.StdEncoding.DecodeString(string(p.s[p.i+1 : p.i+1+end]))
		p.i += end + 2
		if err != nil {
			return nil, err
		}
		return &sexp{Atom: append([]byte{}, v...)}, nil
	case c == '"':
		return p.quoted()
	case c >= '0' && c <= '9':
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		if j < len(p.s) && p.s[j] == ':' {
			n, err := strconv.Atoi(string(p.s[p.i:j]))
			if err != nil || j+1+n > len(p.s) {
				return nil, fmt.Errorf("bad length prefix")
			}
			v := append([]byte{}, p.s[j+1:j+1+n]...)
			p.i = j + 1 + n
			return &sexp{Atom: v}, nil
		}
	}
	j := p.i
	for j < len(p.s) && !bytes.ContainsRune([]byte(" \t\r\n()#|\""), rune(p.s[j])) {
		j++
	}
	if j == p.i {
		return nil, fmt.Errorf("unexpected %q", p.s[p.i])
	}
	v := append([]byte{}, p.s[p.i:j]...)
	p.i = j
	return &sexp{Atom: v}, nil
}

func (p *sexpParser) quoted() (*sexp, error) {
	p.i++
	var v []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return &sexp{Atom: append([]byte{}, v...)}, nil
		case '\\':
			if p.i >= len(p.s) {
				return nil, fmt.Errorf("unfinished escape")
			}
			e := p.s[p.i]
			p.i++
			switch e {
			case 'n':
				v = append(v, '\n')
			case 't':
				v = append(v, '\t')
			case 'r':
				v = append(v, '\r')
			case 'b':
				v = append(v, '\b')
			case 'f':
				v = append(v, '\f')
			case 'v':
				v = append(v, '\v')
			case '\n', '\r':
				// A line continuation (\<LF>, \<CR>, \<CR><LF>, \<LF><CR>).
				if p.i < len(p.s) && (p.s[p.i] == '\n' || p.s[p.i] == '\r') && p.s[p.i] != e {
					p.i++
				}
			case 'x':
				// \xHH, as libgcrypt writes a byte it cannot print.
				if p.i+2 > len(p.s) {
					return nil, fmt.Errorf("unfinished \\x escape")
				}
				b, err := strconv.ParseUint(string(p.s[p.i:p.i+2]), 16, 8)
				if err != nil {
					return nil, fmt.Errorf("bad \\x escape %q", p.s[p.i:p.i+2])
				}
				v = append(v, byte(b))
				p.i += 2
			case '0', '1', '2', '3', '4', '5', '6', '7':
				// \ooo: three octal digits.
				if p.i+2 > len(p.s) {
					return nil, fmt.Errorf("unfinished octal escape")
				}
				b, err := strconv.ParseUint(string(p.s[p.i-1:p.i+2]), 8, 8)
				if err != nil {
					return nil, fmt.Errorf("bad octal escape %q", p.s[p.i-1:p.i+2])
				}
				v = append(v, byte(b))
				p.i += 2
			default:
				v = append(v, e)
			}
		default:
			v = append(v, c)
		}
	}
	return nil, fmt.Errorf("unclosed quoted string")
}
