package idmap

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSubIDs(t *testing.T) {
	const file = `# comment
alice:100000:65536
bob:165536:65536

1001:231072:1000
alice:300000:10
`
	tests := []struct {
		name    string
		user    string
		id      uint32
		want    []Range
		wantErr string
	}{
		{"by name, every line in order", "alice", 1000, []Range{{100000, 65536}, {300000, 10}}, ""},
		{"by number", "carol", 1001, []Range{{231072, 1000}}, ""},
		{"by name or number", "bob", 1001, []Range{{165536, 65536}, {231072, 1000}}, ""},
		{"no entry", "dave", 1002, nil, ""},
		{"unnamed user by number", "", 1001, []Range{{231072, 1000}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSubIDs(strings.NewReader(file), tt.user, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ranges (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"alice:1:2:3\n", "alice:x:10\n", "alice:10:0\n", "alice:4294967295:2\n"} {
		if _, err := ParseSubIDs(strings.NewReader(bad), "alice", 1000); err == nil {
			t.Errorf("ParseSubIDs(%q) = nil error, want one", bad)
		}
	}
}

func TestForUser(t *testing.T) {
	tests := []struct {
		name   string
		ranges []Range
		want   Mappings
	}{
		{"no ranges: the user alone", nil, Mappings{{0, 1000, 1}}},
		{"one range after the user", []Range{{100000, 65536}}, Mappings{{0, 1000, 1}, {1, 100000, 65536}}},
		{"ranges one after the other", []Range{{100000, 10}, {200000, 5}}, Mappings{{0, 1000, 1}, {1, 100000, 10}, {11, 200000, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ForUser(1000, tt.ranges)); diff != "" {
				t.Errorf("mapping (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMappings(t *testing.T) {
	m := Mappings{{0, 1000, 1}, {1, 100000, 65536}}
	tests := []struct {
		id       uint32
		host     uint32
		ok       bool
		contains bool
	}{
		{0, 1000, true, true},
		{1, 100000, true, true},
		{1000, 100999, true, true},
		{65536, 165535, true, true},
		{65537, 0, false, false},
	}
	for _, tt := range tests {
		host, ok := m.ToHost(tt.id)
		if host != tt.host || ok != tt.ok || m.Contains(tt.id) != tt.contains {
			t.Errorf("ToHost(%d) = %d, %v; want %d, %v", tt.id, host, ok, tt.host, tt.ok)
		}
		if ok {
			if back, _ := m.ToContainer(host); back != tt.id {
				t.Errorf("ToContainer(%d) = %d, want %d", host, back, tt.id)
			}
		}
	}
	if got, want := m.String(), "0:1000:1,1:100000:65536"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := m.Describe(), "0 (host 1000), 1-65536 (host 100000-165535)"; got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	if got, want := m.Size(), uint64(65537); got != want {
		t.Errorf("Size() = %d, want %d", got, want)
	}
	if m.Identity() || !(Mappings{{0, 0, 4294967295}}).Identity() {
		t.Error("Identity is wrong")
	}
}

func TestParseMappings(t *testing.T) {
	got, err := ParseMappings(strings.NewReader("         0       1000          1\n         1     100000      65536\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Mappings{{0, 1000, 1}, {1, 100000, 65536}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := ParseMappings(strings.NewReader("0 1000\n")); err == nil {
		t.Error("a short line parsed")
	}
	flag, err := ParseMappingFlag("0:1000:1,1:100000:65536")
	if err != nil || flag.String() != "0:1000:1,1:100000:65536" {
		t.Errorf("ParseMappingFlag = %v, %v", flag, err)
	}
	for _, bad := range []string{"0:1000", "0:1000:0", "a:b:c"} {
		if _, err := ParseMappingFlag(bad); err == nil {
			t.Errorf("ParseMappingFlag(%q) parsed", bad)
		}
	}
}

// TestCheckOwnerInitialNamespace: outside a user namespace every ID is
// mapped; inside one (the rootless tests in cmd/kiln) CheckOwner names
// the ID and the range.
func TestCheckOwnerInitialNamespace(t *testing.T) {
	if InUserNamespace() {
		t.Skip("runs in a user namespace")
	}
	if err := CheckOwner("f", 70000, 70000); err != nil {
		t.Errorf("CheckOwner in the initial namespace = %v", err)
	}
}

func TestPlanFor(t *testing.T) {
	dir := t.TempDir()
	sub := dir + "/subuid"
	writeFile(t, sub, "4242:100000:65536\n")
	p, err := PlanFor(4242, 4343, sub, dir+"/missing")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Mappings{{0, 4242, 1}, {1, 100000, 65536}}, p.UIDs); diff != "" {
		t.Errorf("uids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Mappings{{0, 4343, 1}}, p.GIDs); diff != "" {
		t.Errorf("gids (-want +got):\n%s", diff)
	}
	if !strings.Contains(p.Note, "no subordinate IDs in "+dir+"/missing") {
		t.Errorf("note %q does not name the file without ranges", p.Note)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
