package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"modernc.org/sqlite"

	"github.com/kiln-build/kiln/internal/store"
)

// usageErrorf reports bad input from the command line; it exits 125 like
// every other error, and exists so that call sites read as what they are.
func usageErrorf(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// errorTrail reports the errors of a verb that goes on past them as
// Buildah's verbs do: each error but the last is printed to w as it
// comes, plainly; the last is the verb's error (printed as "Error: ...").
type errorTrail struct {
	w    io.Writer
	last error
}

func (t *errorTrail) add(err error) {
	if t.last != nil {
		fmt.Fprintln(t.w, t.last)
	}
	t.last = err
}

func (t *errorTrail) err() error { return t.last }

// notKnown is err reduced to the store's "not known" sentinel when it is
// one, so that a caller naming the container or image in its own words
// names it once, as Buildah does: `removing container "x": container not
// known`. Other errors are returned as they are.
func notKnown(err error) error {
	for _, s := range []error{store.ErrContainerUnknown, store.ErrImageUnknown} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

// errorList is several errors in the form Buildah prints them
// (hashicorp's multierror): "2 errors occurred:" then one "\t* " line
// each.
type errorList []error

func (l errorList) Error() string {
	if len(l) == 1 {
		return fmt.Sprintf("1 error occurred:\n\t* %v\n\n", l[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d errors occurred:\n", len(l))
	for _, e := range l {
		fmt.Fprintf(&b, "\t* %v\n", e)
	}
	b.WriteString("\n")
	return b.String()
}

func (l errorList) Unwrap() []error { return l }

// sqliteFull is SQLite's SQLITE_FULL, "database or disk is full".
const sqliteFull = 13

// fullDisk says a filesystem that filled up in Buildah's words, which
// scripts match: an error that means it (SQLite's "database or disk is
// full", when the store's database could not even be opened or grew no
// more) but does not say "no space left on device" gets it in front.
// Other errors, and kiln's own refusal below min_free_space, are returned
// as they are.
func fullDisk(err error) error {
	var sqlErr *sqlite.Error
	if errors.As(err, &sqlErr) && sqlErr.Code()&0xff == sqliteFull && !errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: %w", syscall.ENOSPC, err)
	}
	return err
}
