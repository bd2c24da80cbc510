//go:build tools

// Package tools pins the etcd server command that build.sh compiles for the k8s tests.
package tools

import _ "go.etcd.io/etcd/server/v3"
