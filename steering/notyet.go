package steering

import (
	"strconv"
	"strings"
)

// notSupportedYet lists the settings the model can express but this version
// cannot honour. Validation refuses each one that is set, with its path, its
// value and "not supported yet", so that no config is accepted for something
// that is not done. The issue that builds a setting deletes its row.
var notSupportedYet = []struct {
	// path is the setting's config path; an "apps[]." path is checked for
	// every app.
	path string
	// value returns the setting as written when it is set, "" when it is not;
	// i is the app's index for "apps[]." paths.
	value func(c *Config, i int) string
	// what names the missing feature.
	what string
}{
	{"apps[].tunnel", func(c *Config, i int) string { return equalOrEmpty(c.Apps[i].Tunnel, TunnelL3E) }, "the L3E tunnel"},
	{"client.prelogon", func(c *Config, _ int) string { return trueOrEmpty(c.Client.PreLogon) },
		"pre-logon set by the tenant (the prelogonuser= install parameter does it)"},
}

// checkNotSupportedYet refuses the settings of notSupportedYet that c uses:
// those of apps[app], or those outside apps when app is -1.
func (ck *checked) checkNotSupportedYet(c *Config, app int) {
	for _, row := range notSupportedYet {
		field, perApp := strings.CutPrefix(row.path, "apps[].")
		if perApp != (app >= 0) {
			continue
		}
		v := row.value(c, app)
		if v == "" {
			continue
		}
		path := row.path
		if perApp {
			path = "apps[" + strconv.Itoa(app) + "]." + field
		}
		ck.errorf(path, v, "%s is not supported yet", row.what)
	}
}

func equalOrEmpty(s, v string) string {
	if s == v {
		return s
	}
	return ""
}

func trueOrEmpty(b bool) string {
	if b {
		return "true"
	}
	return ""
}
