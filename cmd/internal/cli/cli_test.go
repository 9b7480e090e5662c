package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
)

func TestParseAndCode(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		help bool
	}{
		{"ok", []string{"-n", "3"}, ExitOK, false},
		{"help", []string{"--help"}, ExitOK, true},
		{"short help", []string{"-h"}, ExitOK, true},
		{"unknown flag", []string{"--nope"}, ExitUsage, false},
		{"bad value", []string{"-n", "x"}, ExitUsage, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.Int("n", 0, "a number")
			var out bytes.Buffer
			err := Parse(fs, tc.args, "usage: t [-n N]\n", &out)
			if got := Code(err); got != tc.code {
				t.Fatalf("Code(%v) = %d, want %d", err, got, tc.code)
			}
			if printed := strings.Contains(out.String(), "usage: t") && strings.Contains(out.String(), "a number"); printed != tc.help {
				t.Fatalf("help printed %v, want %v: %q", printed, tc.help, out.String())
			}
		})
	}
}

func TestCode(t *testing.T) {
	cases := []struct {
		err  error
		code int
	}{
		{nil, ExitOK},
		{errors.New("x"), ExitFailure},
		{fmt.Errorf("wrapped: %w", &Error{ExitNotRunning, errors.New("x")}), ExitNotRunning},
		{Usagef("bad %s", "x"), ExitUsage},
		{fmt.Errorf("w: %w", flag.ErrHelp), ExitOK},
	}
	for _, tc := range cases {
		if got := Code(tc.err); got != tc.code {
			t.Errorf("Code(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}
