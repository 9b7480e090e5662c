package steering

import (
	"slices"
	"strings"
)

// copyApps returns a compact copy of apps, for the snapshot's copy of a large
// config: every app's hosts are a window of one array, apps with the same
// publishers share one list, and every string is a slice of one string holding
// each distinct value once (a decoded config has an allocation per string,
// 60,000 at 10,000 apps, and values such as "443" or a publisher's name
// repeated in every app). The snapshot never modifies them (Snapshot.Config
// says so to its callers); apps is not modified. hosts is that array: the
// hosts of every app in turn.
func copyApps(apps []App) (out []App, hosts []string) {
	out = make([]App, len(apps))
	n := 0
	for i := range apps {
		n += len(apps[i].Hosts)
	}
	hosts = make([]string, 0, n)
	pubs := map[string][]string{}
	for i, a := range apps {
		if a.Hosts != nil {
			k := len(hosts)
			hosts = append(hosts, a.Hosts...)
			a.Hosts = hosts[k:len(hosts):len(hosts)]
		}
		if a.Publishers != nil {
			k := strings.Join(a.Publishers, "\x00")
			if p, ok := pubs[k]; ok && slices.Equal(p, a.Publishers) {
				a.Publishers = p
			} else {
				a.Publishers = slices.Clip(slices.Clone(a.Publishers))
				pubs[k] = a.Publishers
			}
		}
		a.Tags = slicesClone(a.Tags)
		out[i] = a
	}
	packStrings(out)
	return out, hosts
}

// packStrings points every string of apps into one string that holds each
// distinct value once. It modifies the apps' lists in place: they must be
// the caller's own.
func packStrings(apps []App) {
	each := func(f func(*string)) {
		for i := range apps {
			a := &apps[i]
			for _, s := range []*string{&a.ID, &a.Name, &a.TCP, &a.UDP, &a.Tunnel} {
				f(s)
			}
			for _, list := range [][]string{a.Hosts, a.Publishers, a.Tags} {
				for j := range list {
					f(&list[j])
				}
			}
		}
	}
	// Three passes: where each distinct value goes, then the values written
	// in that order into a string of exactly their size (a growing builder
	// would keep up to twice it), then the fields pointed into it.
	at := map[string]int{}
	n := 0
	each(func(s *string) {
		if _, ok := at[*s]; !ok && *s != "" {
			at[*s] = n
			n += len(*s)
		}
	})
	var blob strings.Builder
	blob.Grow(n)
	each(func(s *string) {
		if *s != "" && at[*s] == blob.Len() {
			blob.WriteString(*s)
		}
	})
	text := blob.String()
	each(func(s *string) {
		if *s != "" {
			off := at[*s]
			*s = text[off : off+len(*s)]
		}
	})
}
