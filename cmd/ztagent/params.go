package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/ztagent/ztagent/enroll"
)

// paramSources are the places install parameters come from besides the
// command line: files of key=value lines (what the packages' maintainer
// scripts pass: /etc/ztagent/install.params, /etc/default/ztagent, a file
// next to a macOS pkg) and the secret variables of the environment.
type paramSources struct {
	files []string
	// ignoreEmpty drops key= (an empty value) from the command line, for
	// installers that pass every property whether it was set or not (the
	// MSI's custom action). In files an empty value always means unset.
	ignoreEmpty bool
	getenv      func(string) string
}

// gather returns the key=value arguments to parse, by precedence: the
// command line, then a secret's environment variable (ZTAGENT_TOKEN, …),
// then the files, a later file over an earlier one.
func (s paramSources) gather(args []string) ([]string, error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, f := range s.files {
		kv, err := readParamsFile(f)
		if err != nil {
			return nil, err
		}
		for _, p := range kv {
			set(p[0], p[1])
		}
	}
	for _, k := range enroll.SecretParamKeys() {
		if _, ok := vals[k]; ok && s.getenv(enroll.SecretEnvVar(k)) != "" {
			delete(vals, k) // ParseCommandLine takes it from the environment
		}
	}
	given := map[string]bool{}
	for i, a := range args {
		k, v, ok := strings.Cut(a, "=")
		key := strings.ToLower(strings.TrimSpace(k))
		if !ok {
			// Not echoed: it may be a secret typed without its key.
			return nil, fmt.Errorf("parameter %d is not key=value", i+1)
		}
		if given[key] {
			return nil, fmt.Errorf("parameter %s= given twice", key)
		}
		given[key] = true
		if s.ignoreEmpty && strings.TrimSpace(v) == "" {
			continue
		}
		set(key, v)
	}
	out := make([]string, 0, len(vals))
	for _, k := range order {
		if v, ok := vals[k]; ok {
			out = append(out, k+"="+v)
		}
	}
	return out, nil
}

// readParamsFile reads key=value lines: the install-parameter names (any
// case), '#' comments, blank lines, a value optionally in matching quotes
// (so that the file may also be sourced by a shell). Empty values are left
// out. Errors name the file and line, never a value.
func readParamsFile(path string) ([][2]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("parameters file: %w", err)
	}
	defer f.Close()
	var out [][2]string
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		key := strings.ToLower(strings.TrimSpace(k))
		if !ok {
			return nil, fmt.Errorf("%s:%d: not key=value", path, n)
		}
		if !slices.Contains(enroll.ValidParamKeys(), key) {
			return nil, fmt.Errorf("%s:%d: unknown parameter %q (valid keys: %s)", path, n,
				truncate(k), strings.Join(enroll.ValidParamKeys(), ", "))
		}
		if first, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s:%d: %s= given twice (first on line %d)", path, n, key, first)
		}
		seen[key] = n
		v = unquote(strings.TrimSpace(v))
		if v != "" {
			out = append(out, [2]string{key, v})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parameters file %s: %w", path, err)
	}
	return out, nil
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
