package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/image"
)

// Manifest lists are kept apart from images: a list is a name, its index
// document (an OCI index or a Docker manifest list) and, for each
// instance, where that instance can be read when the list is pushed.
// This file owns the two tables (their schema is in schema.go).

// Sentinel errors of manifest lists.
var (
	// ErrManifestListUnknown reports a name no manifest list has.
	ErrManifestListUnknown = errors.New("manifest list not known")
	// ErrManifestListExists reports a manifest list created twice.
	ErrManifestListExists = errors.New("manifest list already exists")
)

// ManifestList is a stored manifest list.
type ManifestList struct {
	// Name is the full name ("localhost/list:latest").
	Name string
	// Index is the raw index; MediaType its media type.
	Index     []byte
	MediaType string
	// Instances maps the digest of each instance to where it is read
	// from on push: a reference the caller chose (a transport reference or
	// a local image ID). Instances without an entry must already be at the
	// destination.
	Instances map[digest.Digest]string
	Created   time.Time
}

func (ml ManifestList) check() error {
	if int64(len(ml.Index)) > image.MaxDocumentSize {
		return fmt.Errorf("manifest list %s: index of %d bytes is too large", ml.Name, len(ml.Index))
	}
	for d := range ml.Instances {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("manifest list %s: instance %q: %w", ml.Name, d, err)
		}
	}
	return nil
}

// CreateManifestList records a new list. It fails with
// ErrManifestListExists when a list has the name, and ErrNameInUse when an
// image has it.
func (s *Store) CreateManifestList(ctx context.Context, ml ManifestList) error {
	if err := ml.check(); err != nil {
		return err
	}
	if ml.Created.IsZero() {
		ml.Created = time.Now()
	}
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM manifest_lists WHERE name=?`, ml.Name).Scan(&one)
		if err == nil {
			return fmt.Errorf("%w: %s", ErrManifestListExists, ml.Name)
		}
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM names WHERE name=?`, ml.Name).Scan(&one); err == nil {
			return fmt.Errorf("creating manifest list %s: %w by an image", ml.Name, ErrNameInUse)
		}
		return writeManifestList(ctx, tx, ml)
	})
}

func writeManifestList(ctx context.Context, tx *sql.Tx, ml ManifestList) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO manifest_lists(name, media_type, content, created) VALUES(?,?,?,?)
		ON CONFLICT(name) DO UPDATE SET media_type=excluded.media_type, content=excluded.content`,
		ml.Name, ml.MediaType, ml.Index, ml.Created.UnixNano())
	if err != nil {
		return fmt.Errorf("recording manifest list %s: %w", ml.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM manifest_list_instances WHERE list=?`, ml.Name); err != nil {
		return err
	}
	for d, src := range ml.Instances {
		if _, err := tx.ExecContext(ctx, `INSERT INTO manifest_list_instances(list, digest, source) VALUES(?,?,?)`, ml.Name, d.String(), src); err != nil {
			return fmt.Errorf("recording manifest list %s: %w", ml.Name, err)
		}
	}
	return nil
}

// ManifestList returns the list ref names: a full name, or a short name
// tried as the local candidates LookupImage tries.
func (s *Store) ManifestList(ctx context.Context, ref string) (ManifestList, error) {
	tx, err := s.db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return ManifestList{}, err
	}
	defer tx.Rollback()
	return readManifestList(ctx, tx, ref)
}

func readManifestList(ctx context.Context, tx *sql.Tx, ref string) (ManifestList, error) {
	cands := []string{ref}
	if c, err := image.LocalCandidates(ref); err == nil {
		cands = append(c, ref)
	}
	var ml ManifestList
	var created int64
	found := false
	for _, c := range cands {
		err := tx.QueryRowContext(ctx, `SELECT name, media_type, content, created FROM manifest_lists WHERE name=?`, c).
			Scan(&ml.Name, &ml.MediaType, &ml.Index, &created)
		if err == nil {
			found = true
			break
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return ml, err
		}
	}
	if !found {
		return ml, fmt.Errorf("%w: %s", ErrManifestListUnknown, ref)
	}
	ml.Created = time.Unix(0, created)
	ml.Instances = map[digest.Digest]string{}
	rows, err := tx.QueryContext(ctx, `SELECT digest, source FROM manifest_list_instances WHERE list=?`, ml.Name)
	if err != nil {
		return ml, err
	}
	defer rows.Close()
	for rows.Next() {
		var d, src string
		if err := rows.Scan(&d, &src); err != nil {
			return ml, err
		}
		ml.Instances[digest.Digest(d)] = src
	}
	return ml, rows.Err()
}

// UpdateManifestList changes the list ref names in one transaction: fn
// gets the stored list and edits it in place; returning an error leaves
// the list as it was. fn must be quick and do no I/O: it holds the
// store's write lock. The name cannot change.
func (s *Store) UpdateManifestList(ctx context.Context, ref string, fn func(*ManifestList) error) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		ml, err := readManifestList(ctx, tx, ref)
		if err != nil {
			return err
		}
		name := ml.Name
		if err := fn(&ml); err != nil {
			return err
		}
		ml.Name = name
		if err := ml.check(); err != nil {
			return err
		}
		return writeManifestList(ctx, tx, ml)
	})
}

// DeleteManifestList removes the list ref names; the images it lists stay.
func (s *Store) DeleteManifestList(ctx context.Context, ref string) error {
	return s.db.tx(ctx, func(tx *sql.Tx) error {
		ml, err := readManifestList(ctx, tx, ref)
		if err != nil {
			return err
		}
		for _, q := range []string{`DELETE FROM manifest_list_instances WHERE list=?`, `DELETE FROM manifest_lists WHERE name=?`} {
			if _, err := tx.ExecContext(ctx, q, ml.Name); err != nil {
				return err
			}
		}
		return nil
	})
}

// ManifestListNames lists the names of every stored manifest list, sorted.
func (s *Store) ManifestListNames(ctx context.Context) ([]string, error) {
	return s.db.column(ctx, `SELECT name FROM manifest_lists`)
}
