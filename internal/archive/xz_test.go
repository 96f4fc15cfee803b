package archive

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os/exec"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/kiln-build/kiln/internal/testenv"
)

// xzInput is data worth compressing: text with repeats and random runs.
func xzInput(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	r := make([]byte, 300)
	for buf.Len() < n {
		buf.WriteString("kiln applies layers; kiln applies layers again\n")
		if _, err := rand.Read(r); err != nil {
			t.Fatal(err)
		}
		buf.Write(r[:buf.Len()%300])
	}
	return buf.Bytes()[:n]
}

func xzWith(t testing.TB, cfg xz.WriterConfig, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := cfg.NewWriter(&buf)
	must(t, err)
	_, err = w.Write(data)
	must(t, err)
	must(t, w.Close())
	return buf.Bytes()
}

// xzTool compresses data with the xz program and its arguments.
func xzTool(t testing.TB, data []byte, args ...string) []byte {
	t.Helper()
	bin := testenv.NeedBinary(t, "xz")
	cmd := exec.Command(bin, append([]string{"-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	must(t, err)
	return out
}

func TestXzReader(t *testing.T) {
	data := xzInput(t, 256<<10)
	small := xzInput(t, 1000)
	tests := []struct {
		name       string
		compressed func(t testing.TB) []byte
		want       []byte
	}{
		{"empty", func(t testing.TB) []byte { return xzWith(t, xz.WriterConfig{}, nil) }, nil},
		{"crc64", func(t testing.TB) []byte { return xzWith(t, xz.WriterConfig{}, data) }, data},
		{"crc32, small blocks", func(t testing.TB) []byte {
			return xzWith(t, xz.WriterConfig{CheckSum: xz.CRC32, BlockSize: 50 << 10}, data)
		}, data},
		{"sha256", func(t testing.TB) []byte { return xzWith(t, xz.WriterConfig{CheckSum: xz.SHA256}, data) }, data},
		{"no check", func(t testing.TB) []byte { return xzWith(t, xz.WriterConfig{NoCheckSum: true}, small) }, small},
		{"two streams and padding", func(t testing.TB) []byte {
			a := xzWith(t, xz.WriterConfig{}, small)
			return append(append(a, make([]byte, 8)...), xzWith(t, xz.WriterConfig{CheckSum: xz.CRC32}, data)...)
		}, append(append([]byte{}, small...), data...)},
		{"xz tool, -9", func(t testing.TB) []byte { return xzTool(t, data, "-9") }, data},
		{"xz tool, threads and blocks", func(t testing.TB) []byte { return xzTool(t, data, "-T2", "--block-size=64KiB") }, data},
		{"xz tool, crc32", func(t testing.TB) []byte { return xzTool(t, small, "--check=crc32") }, small},
		{"xz tool, no check", func(t testing.TB) []byte { return xzTool(t, small, "--check=none") }, small},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, c, err := Decompress(bytes.NewReader(tc.compressed(t)))
			must(t, err)
			if c != Xz {
				t.Fatalf("detected %v, want xz", c)
			}
			got, err := io.ReadAll(rc)
			must(t, err)
			if !bytes.Equal(got, tc.want) {
				t.Errorf("decoded %d bytes, want %d equal to the input", len(got), len(tc.want))
			}
		})
	}
}

// withDict returns the xz stream with the dictionary size byte of its
// first block header set to bits (size (2|bits&1) << (bits/2+11)).
func withDict(t testing.TB, stream []byte, bits byte) []byte {
	t.Helper()
	s := bytes.Clone(stream)
	size := (int(s[12]) + 1) * 4
	hdr := s[12 : 12+size]
	i := bytes.Index(hdr, []byte{0x21, 0x01})
	if i < 0 {
		t.Fatal("no LZMA2 filter in the first block header")
	}
	hdr[i+2] = bits
	binary.LittleEndian.PutUint32(hdr[size-4:], crc32.ChecksumIEEE(hdr[:size-4]))
	return s
}

func TestXzReaderRefuses(t *testing.T) {
	data := xzInput(t, 100<<10)
	good := xzWith(t, xz.WriterConfig{CheckSum: xz.CRC32}, data)
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x55
		return b
	}
	tests := []struct {
		name    string
		stream  []byte
		wantErr error
	}{
		{"a 4 GiB dictionary", withDict(t, good, 40), ErrLayerRefused},
		{"a 96 MiB dictionary", withDict(t, good, 29), ErrLayerRefused},
		{"a 64 MiB dictionary", withDict(t, good, 28), nil},
		{"truncated", good[:len(good)/2], errAny},
		{"corrupt data", flip(good, len(good)/2), errAny},
		{"corrupt check", flip(good, len(good)-12-8-4), errAny},
		{"corrupt block header", flip(good, 13), errXzFormat},
		{"garbage after the stream", append(bytes.Clone(good), 1, 2, 3, 4), errXzFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, _, err := Decompress(bytes.NewReader(tc.stream))
			if err == nil {
				_, err = io.ReadAll(rc)
			}
			if (err == nil) != (tc.wantErr == nil) || tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
				t.Errorf("decoding: %v, want %v", err, tc.wantErr)
			}
		})
	}
}
