package attest

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Package databases an SBOM is read from, as paths in the image.
const (
	DpkgStatus   = "var/lib/dpkg/status"
	ApkInstalled = "lib/apk/db/installed"
)

// Package is one installed package.
type Package struct {
	// Type is the purl type: "deb" or "apk".
	Type                   string
	Name, Version, Arch    string
	License, Source, Distr string
}

// PURL is the package URL of p.
func (p Package) PURL() string {
	ns := p.Distr
	if ns == "" {
		ns = map[string]string{"deb": "debian", "apk": "alpine"}[p.Type]
	}
	s := fmt.Sprintf("pkg:%s/%s/%s@%s", p.Type, ns, p.Name, p.Version)
	if p.Arch != "" {
		s += "?arch=" + p.Arch
	}
	return s
}

// ParseDpkgStatus lists the installed packages of a dpkg status file.
func ParseDpkgStatus(data []byte) []Package {
	var out []Package
	for _, para := range paragraphs(data, ": ") {
		if !strings.HasSuffix(para["Status"], " installed") || para["Package"] == "" {
			continue
		}
		out = append(out, Package{Type: "deb", Name: para["Package"], Version: para["Version"], Arch: para["Architecture"], Source: para["Source"]})
	}
	return out
}

// ParseApkInstalled lists the packages of an apk installed database.
func ParseApkInstalled(data []byte) []Package {
	var out []Package
	for _, para := range paragraphs(data, ":") {
		if para["P"] == "" {
			continue
		}
		out = append(out, Package{Type: "apk", Name: para["P"], Version: para["V"], Arch: para["A"], License: para["L"], Source: para["o"]})
	}
	return out
}

// paragraphs splits "Key<sep>value" lines into blank-line separated
// records; continuation lines (starting with a space) are skipped.
func paragraphs(data []byte, sep string) []map[string]string {
	var out []map[string]string
	cur := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
			}
		case strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t"):
		default:
			if k, v, ok := strings.Cut(line, sep); ok {
				if _, dup := cur[k]; !dup {
					cur[k] = strings.TrimSpace(v)
				}
			}
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// spdx is the part of SPDX 2.3 kiln writes.
type (
	spdxDocument struct {
		SPDXVersion       string         `json:"spdxVersion"`
		DataLicense       string         `json:"dataLicense"`
		SPDXID            string         `json:"SPDXID"`
		Name              string         `json:"name"`
		DocumentNamespace string         `json:"documentNamespace"`
		CreationInfo      spdxCreation   `json:"creationInfo"`
		Packages          []spdxPackage  `json:"packages"`
		Relationships     []spdxRelation `json:"relationships,omitempty"`
	}
	spdxCreation struct {
		Created  string   `json:"created"`
		Creators []string `json:"creators"`
	}
	spdxPackage struct {
		Name             string    `json:"name"`
		SPDXID           string    `json:"SPDXID"`
		VersionInfo      string    `json:"versionInfo,omitempty"`
		DownloadLocation string    `json:"downloadLocation"`
		FilesAnalyzed    bool      `json:"filesAnalyzed"`
		LicenseDeclared  string    `json:"licenseDeclared,omitempty"`
		ExternalRefs     []spdxRef `json:"externalRefs,omitempty"`
	}
	spdxRef struct {
		Category string `json:"referenceCategory"`
		Type     string `json:"referenceType"`
		Locator  string `json:"referenceLocator"`
	}
	spdxRelation struct {
		Element string `json:"spdxElementId"`
		Type    string `json:"relationshipType"`
		Related string `json:"relatedSpdxElement"`
	}
)

// SBOM returns the SPDX statement about the image whose manifest is
// subject (named name) listing pkgs; created is the document's time
// (the build's epoch, when it has one).
func SBOM(name string, subject digest.Digest, pkgs []Package, created time.Time, creator string) Statement {
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT", Name: name,
		DocumentNamespace: "https://github.com/kiln-build/kiln/spdx/" + subject.Encoded(),
		CreationInfo:      spdxCreation{Created: created.UTC().Format(time.RFC3339), Creators: []string{"Tool: " + creator}},
		Packages:          []spdxPackage{},
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].PURL() < pkgs[j].PURL() })
	for i, p := range pkgs {
		id := fmt.Sprintf("SPDXRef-Package-%s-%d", p.Type, i+1)
		sp := spdxPackage{Name: p.Name, SPDXID: id, VersionInfo: p.Version, DownloadLocation: "NOASSERTION", LicenseDeclared: spdxLicense(p.License),
			ExternalRefs: []spdxRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: p.PURL()}}}
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, spdxRelation{Element: "SPDXRef-DOCUMENT", Type: "DESCRIBES", Related: id})
	}
	return NewStatement(name, subject, PredicateSPDX, doc)
}

func spdxLicense(l string) string {
	if l == "" {
		return ""
	}
	return "NOASSERTION"
}
