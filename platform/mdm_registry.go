package platform

import (
	"fmt"
	"strconv"
)

// Registry value types, as winnt.h numbers them; the pure half below is
// compiled and tested on every OS.
const (
	regSZ       = 1
	regExpandSZ = 2
	regBinary   = 3
	regDWORD    = 4
	regMultiSZ  = 7
	regQWORD    = 11
)

// registryValue is one value under the policy key, as read from the registry.
type registryValue struct {
	Name string
	Type uint32
	Str  string // REG_SZ
	Int  uint64 // REG_DWORD, REG_QWORD
}

// registryToMap turns the policy key's values into settings: REG_SZ as is,
// REG_DWORD and REG_QWORD as decimal text; any other type, an empty name (the
// key's default value) or a name given twice (names are case-insensitive) is an
// *MDMError for path naming the value.
func registryToMap(path string, vals []registryValue) (map[string]string, error) {
	out := make(map[string]string, len(vals))
	for _, v := range vals {
		key, err := mdmKey(v.Name)
		if err != nil {
			return nil, &MDMError{Path: path, Key: truncateKey(v.Name), Reason: err.Error()}
		}
		if _, dup := out[key]; dup {
			return nil, &MDMError{Path: path, Key: key, Reason: "given twice"}
		}
		switch v.Type {
		case regSZ:
			out[key] = v.Str
		case regDWORD, regQWORD:
			out[key] = strconv.FormatUint(v.Int, 10)
		default:
			return nil, &MDMError{Path: path, Key: key,
				Reason: fmt.Sprintf("value type %s is not supported: use REG_SZ (or REG_DWORD)", regTypeName(v.Type))}
		}
	}
	return out, nil
}

func regTypeName(t uint32) string {
	switch t {
	case regExpandSZ:
		return "REG_EXPAND_SZ"
	case regBinary:
		return "REG_BINARY"
	case regMultiSZ:
		return "REG_MULTI_SZ"
	}
	return "#" + strconv.FormatUint(uint64(t), 10)
}
