package platform

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

// NewMDMSource returns the macOS managed-preferences source (MDMPlistPath).
func NewMDMSource() MDMSource { return NewPlistMDMSource(MDMPlistPath) }

// plistToXML converts a binary plist with plutil, which every macOS has.
func plistToXML(path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/plutil", "-convert", "xml1", "-o", "-", "--", path).Output()
	if err != nil {
		return nil, fmt.Errorf("binary property list that plutil cannot convert: %v", err)
	}
	return out, nil
}
