package steering

import (
	"cmp"
	"iter"
	"slices"
)

// compiledApp is an app as the snapshot keeps it: what a match needs (its
// port sets, its first rule, its action) and the rest of its config in a
// record without pointers, its strings in the snapshot's packed text and its
// lists by index. At 10,000 apps an App and its lists took ~360 bytes an app
// and were full of pointers every GC scanned; a record takes 36, and the
// App is made when asked for (Snapshot.AppAt, Decision.App).
type compiledApp struct {
	id, name   strRef
	ports      int32 // index into Snapshot.ports and .portText: at 10,000 apps a few distinct sets serve them all
	first      int32 // the rule of its first host
	pubs, tags int32 // index into Snapshot.lists, -1 for none (nil)
	action     Action
	pubDNS     bool
}

// NumApps returns the number of apps of the config.
func (s *Snapshot) NumApps() int { return len(s.apps) }

// AppAt returns the app at index i of the config (0 ≤ i < NumApps), defaults
// applied, made anew on each call and not kept: for callers that walk all
// apps without a whole Config. Its lists are the snapshot's and must not be
// modified.
func (s *Snapshot) AppAt(i int) App { return s.appAt(int32(i), s.hosts, s.lists) }

// Apps walks the apps in config order as AppAt gives them (index, app): made
// one at a time and not kept, so a walk of 10,000 apps allocates nothing.
func (s *Snapshot) Apps() iter.Seq2[int, App] {
	return func(yield func(int, App) bool) {
		for i := range s.apps {
			if !yield(i, s.AppAt(i)) {
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
func (s *Snapshot) appPtr(i int32) *App { return s.appCache.get(i, s.newApp) }

func (s *Snapshot) newApp(i int32) *App {
	a := s.AppAt(int(i))
	return &a
}

func (s *Snapshot) appID(i int32) string { return s.apps[i].id.in(s.text) }

// appHosts returns the window of hosts (the snapshot's array of every app's
// hosts in turn, or a copy of it) that holds app i's.
func (s *Snapshot) appHosts(i int32, hosts []string) []string {
	base := s.appNames.host.base
	lo, hi := s.apps[i].first-base, int32(len(hosts))
	if int(i)+1 < len(s.apps) {
		hi = s.apps[i+1].first - base
	}
	return hosts[lo:hi:hi]
}

// appAt materializes app i with its hosts a window of hosts and its lists
// from lists (the snapshot's, or copies of them).
func (s *Snapshot) appAt(i int32, hosts []string, lists [][]string) App {
	a := &s.apps[i]
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
		ID: a.id.in(s.text), Name: a.name.in(s.text), Hosts: s.appHosts(i, hosts),
		TCP: pt[0], UDP: pt[1], Publishers: list(a.pubs), PublisherDNS: a.pubDNS,
		Tags: list(a.tags), Tunnel: tunnel,
	}
}

// Client returns the snapshot's client config, defaults applied. It must not
// be modified. It does not allocate.
func (s *Snapshot) Client() *ClientConfig { return &s.client }

// Config returns the snapshot's config, defaults applied, as a new copy the
// caller owns (its strings may be the snapshot's, which no one can modify).
// It allocates every app anew: megabytes at 10,000 apps. It is for rare
// callers (status, a bundle, a recompile); Client, NumApps and AppAt serve
// the others.
func (s *Snapshot) Config() *Config {
	hosts := slices.Clone(s.hosts)
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
		c.Apps[i] = s.appAt(int32(i), hosts, lists)
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
