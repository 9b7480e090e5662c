package l3e

import (
	"testing"

	"go.uber.org/goleak"
)

// The client's own tests with a gateway run in cloud/gateway (the tunnel
// packages never import cloud/); these are the wire, the classifier and the
// foreign-peer check.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
