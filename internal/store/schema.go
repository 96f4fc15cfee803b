package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
)

// The store's schema has a number. Each migration brings a store from the
// version before it to its own, and all the migrations a store needs run
// in one transaction when it is opened, so a store is either wholly at
// the old version or wholly at the new one. A store whose version is
// newer than this binary knows is refused and left untouched.
//
// Stores of kiln's first releases recorded a hash of their statements
// under the key "schema" instead of a number: they are version 1.

// ErrStoreTooNew reports a store written by a newer kiln.
var ErrStoreTooNew = errors.New("store was written by a newer kiln")

// migration is one step of the schema.
type migration struct {
	version int
	what    string
	stmts   string
}

// migrations are every schema step, in order; never change one that was
// released: add another.
var migrations = []migration{
	{1, "the tables of kiln's first releases", schemaV1},
	{2, "layers that exist as blobs: whether their files exist, who is making them, the blob they came as; holds on layers no image names yet; registry repositories that hold each blob; blobs written or let go by work in progress",
		`ALTER TABLE layers ADD COLUMN files TEXT NOT NULL DEFAULT 'yes';
		ALTER TABLE layers ADD COLUMN files_owner TEXT NOT NULL DEFAULT '';
		ALTER TABLE layers ADD COLUMN blob_digest TEXT NOT NULL DEFAULT '';
		ALTER TABLE layers ADD COLUMN blob_media_type TEXT NOT NULL DEFAULT '';
		ALTER TABLE layers ADD COLUMN blob_size INTEGER NOT NULL DEFAULT 0;
		UPDATE layers SET
			blob_digest = COALESCE((SELECT digest FROM layer_blobs b WHERE b.layer_id = layers.id ORDER BY digest LIMIT 1), ''),
			blob_media_type = COALESCE((SELECT media_type FROM layer_blobs b WHERE b.layer_id = layers.id ORDER BY digest LIMIT 1), ''),
			blob_size = COALESCE((SELECT size FROM layer_blobs b WHERE b.layer_id = layers.id ORDER BY digest LIMIT 1), 0);
		CREATE INDEX IF NOT EXISTS layer_blobs_digest ON layer_blobs(digest);
		CREATE TABLE IF NOT EXISTS layer_holds (
			layer_id TEXT NOT NULL,
			owner TEXT NOT NULL,
			PRIMARY KEY (layer_id, owner)
		);
		CREATE TABLE IF NOT EXISTS blob_pending (
			digest TEXT NOT NULL,
			owner TEXT NOT NULL,
			PRIMARY KEY (digest, owner)
		);
		CREATE TABLE IF NOT EXISTS blob_repositories (
			digest TEXT NOT NULL,
			repository TEXT NOT NULL,
			PRIMARY KEY (digest, repository)
		);`},
	// Stores made while version 2 was being written may lack these.
	{3, "tables version 2 gained before it was finished", `
		CREATE TABLE IF NOT EXISTS layer_holds (layer_id TEXT NOT NULL, owner TEXT NOT NULL, PRIMARY KEY (layer_id, owner));
		CREATE TABLE IF NOT EXISTS blob_pending (digest TEXT NOT NULL, owner TEXT NOT NULL, PRIMARY KEY (digest, owner));
		CREATE TABLE IF NOT EXISTS blob_repositories (digest TEXT NOT NULL, repository TEXT NOT NULL, PRIMARY KEY (digest, repository));`},
	{4, "signatures of manifests, and the artifacts that refer to them (provenance, SBOMs), kept by the manifest's digest", `
		CREATE TABLE IF NOT EXISTS signatures (manifest_digest TEXT NOT NULL, position INTEGER NOT NULL, content BLOB NOT NULL, PRIMARY KEY (manifest_digest, position));
		CREATE TABLE IF NOT EXISTS referrers (subject TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, artifact_type TEXT NOT NULL, manifest BLOB NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (subject, digest));
		CREATE TABLE IF NOT EXISTS referrer_blobs (referrer TEXT NOT NULL, digest TEXT NOT NULL, content BLOB NOT NULL, PRIMARY KEY (referrer, digest));`},
	{5, "a build context's remembered file digests are one record (a row per file took a tenth of a second to load or save for 20,000 files); the old rows are dropped, the digests are taken again once", `
		CREATE TABLE IF NOT EXISTS context_file_hashes (dir TEXT PRIMARY KEY, data BLOB NOT NULL);
		DROP TABLE IF EXISTS file_hashes;`},
	{6, "holds on images a live process made and has yet to name or cache (a build's step images), which prune leaves alone", `
		CREATE TABLE IF NOT EXISTS image_holds (image_id TEXT NOT NULL, owner TEXT NOT NULL, PRIMARY KEY (image_id, owner));`},
}

