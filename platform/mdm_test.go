package platform

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const mdmTestdata = "../testdata/mdm"

func TestParseMDMJSON(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string
		key, why string // of the *MDMError
	}{
		{name: "flat", in: `{"host":"h.example","Token":"k"}`, want: map[string]string{"host": "h.example", "token": "k"}},
		{name: "bool and integer", in: `{"a":true,"b":7}`, want: map[string]string{"a": "true", "b": "7"}},
		{name: "empty object", in: ` {} `, want: map[string]string{}},
		{name: "not an object", in: `["host"]`, why: "not a JSON object"},
		{name: "nested", in: `{"host":{"x":1}}`, key: "host", why: "value must be a string, not an object"},
		{name: "array", in: `{"host":["a"]}`, key: "host", why: "not an array"},
		{name: "null", in: `{"host":null}`, key: "host", why: "not null"},
		{name: "float", in: `{"n":1.5}`, key: "n", why: "not an integer"},
		{name: "duplicate by case", in: `{"host":"a","HOST":"b"}`, key: "host", why: "given twice"},
		{name: "bad key", in: `{"ho st":"a"}`, key: `"ho st"`, why: "letters, digits"},
		{name: "trailing data", in: `{"host":"a"} {}`, why: "data after the JSON object"},
		{name: "truncated", in: `{"host":"a",`, why: "malformed JSON"},
		{name: "empty", in: ``, why: "not a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMDMJSON("/etc/ztagent/mdm.json", []byte(tc.in))
			checkMDM(t, got, err, tc.want, "/etc/ztagent/mdm.json", tc.key, tc.why)
		})
	}
}

func checkMDM(t *testing.T, got map[string]string, err error, want map[string]string, path, key, why string) {
	t.Helper()
	if why == "" {
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("got %v %v, want %v", got, err, want)
		}
		return
	}
	var me *MDMError
	if !errors.As(err, &me) || me.Path != path || me.Key != key || !strings.Contains(me.Reason, why) {
		t.Fatalf("err = %#v, want path %s key %q reason %q", err, path, key, why)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error does not name the path: %v", err)
	}
}

func TestParseMDMPlist(t *testing.T) {
	const head = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">`
	tests := []struct {
		name, in string
		want     map[string]string
		key, why string
	}{
		{name: "strings", in: head + `<dict><key>host</key><string>h.example</string><key>Token</key><string>a&amp;b</string></dict></plist>`,
			want: map[string]string{"host": "h.example", "token": "a&b"}},
		{name: "empty string", in: head + `<dict><key>upn</key><string/></dict></plist>`, want: map[string]string{"upn": ""}},
		{name: "bool and integer", in: head + `<dict><key>a</key><true/><key>b</key><integer> 12 </integer></dict></plist>`,
			want: map[string]string{"a": "true", "b": "12"}},
		{name: "array", in: head + `<dict><key>host</key><array/></dict></plist>`, key: "host", why: "not <array>"},
		{name: "bad integer", in: head + `<dict><key>n</key><integer>x</integer></dict></plist>`, key: "n", why: "not an integer"},
		{name: "duplicate", in: head + `<dict><key>a</key><string/><key>A</key><string/></dict></plist>`, key: "a", why: "given twice"},
		{name: "key without value", in: head + `<dict><key>a</key></dict></plist>`, key: "a", why: "has no value"},
		{name: "top level array", in: head + `<array/></plist>`, why: "top level must be a <dict>"},
		{name: "not xml", in: `host=x`, why: "malformed plist"},
		{name: "unclosed", in: head + `<dict><key>a</key><string>x</string>`, why: "malformed plist"},
		{name: "after plist", in: head + `<dict/></plist><dict/>`, why: "data after"},
		{name: "binary", in: "bplist00\x00\x01", why: "binary property list"},
		{name: "element in string", in: head + `<dict><key>a</key><string><b/></string></dict></plist>`, why: "unexpected <b>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMDMPlist(MDMPlistPath, []byte(tc.in))
			checkMDM(t, got, err, tc.want, MDMPlistPath, tc.key, tc.why)
		})
	}
}

