package platform

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"runtime"
	"time"
)

// openBrowserTimeout bounds the launcher: xdg-open, open and rundll32 hand the
// URL to the desktop and return; they do not wait for the browser.
const openBrowserTimeout = 30 * time.Second

// OpenBrowser opens rawURL in the user's default browser: xdg-open on Linux and
// the BSDs, open on macOS, rundll32 url.dll,FileProtocolHandler on Windows. Only
// http and https URLs are accepted, since the URL becomes a command argument. It
// must run in the user's desktop session; a system service has no browser.
func OpenBrowser(rawURL string) error {
	name, args, err := browserCommand(runtime.GOOS, rawURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), openBrowserTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		if len(out) > 200 {
			out = out[:200]
		}
		return fmt.Errorf("open browser with %s: %w (%q)", name, err, out)
	}
	return nil
}

// browserCommand is the pure half of OpenBrowser: the launcher for goos.
func browserCommand(goos, rawURL string) (string, []string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", nil, errors.New("open browser: only absolute http and https URLs are opened")
	}
	// Re-encode, so that no shell or rundll32 metacharacter passes through raw.
	s := u.String()
	switch goos {
	case "linux", "freebsd", "openbsd", "netbsd", "dragonfly", "illumos", "solaris":
		return "xdg-open", []string{s}, nil
	case "darwin":
		return "open", []string{s}, nil
	case "windows":
		return "rundll32", []string{"url.dll,FileProtocolHandler", s}, nil
	}
	return "", nil, fmt.Errorf("open browser: not supported on %s", goos)
}
