//go:build tools

// Package tools pins what the tests take from Go modules without building it: the Gateway
// API module ships the HTTPRoute CRDs (config/crd/standard) that the local cluster installs.
package tools

import _ "sigs.k8s.io/gateway-api/apis/v1"
