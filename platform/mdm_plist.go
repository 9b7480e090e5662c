package platform

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// PlistMDMSource is a macOS managed-preferences file (MDMPlistPath): a property
// list whose top level is a dict of string, boolean or integer values. XML
// plists are parsed here, on every OS; binary ones (what mdmclient usually
// writes) are converted by plutil on macOS and refused elsewhere.
type PlistMDMSource struct{ File string }

// NewPlistMDMSource reads the managed-preferences plist at path.
func NewPlistMDMSource(path string) *PlistMDMSource { return &PlistMDMSource{File: path} }

// Path returns the file's path.
func (s *PlistMDMSource) Path() string { return s.File }

// Load reads and checks the file.
func (s *PlistMDMSource) Load() (map[string]string, error) {
	data, err := readMDMFile(s.File)
	if data == nil || err != nil {
		return nil, err
	}
	if bytes.HasPrefix(data, []byte("bplist")) {
		if data, err = plistToXML(s.File); err != nil {
			return nil, &MDMError{Path: s.File, Reason: err.Error()}
		}
	}
	return ParseMDMPlist(s.File, data)
}

// ParseMDMPlist parses an XML property list holding one flat dict. Errors are
// *MDMError for path naming the key.
func ParseMDMPlist(path string, data []byte) (map[string]string, error) {
	if bytes.HasPrefix(data, []byte("bplist")) {
		return nil, &MDMError{Path: path, Reason: "binary property list: convert it with `plutil -convert xml1`"}
	}
	p := &plistParser{dec: xml.NewDecoder(bytes.NewReader(data)), path: path}
	p.dec.Strict = true
	out, err := p.document()
	if err != nil {
		var me *MDMError
		if errors.As(err, &me) {
			return nil, err
		}
		return nil, &MDMError{Path: path, Reason: "malformed plist: " + err.Error()}
	}
	return out, nil
}

type plistParser struct {
	dec  *xml.Decoder
	path string
}

// next returns the next element start or end, skipping the prolog, comments and
// whitespace; other text is an error.
func (p *plistParser) next() (xml.Token, error) {
	for {
		tok, err := p.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement, xml.EndElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, fmt.Errorf("unexpected text %q", truncateKey(string(t)))
			}
		}
	}
}

func (p *plistParser) expectStart(name string) error {
	tok, err := p.next()
	if err != nil {
		return err
	}
	if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != name {
		return fmt.Errorf("expected <%s>", name)
	}
	return nil
}

func (p *plistParser) document() (map[string]string, error) {
	if err := p.expectStart("plist"); err != nil {
		return nil, err
	}
	if err := p.expectStart("dict"); err != nil {
		return nil, errors.New("the top level must be a <dict>")
	}
	out, err := p.dict()
	if err != nil {
		return nil, err
	}
	if tok, err := p.next(); err != nil || !isEnd(tok, "plist") {
		return nil, errors.New("expected </plist> after the dict")
	}
	if tok, err := p.next(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("data after </plist>: %v", tok)
	}
	return out, nil
}

func isEnd(tok xml.Token, name string) bool {
	e, ok := tok.(xml.EndElement)
	return ok && e.Name.Local == name
}

// dict reads <key>k</key><value/> pairs up to </dict>.
func (p *plistParser) dict() (map[string]string, error) {
	out := map[string]string{}
	for {
		tok, err := p.next()
		if err != nil {
			return nil, err
		}
		if isEnd(tok, "dict") {
			return out, nil
		}
		if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != "key" {
			return nil, errors.New("expected <key> in the dict")
		}
		raw, err := p.text("key")
		if err != nil {
			return nil, err
		}
		key, kerr := mdmKey(raw)
		if kerr != nil {
			return nil, &MDMError{Path: p.path, Key: truncateKey(raw), Reason: kerr.Error()}
		}
		if _, dup := out[key]; dup {
			return nil, &MDMError{Path: p.path, Key: key, Reason: "given twice"}
		}
		if out[key], err = p.value(key); err != nil {
			return nil, err
		}
	}
}

// value reads one value element for key.
func (p *plistParser) value(key string) (string, error) {
	tok, err := p.next()
	if err != nil {
		return "", err
	}
	s, ok := tok.(xml.StartElement)
	if !ok {
		return "", &MDMError{Path: p.path, Key: key, Reason: "has no value"}
	}
	switch s.Name.Local {
	case "string":
		return p.text("string")
	case "true", "false":
		if tok, err := p.next(); err != nil || !isEnd(tok, s.Name.Local) {
			return "", &MDMError{Path: p.path, Key: key, Reason: "<" + s.Name.Local + "/> must be empty"}
		}
		return s.Name.Local, nil
	case "integer":
		v, err := p.text("integer")
		if err != nil {
			return "", err
		}
		if _, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
			return "", &MDMError{Path: p.path, Key: key, Reason: "<integer> is not an integer"}
		}
		return strings.TrimSpace(v), nil
	}
	return "", &MDMError{Path: p.path, Key: key,
		Reason: "value must be <string>, <true/>, <false/> or <integer>, not <" + clip(s.Name.Local) + ">"}
}

// text reads character data up to </name>; nested elements are an error.
func (p *plistParser) text(name string) (string, error) {
	var b strings.Builder
	for {
		tok, err := p.dec.Token()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if b.Len()+len(t) > maxMDMFile {
				return "", errors.New("text too long")
			}
			b.Write(t)
		case xml.EndElement:
			if t.Name.Local != name {
				return "", fmt.Errorf("expected </%s>", name)
			}
			return b.String(), nil
		case xml.StartElement:
			return "", fmt.Errorf("unexpected <%s> inside <%s>", clip(t.Name.Local), name)
		}
	}
}

// clip shortens an XML name for a message (the decoder has checked its syntax).
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
