package platform

import (
	"errors"

	"golang.org/x/sys/windows/registry"
)

// RegistryMDMSource is the Windows policy key MDMRegistryPath, where Group
// Policy and Intune (ADMX ingestion) write the agent's settings as values.
type RegistryMDMSource struct{}

// NewMDMSource returns the Windows policy registry source.
func NewMDMSource() MDMSource { return RegistryMDMSource{} }

// Path returns the key's path.
func (RegistryMDMSource) Path() string { return MDMRegistryPath }

// Load reads every value under the key; a missing key is (nil, nil).
func (RegistryMDMSource) Load() (map[string]string, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Policies\ztagent`, registry.QUERY_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &MDMError{Path: MDMRegistryPath, Reason: err.Error()}
	}
	defer k.Close()
	names, err := k.ReadValueNames(0)
	if err != nil {
		return nil, &MDMError{Path: MDMRegistryPath, Reason: err.Error()}
	}
	vals := make([]registryValue, 0, len(names))
	for _, name := range names {
		v, err := readRegistryValue(k, name)
		if err != nil {
			return nil, &MDMError{Path: MDMRegistryPath, Key: truncateKey(name), Reason: err.Error()}
		}
		vals = append(vals, v)
	}
	return registryToMap(MDMRegistryPath, vals)
}

func readRegistryValue(k registry.Key, name string) (registryValue, error) {
	_, typ, err := k.GetValue(name, nil)
	if err != nil {
		return registryValue{}, err
	}
	v := registryValue{Name: name, Type: typ}
	switch typ {
	case registry.SZ:
		v.Str, _, err = k.GetStringValue(name)
	case registry.DWORD, registry.QWORD:
		v.Int, _, err = k.GetIntegerValue(name)
	}
	return v, err
}
