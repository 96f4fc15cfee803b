package storageconf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"

	"github.com/kiln-build/kiln/internal/digestio"
)

var (
	tableLine  = regexp.MustCompile(`^\s*\[\s*([A-Za-z0-9_."-]+)\s*\]`)
	driverLine = regexp.MustCompile(`^\s*driver\s*=`)
)

// SetConfigDriver sets the [storage] table's driver key in storage.conf
// at path, keeping every other line (comments too). A missing file is
// left missing: the store records its own driver.
func SetConfigDriver(path, name string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	line := fmt.Sprintf("driver = %q\n", name)
	table, done := "", false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		text := sc.Text()
		if t := tableLine.FindStringSubmatch(text); t != nil {
			if table == "storage" && !done {
				out.WriteString(line)
				done = true
			}
			table = t[1]
			out.WriteString(text + "\n")
			continue
		}
		if table == "storage" && driverLine.MatchString(text) {
			if !done {
				out.WriteString(line)
				done = true
			}
			continue
		}
		out.WriteString(text + "\n")
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if !done {
		if table != "storage" {
			out.WriteString("\n[storage]\n")
		}
		out.WriteString(line)
	}
	if bytes.Equal(out.Bytes(), b) {
		return nil
	}
	return digestio.WriteFileAtomic(path, out.Bytes(), fi.Mode().Perm())
}