func TestRegistryToMap(t *testing.T) {
	tests := []struct {
		name     string
		in       []registryValue
		want     map[string]string
		key, why string
	}{
		{name: "sz and dword", in: []registryValue{{Name: "Host", Type: regSZ, Str: "h"}, {Name: "n", Type: regDWORD, Int: 5}},
			want: map[string]string{"host": "h", "n": "5"}},
		{name: "multi sz", in: []registryValue{{Name: "host", Type: regMultiSZ}}, key: "host", why: "REG_MULTI_SZ is not supported"},
		{name: "expand sz", in: []registryValue{{Name: "host", Type: regExpandSZ}}, key: "host", why: "REG_EXPAND_SZ"},
		{name: "default value", in: []registryValue{{Name: "", Type: regSZ}}, key: `""`, why: "1 to 64"},
		{name: "duplicate", in: []registryValue{{Name: "a", Type: regSZ}, {Name: "A", Type: regSZ}}, key: "a", why: "given twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := registryToMap(MDMRegistryPath, tc.in)
			checkMDM(t, got, err, tc.want, MDMRegistryPath, tc.key, tc.why)
		})
	}
}

func TestMDMFiles(t *testing.T) {
	abs := func(name string) string { p, _ := filepath.Abs(filepath.Join(mdmTestdata, name)); return p }
	tests := []struct {
		src      MDMSource
		want     map[string]string
		key, why string
	}{
		{src: NewJSONMDMSource(abs("mdm.json")), want: map[string]string{"host": "tenant.example.com",
			"token": "org-key-from-mdm-0123456789", "enrollauthtoken": "auth-token-from-mdm-abcdef",
			"installmode": "IDP", "tenant": "demo"}},
		{src: NewPlistMDMSource(abs("com.ztagent.agent.plist")), want: map[string]string{"host": "tenant.example.com",
			"token": "org-key-from-mdm-0123456789", "installmode": "IDP", "payloadenabled": "true", "payloadversion": "1"}},
		{src: NewJSONMDMSource(abs("missing.json")), want: nil},
		{src: NewJSONMDMSource(abs("broken-nested.json")), key: "token", why: "not an object"},
		{src: NewJSONMDMSource(abs("broken-syntax.json")), why: "malformed JSON"},
		{src: NewPlistMDMSource(abs("broken-array.plist")), key: "host", why: "not <array>"},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.src.Path()), func(t *testing.T) {
			got, err := tc.src.Load()
			checkMDM(t, got, err, tc.want, tc.src.Path(), tc.key, tc.why)
		})
	}
}

func TestMDMPoller(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mdm.json")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := NewMDMPoller(NewJSONMDMSource(path))
	steps := []struct {
		name, file string // file "-" = removed
		want       map[string]string
		changed    bool
		fails      bool
	}{
		{name: "absent", file: "-", want: nil, changed: true},
		{name: "still absent", file: "-", want: nil},
		{name: "pushed", file: `{"host":"a.example"}`, want: map[string]string{"host": "a.example"}, changed: true},
		{name: "same", file: `{"host": "a.example"}`, want: map[string]string{"host": "a.example"}},
		{name: "broken keeps last good", file: `{"host":`, want: map[string]string{"host": "a.example"}, fails: true},
		{name: "fixed", file: `{"host":"b.example"}`, want: map[string]string{"host": "b.example"}, changed: true},
		{name: "removed", file: "-", want: nil, changed: true},
	}
	for _, st := range steps {
		if st.file == "-" {
			os.Remove(path)
		} else {
			write(st.file)
		}
		got, changed, err := p.Poll()
		if (err != nil) != st.fails || changed != st.changed || !maps.Equal(got, st.want) {
			t.Errorf("%s: got %v changed=%v err=%v, want %v changed=%v", st.name, got, changed, err, st.want, st.changed)
		}
	}
}

func FuzzParseMDMJSON(f *testing.F) {
	for _, s := range []string{`{"host":"a","n":1,"b":true}`, `{"a":{}}`, `{"a":"b"} x`, `{`} {
		f.Add([]byte(s))
	}
	if data, err := os.ReadFile(filepath.Join(mdmTestdata, "mdm.json")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMDMJSON("p", data)
		checkFuzzMDM(t, m, err)
	})
}

func FuzzParseMDMPlist(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join(mdmTestdata, "com.ztagent.agent.plist")); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`<plist><dict><key>a</key><integer>1</integer></dict></plist>`))
	f.Add([]byte(`<plist><dict><key>a</key><array/></dict></plist>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMDMPlist("p", data)
		checkFuzzMDM(t, m, err)
	})
}

// checkFuzzMDM: a result is a map of valid lower-case keys, or an *MDMError
// naming the path.
func checkFuzzMDM(t *testing.T, m map[string]string, err error) {
	if err != nil {
		var me *MDMError
		if !errors.As(err, &me) || me.Path != "p" {
			t.Fatalf("error is not an *MDMError for the path: %v", err)
		}
		return
	}
	for k := range m {
		if nk, kerr := mdmKey(k); kerr != nil || nk != k {
			t.Fatalf("accepted key %q", k)
		}
	}
}
