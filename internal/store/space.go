package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"modernc.org/sqlite"
)

// sqliteFull is SQLITE_FULL, "database or disk is full".
const sqliteFull = 13

// ErrNoSpace: a write was refused because the store's filesystem is
// below its minimum free space, or it failed because the filesystem is
// full. The error is a *SpaceError that says how much is free and what
// pruning would give back.
var ErrNoSpace = errors.New("not enough free space for the store")

// Default minimum free space: the smaller of 5% of the filesystem and 2 GiB.
const (
	defaultMinFreePercent = 5
	defaultMinFreeCap     = 2 << 30
)

// SpaceError says why a write did not happen or did not finish.
type SpaceError struct {
	Root        string
	Free, Total int64 // bytes available to kiln and the filesystem's size
	Min, Need   int64 // configured minimum, and what the write needed (0: unknown)
	Reclaimable int64 // what `kiln prune` would give back (-1: unknown)
	Err         error // the write's own error when the filesystem filled up
}

func (e *SpaceError) Error() string {
	var b strings.Builder
	if e.Err != nil {
		fmt.Fprintf(&b, "the filesystem of store %s is full (%v): %s free of %s", e.Root, e.Err, HumanBytes(e.Free), HumanBytes(e.Total))
	} else {
		fmt.Fprintf(&b, "store %s has %s free of %s", e.Root, HumanBytes(e.Free), HumanBytes(e.Total))
		if e.Need > 0 {
			fmt.Fprintf(&b, " and this write needs about %s", HumanBytes(e.Need))
		}
		if e.Min > 0 {
			fmt.Fprintf(&b, ", which would leave less than min_free_space %s (storage.conf)", HumanBytes(e.Min))
		}
		b.WriteString(": nothing was written")
	}
	if e.Reclaimable >= 0 {
		fmt.Fprintf(&b, "; `kiln prune` would reclaim about %s", HumanBytes(e.Reclaimable))
	}
	return b.String()
}

// Unwrap lets errors.Is find ErrNoSpace and the underlying error.
func (e *SpaceError) Unwrap() []error { return []error{ErrNoSpace, e.Err} }

// ParseMinFreeSpace reads a min_free_space value for a filesystem of total
// bytes: "" is the default, "0" turns the guard off, "N%" is a share of
// the filesystem, and sizes take B, K/KB/KiB, M…, G…, T… suffixes (all
// binary, as containers-storage reads sizes).
func ParseMinFreeSpace(v string, total int64) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return min(total*defaultMinFreePercent/100, defaultMinFreeCap), nil
	}
	if p, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || f > 100 {
			return 0, fmt.Errorf("min_free_space %q: want a percentage from 0%% to 100%%", v)
		}
		return int64(float64(total) * f / 100), nil
	}
	return ParseSize(v)
}

// ParseSize reads a byte count with an optional binary unit suffix
// ("512", "64M", "2GiB", "1.5g").
func ParseSize(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"tib", 1 << 40}, {"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10}, {"tb", 1 << 40}, {"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"t", 1 << 40}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit (K, M, G, T)", v)
	}
	return int64(f * float64(mult)), nil
}

// HumanBytes prints a byte count the way `kiln images` does (SI units).
func HumanBytes(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d %s", n, units[0])
	}
	return fmt.Sprintf("%.3g %s", f, units[i])
}

// FreeSpace reports the bytes available to kiln on the store's
// filesystem, its size, and the configured minimum.
func (s *Store) FreeSpace() (free, total, minFree int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.root, &st); err != nil {
		return 0, 0, 0, fmt.Errorf("measuring free space of %s: %w", s.root, err)
	}
	free, total = int64(st.Bavail)*st.Bsize, int64(st.Blocks)*st.Bsize
	minFree, err = ParseMinFreeSpace(s.minFreeSpace, total)
	return free, total, minFree, err
}

// EnsureSpace refuses, before anything is written, a write of about need
// bytes (0 when not known) that would leave the store's filesystem below
// min_free_space. It is a statfs: cheap enough for every write.
func (s *Store) EnsureSpace(ctx context.Context, need int64) error {
	free, total, minFree, err := s.FreeSpace()
	if err != nil {
		return err
	}
	if free-need >= minFree {
		return nil
	}
	return &SpaceError{Root: s.root, Free: free, Total: total, Min: minFree, Need: need, Reclaimable: s.reclaimableOrUnknown(ctx)}
}

// noSpace turns a write's error into a *SpaceError when the filesystem
// filled up (ENOSPC, EDQUOT, or SQLite's "database or disk is full"), and
// returns other errors as they are.
func (s *Store) noSpace(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, ErrNoSpace) {
		return err
	}
	var sqlErr *sqlite.Error
	full := errors.As(err, &sqlErr) && sqlErr.Code()&0xff == sqliteFull
	if !full && !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) {
		return err
	}
	free, total, minFree, _ := s.FreeSpace()
	return &SpaceError{Root: s.root, Free: free, Total: total, Min: minFree, Reclaimable: s.reclaimableOrUnknown(ctx), Err: err}
}

func (s *Store) reclaimableOrUnknown(ctx context.Context) int64 {
	r, err := s.Reclaimable(ctx)
	if err != nil {
		return -1
	}
	return r.Total()
}
