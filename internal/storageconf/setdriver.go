package storageconf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// writeFileAtomic writes data to path through a fsynced temp file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

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
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
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
	return writeFileAtomic(path, out.Bytes())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
