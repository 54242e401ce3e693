//go:build tools

// Package tools pins the upstream program this module builds (go build github.com/kserve/kserve/cmd/manager).
package tools

import _ "github.com/kserve/kserve/cmd/manager"
