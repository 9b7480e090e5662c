package steering

import (
	"cmp"
	"iter"
	"slices"
)

// An app is kept in two records without pointers: compiledApp, what a match
// reads of every candidate app (kept dense: 12 bytes), and appMeta, the rest
// of its config, read when an App is made (Snapshot.AppAt, Decision.App).
// Their strings are in the snapshot's packed text and its lists are indices.
// At 10,000 apps a copy of the config's Apps took ~240 bytes an app, hosts
// aside, full of pointers every GC scanned; the records take 40.
type compiledApp struct {
	ports  int32 // index into Snapshot.ports and .portText: at 10,000 apps a few distinct sets serve them all
	first  int32 // the rule of its first host
	action Action
}

type appMeta struct {
	id, name   strRef
	pubs, tags int32 // index into Snapshot.lists, -1 for none (nil)
	pubDNS     bool
}

// NumApps returns the number of apps of the config.
func (s *Snapshot) NumApps() int { return len(s.apps) }

// AppAt returns the app at index i of the config (0 ≤ i < NumApps), defaults
// applied, made anew on each call and not kept: for callers that walk all
// apps without a whole Config. Its hosts are its own (one allocation); its
// publishers and tags are the snapshot's and must not be modified.
func (s *Snapshot) AppAt(i int) App {
	lo, hi := s.hostRange(int32(i))
	return s.appAt(int32(i), s.strs(s.hosts[lo:hi]), s.lists)
}

// Apps walks the apps in config order as AppAt gives them (index, app): made
// one at a time and not kept, so a walk of 10,000 apps allocates only their
// host lists, each garbage once the walk moves on.
func (s *Snapshot) Apps() iter.Seq2[int, App] { return s.walkApps(true) }

// AppsWithoutHosts walks the apps as Apps does with each App's Hosts nil,
// for callers that read the rest (publisher selection): it allocates
// nothing.
func (s *Snapshot) AppsWithoutHosts() iter.Seq2[int, App] { return s.walkApps(false) }

func (s *Snapshot) walkApps(hosts bool) iter.Seq2[int, App] {
	return func(yield func(int, App) bool) {
		for i := range s.apps {
			var a App
			if hosts {
				a = s.AppAt(i)
			} else {
				a = s.appAt(int32(i), nil, s.lists)
			}
			if !yield(i, a) {
				return
			}
		}
	}
}

// App returns the app with the given id, or nil. It is made on its first use
// (of App or in a Decision) and kept: it must not be modified.
func (s *Snapshot) App(id string) *App {
	k, ok := slices.BinarySearchFunc(s.byID, id, func(i int32, id string) int { return cmp.Compare(s.appID(i), id) })
	if !ok {
		return nil
	}
	return s.appPtr(s.byID[k])
}

// appPtr returns app i as Decision.App and App give it: made on its first
// use and kept, so that the lookups of an app in use do not allocate, while
// the 10,000 apps of a large config are not all kept materialized.
func (s *Snapshot) appPtr(i int32) *App {
	if a := s.appCache.load(i); a != nil {
		return a
	}
	a := s.AppAt(int(i))
	return s.appCache.keep(i, &a)
}

func (s *Snapshot) appID(i int32) string { return s.meta[i].id.in(s.text) }

// hostRange returns where app i's hosts lie in s.hosts.
func (s *Snapshot) hostRange(i int32) (lo, hi int32) {
	base := s.appNames.host.base
	lo, hi = s.apps[i].first-base, int32(len(s.hosts))
	if int(i)+1 < len(s.apps) {
		hi = s.apps[i+1].first - base
	}
	return lo, hi
}

// strs returns the strings refs place in the packed text, in a new list.
func (s *Snapshot) strs(refs []strRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.in(s.text)
	}
	return out
}

// appAt materializes app i with hosts (its own) and its lists from lists
// (the snapshot's, or copies of them).
func (s *Snapshot) appAt(i int32, hosts []string, lists [][]string) App {
	a, m := &s.apps[i], &s.meta[i]
	list := func(k int32) []string {
		if k < 0 {
			return nil
		}
		return lists[k]
	}
	tunnel := TunnelL7
	if a.action == L3E {
		tunnel = TunnelL3E
	}
	pt := &s.portText[a.ports]
	return App{
		ID: m.id.in(s.text), Name: m.name.in(s.text), Hosts: hosts,
		TCP: pt[0], UDP: pt[1], Publishers: list(m.pubs), PublisherDNS: m.pubDNS,
		Tags: list(m.tags), Tunnel: tunnel,
	}
}

// Client returns the snapshot's client config, defaults applied. It must not
// be modified. It does not allocate.
func (s *Snapshot) Client() *ClientConfig { return &s.client }

// Config returns the snapshot's config, defaults applied, as a new copy the
// caller owns (its strings may be the snapshot's, which no one can modify).
// It allocates every app anew: megabytes at 10,000 apps. It is for rare
// callers (a bundle, a recompile); Client, Apps, NumApps and AppAt serve
// the others.
func (s *Snapshot) Config() *Config {
	hosts := s.strs(s.hosts) // one array for all apps, a window of it each
	lists := make([][]string, len(s.lists))
	for i, l := range s.lists {
		lists[i] = slices.Clip(slices.Clone(l))
	}
	c := &Config{
		Apps: make([]App, len(s.apps)),
		Exceptions: Exceptions{
			Domains:   slicesClone(s.ex.Domains),
			Addresses: slicesClone(s.ex.Addresses),
			Pinned:    slicesClone(s.ex.Pinned),
		},
		Client: s.client,
	}
	for i := range c.Apps {
		lo, hi := s.hostRange(int32(i))
		c.Apps[i] = s.appAt(int32(i), hosts[lo:hi:hi], lists)
	}
	c.Client.StubRangeFallbacks = slicesClone(s.client.StubRangeFallbacks)
	if o := s.client.OnPremDetection; o != nil {
		cp := *o
		cp.DNS, cp.Beacon = clonePtr(o.DNS), clonePtr(o.Beacon)
		c.Client.OnPremDetection = &cp
	}
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	cp := *p
	return &cp
}
