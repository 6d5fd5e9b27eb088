// Package kubernetes holds the Kubernetes manifests of kommo-import
// (job.yaml: one import worked by two processes; cronjob.yaml: the nightly
// re-sync; secret.example.yaml: the settings they read). It has no Go code:
// its test decodes every manifest strictly into the Kubernetes API types, so
// a typo in a field name fails the build, and checks the exit-code mapping
// against the importer's exit codes.
package kubernetes
