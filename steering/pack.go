package steering

import (
	"slices"
	"strings"
)

// strRef is a string as its offset and length in a snapshot's packed text:
// what an app record keeps instead of a string header, so that the records
// hold no pointer for the GC to scan.
type strRef struct{ off, n uint32 }

// in returns the string r refers to in text.
func (r strRef) in(text string) string { return text[r.off : r.off+r.n] }

// packer gathers strings into one string that holds each distinct value
// once: a decoded config has an allocation per string (60,000 at 10,000
// apps) and values such as "443" or a publisher's name repeated in every
// app. add every string first, then pack, then ask for each one's place.
type packer struct {
	at    map[string]uint32 // offset of each distinct value in text
	order []string          // the distinct values in the order of their offsets
	n     int
	text  string
}

// newPacker returns a packer sized for n strings, all distinct: no growth,
// which would copy them all a few times over.
func newPacker(n int) packer {
	return packer{at: make(map[string]uint32, n), order: make([]string, 0, n)}
}

// add registers s.
func (p *packer) add(s string) {
	if _, ok := p.at[s]; !ok && s != "" {
		p.at[s] = uint32(p.n)
		p.order = append(p.order, s)
		p.n += len(s)
	}
}

// pack writes the values into a string of exactly their size (a growing
// builder would keep up to twice it) and drops the list of them.
func (p *packer) pack() {
	var b strings.Builder
	b.Grow(p.n)
	for _, s := range p.order {
		b.WriteString(s)
	}
	p.text, p.order = b.String(), nil
}

// ref returns where s, added before pack, lies in the text.
func (p *packer) ref(s string) strRef { return strRef{p.at[s], uint32(len(s))} }

// str returns s, added before pack, as a slice of the text.
func (p *packer) str(s string) string { return p.ref(s).in(p.text) }

// strs returns the strings of list, added before pack, as slices of the text
// in a new list of its length (nil for nil).
func (p *packer) strs(list []string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = p.str(s)
	}
	return out
}

// packApps keeps apps (the config's, valid, not retained) in the snapshot's
// compact form: pointer-free records per app (ID and name in the packed
// text, its port texts and lists by index into tables of the distinct ones),
// the hosts of every app in turn in one array of places in the packed text,
// and every other string a slice of it. Defaults apply as in the config: an
// app without a tunnel has the l7 one. ck.apps are the apps' parsed port
// sets.
func (s *Snapshot) packApps(apps []App, ck *checked) {
	nHosts, nStrs := 0, 0
	for i := range apps {
		a := &apps[i]
		nHosts += len(a.Hosts)
		nStrs += 4 + len(a.Hosts) + len(a.Publishers) + len(a.Tags)
	}
	p := newPacker(nStrs)
	for i := range apps {
		a := &apps[i]
		for _, v := range []string{a.ID, a.Name, a.TCP, a.UDP} {
			p.add(v)
		}
		for _, list := range [][]string{a.Hosts, a.Publishers, a.Tags} {
			for _, v := range list {
				p.add(v)
			}
		}
	}
	p.pack()
	s.text = p.text
	s.apps = make([]compiledApp, len(apps))
	s.meta = make([]appMeta, len(apps))
	s.hosts = make([]strRef, 0, nHosts)
	portsOf := map[[2]string]int32{}
	lists := listTable{index: map[string]int32{}}
	for i := range apps {
		a := &apps[i]
		k := [2]string{a.TCP, a.UDP}
		ports, ok := portsOf[k]
		if !ok {
			ports = int32(len(s.ports))
			portsOf[k] = ports
			s.ports = append(s.ports, ck.apps[i].appPorts)
			s.portText = append(s.portText, [2]string{p.str(a.TCP), p.str(a.UDP)})
		}
		act := L7
		if a.Tunnel == TunnelL3E {
			act = L3E
		}
		// An empty tags list reads back as none, an empty publishers list
		// as an empty one, as the config's copy always did.
		tags := int32(-1)
		if len(a.Tags) > 0 {
			tags = lists.of(a.Tags, &p)
		}
		pubs := int32(-1)
		if a.Publishers != nil {
			pubs = lists.of(a.Publishers, &p)
		}
		s.apps[i] = compiledApp{ports: ports, action: act}
		s.meta[i] = appMeta{id: p.ref(a.ID), name: p.ref(a.Name), pubs: pubs, tags: tags, pubDNS: a.PublisherDNS}
		for _, h := range a.Hosts {
			s.hosts = append(s.hosts, p.ref(h))
		}
	}
	s.ports, s.portText, s.lists = slices.Clip(s.ports), slices.Clip(s.portText), slices.Clip(lists.lists)
}

// listTable is the distinct string lists of the apps (publishers, tags), so
// that apps with the same list share one.
type listTable struct {
	lists [][]string
	index map[string]int32 // the lists joined by NUL → their index
}

// of returns the index of list, adding a packed copy of it when it is new.
func (t *listTable) of(list []string, p *packer) int32 {
	k := strings.Join(list, "\x00")
	if i, ok := t.index[k]; ok && slices.Equal(t.lists[i], list) {
		return i
	}
	i := int32(len(t.lists))
	t.lists = append(t.lists, p.strs(list))
	t.index[k] = i
	return i
}
