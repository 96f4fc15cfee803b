// Package image holds the documents an image is made of — manifests,
// indexes, configs and their media types — the conversion between the OCI
// and Docker schema 2 forms, and the parsing of image references.
//
// It imports nothing else of kiln and performs no I/O.
package image
