package store

import (
	"errors"
	"testing"
)

// TestUpdateContainerNameInUse: only SQLite's unique-constraint error is
// ErrNameInUse, not any error whose text says UNIQUE.
func TestUpdateContainerNameInUse(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, t.TempDir())
	a, err := s.CreateContainer(ctx, "a", "", "", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateContainer(ctx, "b", "", "", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		q         string
		args      []any
		wantInUse bool
	}{
		{"name of another container", `UPDATE containers SET name=? WHERE id=?`, []any{a.Name, b.ID}, true},
		{"syntax error near UNIQUE", `UPDATE containers SET UNIQUE=? WHERE id=?`, []any{"x", b.ID}, false},
		{"free name", `UPDATE containers SET name=? WHERE id=?`, []any{"c", b.ID}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.updateContainer(ctx, b.ID, tt.q, tt.args...)
			if got := errors.Is(err, ErrNameInUse); got != tt.wantInUse {
				t.Errorf("updateContainer = %v; ErrNameInUse %v, want %v", err, got, tt.wantInUse)
			}
		})
	}
}
