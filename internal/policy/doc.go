// Package policy reads and applies containers-policy.json(5): which
// images may be used, by transport and scope, and which signatures they
// need. The requirement types are containers/image's: reject,
// insecureAcceptAnything, signedBy (GPG keys) and sigstoreSigned (public
// keys), with the signedIdentity rules matchExact, matchRepoDigestOrExact,
// matchRepository, exactReference, exactRepository and remapIdentity.
// The most specific scope wins: the image's own identity, then its
// namespaces from the narrowest out, then the transport's "" scope, then
// the default.
//
// The package only decides; it never fetches an image or signature.
// Keys named by a policy are read when a requirement needs them, so a
// key that is missing is an error of the evaluation that needed it.
package policy
