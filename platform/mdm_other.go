//go:build !linux && !darwin && !windows

package platform

// NewMDMSource returns the JSON file MDMJSONPath, the convention on Unix
// systems without their own MDM store.
func NewMDMSource() MDMSource { return NewJSONMDMSource(MDMJSONPath) }
