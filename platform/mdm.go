package platform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"strings"
	"sync"
)

// MDMSource reads the settings an MDM pushed to this machine: the same keys as
// the install parameters (host, token, enrollauthtoken, ...), lower-cased.
// Sources check syntax only (a flat map of strings); the enroll package checks
// the keys and values and applies precedence (MDM > install > defaults).
type MDMSource interface {
	// Load returns the settings; (nil, nil) when the MDM has pushed nothing. An
	// unreadable or invalid source is an *MDMError naming the path, the key and
	// the reason.
	Load() (map[string]string, error)
	// Path names the source for errors and status: a file path or a registry key.
	Path() string
}

// MDMError is an invalid MDM source.
type MDMError struct {
	Path   string
	Key    string // "" when the problem is not one key's
	Reason string
}

func (e *MDMError) Error() string {
	if e.Key == "" {
		return "MDM config " + e.Path + ": " + e.Reason
	}
	return "MDM config " + e.Path + ": key " + e.Key + ": " + e.Reason
}

// Default MDM locations.
const (
	MDMJSONPath     = "/etc/ztagent/mdm.json"
	MDMPlistPath    = "/Library/Managed Preferences/com.ztagent.agent.plist"
	MDMRegistryPath = `HKLM\SOFTWARE\Policies\ztagent`
)

// maxMDMFile bounds what an MDM source reads; a few dozen keys fit many times.
const maxMDMFile = 64 << 10

// readMDMFile reads path; a missing file is (nil, nil).
func readMDMFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &MDMError{Path: path, Reason: err.Error()}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMDMFile+1))
	if err != nil {
		return nil, &MDMError{Path: path, Reason: err.Error()}
	}
	if len(data) > maxMDMFile {
		return nil, &MDMError{Path: path, Reason: fmt.Sprintf("larger than %d KiB", maxMDMFile>>10)}
	}
	return data, nil
}

// JSONMDMSource is /etc/ztagent/mdm.json: one JSON object of string values,
// e.g. {"host": "tenant.example.com", "token": "..."}.
type JSONMDMSource struct{ File string }

// NewJSONMDMSource reads the JSON MDM file at path (MDMJSONPath on Linux).
func NewJSONMDMSource(path string) *JSONMDMSource { return &JSONMDMSource{File: path} }

// Path returns the file's path.
func (s *JSONMDMSource) Path() string { return s.File }

// Load reads and checks the file.
func (s *JSONMDMSource) Load() (map[string]string, error) {
	data, err := readMDMFile(s.File)
	if data == nil || err != nil {
		return nil, err
	}
	return ParseMDMJSON(s.File, data)
}

// ParseMDMJSON parses an MDM JSON document: exactly one object whose values are
// strings (booleans and integers are accepted and written as text); keys are
// case-insensitive and may appear once. Errors are *MDMError for path.
func ParseMDMJSON(path string, data []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	bad := func(key, format string, args ...any) error {
		return &MDMError{Path: path, Key: key, Reason: fmt.Sprintf(format, args...)}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, bad("", "not a JSON object")
	}
	out := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad("", "malformed JSON at byte %d: %v", dec.InputOffset(), err)
		}
		key, err := mdmKey(tok.(string))
		if err != nil {
			return nil, bad(truncateKey(tok.(string)), "%v", err)
		}
		if _, dup := out[key]; dup {
			return nil, bad(key, "given twice")
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, bad(key, "malformed JSON value: %v", err)
		}
		switch v := v.(type) {
		case string:
			out[key] = v
		case bool:
			out[key] = fmt.Sprint(v)
		case json.Number:
			if _, err := v.Int64(); err != nil {
				return nil, bad(key, "number is not an integer")
			}
			out[key] = v.String()
		default:
			return nil, bad(key, "value must be a string, not %s", jsonKind(v))
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, bad("", "malformed JSON at byte %d: %v", dec.InputOffset(), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad("", "data after the JSON object")
	}
	return out, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// mdmKey normalises a key: 1-64 letters, digits, '_' or '-', lower-cased.
func mdmKey(k string) (string, error) {
	if k == "" || len(k) > 64 {
		return "", errors.New("key must be 1 to 64 characters")
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return "", errors.New("key may hold only letters, digits, '_' and '-'")
		}
	}
	return strings.ToLower(k), nil
}

func truncateKey(k string) string {
	k = strings.ToValidUTF8(k, "?")
	if len(k) > 64 {
		return fmt.Sprintf("%q…", k[:64])
	}
	return fmt.Sprintf("%q", k)
}

// MDMPoller notices changes of an MDM source by re-reading it: call Poll on a
// timer. It keeps the last good settings, so an invalid file never replaces
// them. It is safe for concurrent use.
type MDMPoller struct {
	src  MDMSource
	mu   sync.Mutex
	last map[string]string
	ok   bool
}

// NewMDMPoller polls src.
func NewMDMPoller(src MDMSource) *MDMPoller { return &MDMPoller{src: src} }

// Source is the polled source.
func (p *MDMPoller) Source() MDMSource { return p.src }

// Poll reloads the source. It returns the settings in force (the new ones, or
// the last good ones when the source is invalid), whether they changed since
// the last successful Poll (the first successful Poll always counts as a
// change), and the source's error, if any.
func (p *MDMPoller) Poll() (settings map[string]string, changed bool, err error) {
	cur, err := p.src.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		return maps.Clone(p.last), false, err
	}
	changed = !p.ok || !maps.Equal(cur, p.last)
	p.last, p.ok = cur, true
	return maps.Clone(cur), changed, nil
}
