package enroll

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform/atomicfile"
)

// paramsFile holds the install parameters in the state directory, so that the
// service enrolls (and re-enrolls) with what `ztagent install` was given. It
// holds the org key and tokens: 0600, like the identity.
const paramsFile = "params.json"

// SaveParams persists p in stateDir atomically as {"key": "value", ...} with
// the install-parameter names.
func SaveParams(stateDir string, p Params) error {
	vals := paramValues(p)
	for k, v := range vals {
		if v == "" {
			delete(vals, k)
		}
	}
	data, err := json.MarshalIndent(vals, "", "  ")
	if err != nil {
		return fmt.Errorf("save parameters: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("save parameters: %w", err)
	}
	return atomicfile.Write(filepath.Join(stateDir, paramsFile), data, 0o600)
}

// LoadParams reads the parameters SaveParams wrote; none saved is a zero
// Params and no error. Every key and value is validated as ParseParams does;
// an error names the file and the key, never a secret's value.
func LoadParams(stateDir string) (Params, error) {
	path := filepath.Join(stateDir, paramsFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Params{}, nil
	}
	if err != nil {
		return Params{}, fmt.Errorf("read parameters: %w", err)
	}
	var vals map[string]string
	if err := tenantapi.DecodeStrict(strings.NewReader(string(data)), &vals); err != nil {
		return Params{}, fmt.Errorf("parameters file %s: %v; run `ztagent install` again with the parameters", path, err)
	}
	p, err := paramsFromMap(vals)
	if err != nil {
		return Params{}, fmt.Errorf("parameters file %s: %w", path, err)
	}
	return p, nil
}

// Update returns p with key=value args applied over it, each validated as
// ParseParams validates it: what `ztdiag -e enrollauthtoken=… [enrollencryptiontoken=…]`
// does before re-enrolling. An empty value (key=) clears the key.
func (p Params) Update(args []string) (Params, error) {
	vals := paramValues(p)
	seen := map[string]bool{}
	for i, arg := range args {
		k, v, ok := strings.Cut(arg, "=")
		key := strings.ToLower(strings.TrimSpace(k))
		switch {
		case !ok:
			return p, fmt.Errorf("parameter %d is not key=value", i+1)
		case paramSpecs[key].set == nil:
			return p, fmt.Errorf("unknown parameter %q (valid keys: %s)", truncate(k), strings.Join(paramOrder, ", "))
		case seen[key]:
			return p, fmt.Errorf("parameter %s= given twice", key)
		}
		seen[key] = true
		vals[key] = strings.TrimSpace(v)
	}
	return paramsFromMap(vals)
}

// paramsFromMap validates key → value ("" = unset) into Params.
func paramsFromMap(vals map[string]string) (Params, error) {
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var p Params
	for _, k := range keys {
		spec, ok := paramSpecs[k]
		if !ok {
			return Params{}, fmt.Errorf("unknown parameter %q", truncate(k))
		}
		if vals[k] == "" {
			continue
		}
		norm, err := spec.check(vals[k])
		if err != nil {
			return Params{}, fmt.Errorf("parameter %s=: %s", k, redactReason(k, err))
		}
		spec.set(&p, norm)
	}
	return p, nil
}