// schemaVersion is the version this binary writes.
func schemaVersion() int { return migrations[len(migrations)-1].version }

// storedVersion reads the store's schema version: 0 for an empty
// database, 1 for a store of the first releases.
func storedVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='settings'`).Scan(&n)
	if err != nil || n == 0 {
		return 0, err
	}
	var v string
	err = q.QueryRowContext(ctx, `SELECT value FROM settings WHERE key='schema_version'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		// The first releases kept a hash under "schema".
		err = q.QueryRowContext(ctx, `SELECT value FROM settings WHERE key='schema'`).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return 1, err
	}
	if err != nil {
		return 0, err
	}
	n, err = strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("store schema version %q is not a number", v)
	}
	return n, nil
}

// migrate brings the database to this binary's schema in one
// transaction, or refuses a newer one without writing anything.
func (db *database) migrate(ctx context.Context, path string) error {
	v, err := storedVersion(ctx, db.sql)
	if err != nil {
		return fmt.Errorf("reading store schema version: %w", err)
	}
	if v == schemaVersion() {
		return nil // nothing to write: opening must not wait for a frozen store
	}
	if v > schemaVersion() {
		return fmt.Errorf("%w: %s has schema version %d, this kiln knows versions up to %d; use a kiln at least as new as the one that wrote it", ErrStoreTooNew, path, v, schemaVersion())
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		// Another process may have migrated meanwhile.
		v, err := storedVersion(ctx, tx)
		if err != nil {
			return err
		}
		if v > schemaVersion() {
			return fmt.Errorf("%w: %s has schema version %d", ErrStoreTooNew, path, v)
		}
		for _, m := range migrations {
			if m.version <= v {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.stmts); err != nil {
				return fmt.Errorf("migrating store schema to version %d (%s): %w", m.version, m.what, err)
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO settings(key, value) VALUES('schema_version', ?)`, strconv.Itoa(schemaVersion()))
		return err
	})
}

// schemaV1 is the schema of kiln's first releases, every table at once.
const schemaV1 = `
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
	id TEXT PRIMARY KEY,
	parent TEXT NOT NULL DEFAULT '',
	diff_id TEXT NOT NULL,
	size INTEGER NOT NULL DEFAULT 0,
	state TEXT NOT NULL,
	owner TEXT NOT NULL DEFAULT '',
	promote_from TEXT NOT NULL DEFAULT '',
	mtime_bound INTEGER,
	created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS layers_parent ON layers(parent);
CREATE TABLE IF NOT EXISTS layer_blobs (
	layer_id TEXT NOT NULL,
	digest TEXT NOT NULL,
	media_type TEXT NOT NULL,
	size INTEGER NOT NULL,
	PRIMARY KEY (layer_id, digest)
);
CREATE TABLE IF NOT EXISTS images (
	id TEXT PRIMARY KEY,
	top_layer TEXT NOT NULL DEFAULT '',
	manifest_digest TEXT NOT NULL,
	manifest_type TEXT NOT NULL,
	created INTEGER NOT NULL,
	size INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS images_top ON images(top_layer);
CREATE TABLE IF NOT EXISTS names (
	name TEXT PRIMARY KEY,
	image_id TEXT NOT NULL,
	added INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS names_image ON names(image_id);
CREATE TABLE IF NOT EXISTS containers (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	image_id TEXT NOT NULL DEFAULT '',
	layer TEXT NOT NULL DEFAULT '',
	state TEXT NOT NULL,
	owner TEXT NOT NULL DEFAULT '',
	mount_count INTEGER NOT NULL DEFAULT 0,
	promoting TEXT NOT NULL DEFAULT '',
	created INTEGER NOT NULL,
	data BLOB
);
CREATE TABLE IF NOT EXISTS build_cache (
	key TEXT PRIMARY KEY,
	image_id TEXT NOT NULL,
	created INTEGER NOT NULL,
	last_used INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache(image_id);
CREATE TABLE IF NOT EXISTS file_hashes (
	path TEXT PRIMARY KEY,
	size INTEGER NOT NULL,
	mtime INTEGER NOT NULL,
	ctime INTEGER NOT NULL,
	ino INTEGER NOT NULL,
	sum TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS manifest_lists (
	name TEXT PRIMARY KEY,
	media_type TEXT NOT NULL,
	content BLOB NOT NULL,
	created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS manifest_list_instances (
	list TEXT NOT NULL,
	digest TEXT NOT NULL,
	source TEXT NOT NULL,
	PRIMARY KEY (list, digest)
);
CREATE TABLE IF NOT EXISTS temp_containers (
	id TEXT PRIMARY KEY,
	owner TEXT NOT NULL
);
`
