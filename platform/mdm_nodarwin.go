//go:build !darwin

package platform

import "errors"

// plistToXML is only possible where plutil exists.
func plistToXML(string) ([]byte, error) {
	return nil, errors.New("binary property list: convert it with `plutil -convert xml1` (plutil exists only on macOS)")
}
