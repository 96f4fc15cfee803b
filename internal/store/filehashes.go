package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// The file hash cache remembers the content digest of build-context
// files by path and stat data, so that a rebuild reads only what changed.
// A context directory's digests are one row (table context_file_hashes,
// schema version 5): a build loads and saves them whole, which for a
// context of 20,000 files costs a few milliseconds where a row per file
// cost a tenth of a second each way.

// FileHash is a file's content digest and the stat data it was taken at.
type FileHash struct {
	Size, MTime, CTime int64
	Ino                uint64
	Sum                string
}

// FileHashes returns the remembered hashes of the files under dir (an
// absolute, clean path), by host path.
func (s *Store) FileHashes(ctx context.Context, dir string) (map[string]FileHash, error) {
	var data []byte
	err := s.db.sql.QueryRowContext(ctx, `SELECT data FROM context_file_hashes WHERE dir=?`, dir).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return map[string]FileHash{}, nil
	}
	if err != nil {
		return nil, err
	}
	out, err := decodeFileHashes(dir, data)
	if err != nil {
		// A damaged record costs only the digests: they are taken again.
		s.log.Warn("remembered file digests are damaged; reading the files again", "dir", dir, "error", err)
		return map[string]FileHash{}, nil
	}
	return out, nil
}

// PutFileHashes remembers the hashes of the files under dir (by host
// path), replacing older ones of the same paths and keeping the others.
// Paths not under dir are not remembered: a build loads only its
// context's.
func (s *Store) PutFileHashes(ctx context.Context, dir string, hashes map[string]FileHash) error {
	prefix := dir + "/"
	fresh := 0
	for p := range hashes {
		if strings.HasPrefix(p, prefix) {
			fresh++
		}
	}
	if fresh == 0 {
		return nil
	}
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		var data []byte
		err := tx.QueryRowContext(ctx, `SELECT data FROM context_file_hashes WHERE dir=?`, dir).Scan(&data)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		all, err := decodeFileHashes(dir, data)
		if err != nil {
			all = map[string]FileHash{} // damaged: start again
		}
		for p, h := range hashes {
			if strings.HasPrefix(p, prefix) {
				all[p] = h
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO context_file_hashes(dir, data) VALUES(?,?)`, dir, encodeFileHashes(dir, all))
		return err
	})
}

// fileHashesFormat is the first byte of an encoded record.
const fileHashesFormat = 1

// encodeFileHashes packs the hashes of files under dir: the format byte,
// then for each file in path order the length of the prefix it shares
// with the path before it, the rest of its path (relative to dir), size,
// mtime, ctime, inode and digest, as varints and length-prefixed bytes.
func encodeFileHashes(dir string, hashes map[string]FileHash) []byte {
	prefix := dir + "/"
	rels := make([]string, 0, len(hashes))
	for p := range hashes {
		if rel, ok := strings.CutPrefix(p, prefix); ok && rel != "" {
			rels = append(rels, rel)
		}
	}
	sort.Strings(rels)
	buf := make([]byte, 0, 1+len(rels)*96)
	buf = append(buf, fileHashesFormat)
	prev := ""
	for _, rel := range rels {
		h := hashes[prefix+rel]
		shared := 0
		for shared < len(prev) && shared < len(rel) && prev[shared] == rel[shared] {
			shared++
		}
		buf = binary.AppendUvarint(buf, uint64(shared))
		buf = binary.AppendUvarint(buf, uint64(len(rel)-shared))
		buf = append(buf, rel[shared:]...)
		buf = binary.AppendVarint(buf, h.Size)
		buf = binary.AppendVarint(buf, h.MTime)
		buf = binary.AppendVarint(buf, h.CTime)
		buf = binary.AppendUvarint(buf, h.Ino)
		buf = binary.AppendUvarint(buf, uint64(len(h.Sum)))
		buf = append(buf, h.Sum...)
		prev = rel
	}
	return buf
}

// errFileHashes: a record that does not decode.
var errFileHashes = errors.New("malformed file digest record")

// decodeFileHashes unpacks what encodeFileHashes packed (nothing for an
// empty record).
func decodeFileHashes(dir string, data []byte) (map[string]FileHash, error) {
	out := map[string]FileHash{}
	if len(data) == 0 {
		return out, nil
	}
	if data[0] != fileHashesFormat {
		return nil, fmt.Errorf("%w: format %d", errFileHashes, data[0])
	}
	r, bad := data[1:], false
	uv := func() uint64 {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			bad, r = true, nil
			return 0
		}
		r = r[n:]
		return v
	}
	sv := func() int64 {
		v, n := binary.Varint(r)
		if n <= 0 {
			bad, r = true, nil
			return 0
		}
		r = r[n:]
		return v
	}
	bytesOf := func(n uint64) string {
		if n > uint64(len(r)) {
			bad, r = true, nil
			return ""
		}
		b := string(r[:n])
		r = r[n:]
		return b
	}
	prefix := dir + "/"
	prev := ""
	for len(r) > 0 {
		shared := uv()
		rest := bytesOf(uv())
		if bad || shared > uint64(len(prev)) {
			return nil, errFileHashes
		}
		rel := prev[:shared] + rest
		if rel == "" {
			return nil, errFileHashes
		}
		h := FileHash{Size: sv(), MTime: sv(), CTime: sv(), Ino: uv()}
		h.Sum = bytesOf(uv())
		if bad {
			return nil, errFileHashes
		}
		out[prefix+rel] = h
		prev = rel
	}
	return out, nil
}
