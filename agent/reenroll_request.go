package agent

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// decodeReenroll reads the body of POST /v1/enroll strictly: exactly one JSON
// object, no unknown field, nothing after it, and an "args" array of
// key=value (empty: enroll again with the settings in force). A
// re-enrollment gives the device a new key and device id, so anything less
// than a complete request — null, {}, "args": null, a misspelt field — is
// refused rather than read as "enroll again as before".
func decodeReenroll(r io.Reader) (ctlapi.ReenrollRequest, error) {
	var raw struct {
		Args *[]string `json:"args"`
	}
	if err := tenantapi.DecodeStrict(r, &raw); err != nil {
		return ctlapi.ReenrollRequest{}, fmt.Errorf("enroll request: %w", err)
	}
	if raw.Args == nil {
		return ctlapi.ReenrollRequest{}, errors.New(`enroll request: "args" is missing or null: send [] to enroll again with the settings in force, or key=value strings`)
	}
	for i, a := range *raw.Args {
		if k, _, ok := strings.Cut(a, "="); !ok || strings.TrimSpace(k) == "" {
			// The argument is not echoed: it may be a secret typed without its key.
			return ctlapi.ReenrollRequest{}, fmt.Errorf("enroll request: args[%d] is not key=value", i)
		}
	}
	return ctlapi.ReenrollRequest{Args: *raw.Args}, nil
}
