package tenantapi

import (
	"errors"
	"fmt"
	"strings"
)

// ValidTenantName reports whether s is a tenant name: lower-case letters,
// digits and '-', usable as the host of an identity URI and as a DNS label.
func ValidTenantName(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// CheckDNSName accepts host names as RFC 1123 defines them, plus underscores
// (used in service names), in lower case: the tenant's app hosts and the
// agent's domain= are checked alike.
func CheckDNSName(name string) error {
	if name == "" || len(name) > 253 {
		return errors.New("invalid DNS name: empty or longer than 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("invalid DNS name: empty label or label longer than 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("invalid DNS name: label starts or ends with '-'")
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return fmt.Errorf("invalid DNS name: character %q not allowed", ch)
			}
		}
	}
	return nil
}
