package platform

import (
	"regexp"
	"strconv"
	"testing"
)

// sddlACEs parses the DACL of an SDDL string the way pipeSDDL writes it:
// "D:P" then (type;;rights;;;trustee) entries; rights are GA or a number.
func sddlACEs(t *testing.T, sddl string) (protected bool, aces []sddlACE) {
	t.Helper()
	m := regexp.MustCompile(`^D:(P?)((?:\([AD];;[^;]+;;;[A-Z]{2}\))+)$`).FindStringSubmatch(sddl)
	if m == nil {
		t.Fatalf("SDDL %q is not a DACL of simple entries", sddl)
	}
	for _, e := range regexp.MustCompile(`\(([AD]);;([^;]+);;;([A-Z]{2})\)`).FindAllStringSubmatch(m[2], -1) {
		var rights uint64 = fileAllAccess
		if e[2] != "GA" {
			var err error
			if rights, err = strconv.ParseUint(e[2], 0, 32); err != nil {
				t.Fatalf("rights %q: %v", e[2], err)
			}
		}
		aces = append(aces, sddlACE{allow: e[1] == "A", rights: uint32(rights), trustee: e[3]})
	}
	return m[1] == "P", aces
}

type sddlACE struct {
	allow   bool
	rights  uint32
	trustee string
}

func TestPipeSDDL(t *testing.T) {
	protected, aces := sddlACEs(t, pipeSDDL())
	if !protected {
		t.Error("the DACL inherits: a parent's entries could widen it")
	}
	rights := map[string]uint32{}
	for i, a := range aces {
		if !a.allow {
			if i != 0 || a.trustee != "NU" || a.rights != fileAllAccess {
				t.Errorf("deny entry %+v: want network logons refused everything, first", a)
			}
			continue
		}
		rights[a.trustee] |= a.rights
	}
	for _, admin := range []string{"SY", "BA"} {
		if rights[admin] != fileAllAccess {
			t.Errorf("%s has %#x, want full control", admin, rights[admin])
		}
	}
	everyone := rights["WD"]
	for name, r := range map[string]uint32{"create a pipe instance": fileCreatePipeInstance,
		"change the DACL": writeDAC, "take ownership": writeOwner, "delete": accessDelete} {
		if everyone&r != 0 {
			t.Errorf("everyone may %s (%#x)", name, everyone)
		}
	}
	if need := mapPipeGeneric(pipeClientAccess); need&everyone != need {
		t.Errorf("a client asks for %#x, everyone has %#x: missing %#x", need, everyone, need&^everyone)
	}
	if need := mapPipeGeneric(genericRead | genericWrite); need&everyone == need {
		t.Error("GENERIC_WRITE is granted to everyone: it includes FILE_CREATE_PIPE_INSTANCE")
	}
	for tr := range rights {
		if tr != "SY" && tr != "BA" && tr != "WD" {
			t.Errorf("unexpected trustee %s", tr)
		}
	}
}

func TestTokenIsAdmin(t *testing.T) {
	admins := []tokenGroup{{SID: "S-1-1-0", Enabled: true}, {SID: sidAdministrators, Enabled: true}}
	filtered := []tokenGroup{{SID: "S-1-1-0", Enabled: true}, {SID: sidAdministrators, Enabled: false}}
	for _, tc := range []struct {
		name     string
		user     string
		elevated bool
		groups   []tokenGroup
		want     bool
	}{
		{"SYSTEM", sidSystem, false, nil, true},
		{"elevated administrator", "S-1-5-21-1-2-3-1001", true, admins, true},
		{"administrator who did not elevate", "S-1-5-21-1-2-3-1001", false, filtered, false},
		{"elevated, Administrators for deny only", "S-1-5-21-1-2-3-1001", true, filtered, false},
		{"elevated, not an administrator (backup operator)", "S-1-5-21-1-2-3-1002", true,
			[]tokenGroup{{SID: "S-1-5-32-551", Enabled: true}}, false},
		{"user", "S-1-5-21-1-2-3-1003", false, []tokenGroup{{SID: "S-1-5-32-545", Enabled: true}}, false},
	} {
		if got := tokenIsAdmin(tc.user, tc.elevated, tc.groups); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSIDRID(t *testing.T) {
	for sid, want := range map[string]int{"S-1-5-21-1-2-3-1001": 1001, sidSystem: 18, "S-1-5": -1,
		"garbage": -1, "S-1-5-21-x": -1} {
		if got := sidRID(sid); got != want {
			t.Errorf("%s: %d, want %d", sid, got, want)
		}
	}
}

func TestCheckPipeName(t *testing.T) {
	for path, ok := range map[string]bool{DefaultPipeName: true, `\\.\PIPE\ztagent-smoke`: true,
		`C:\ProgramData\ztagent\ztagent.sock`: false, `\\.\pipe\`: false, `\\host\pipe\ztagent`: false,
		`\\.\pipe\a\b`: false, "": false} {
		if err := checkPipeName(path); (err == nil) != ok {
			t.Errorf("%q: %v", path, err)
		}
	}
}
