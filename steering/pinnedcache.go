package steering

import "sync"

// pinnedCacheMax bounds the pinned-app results cache of one snapshot. Identities
// on one device are few (processes, not flows); when a pathological workload
// exceeds the bound the cache starts over rather than grow.
const pinnedCacheMax = 4096

type pinnedKey struct{ os, process, path, appID string }

// pinnedRes is the outcome of the pinned patterns for one identity: the index of
// the matching rule and of the first pattern that timed out, -1 for none.
type pinnedRes struct{ match, timedOut int32 }

// pinnedCache memoises pattern results per (os, identity) for one snapshot, so
// that a regex runs once per process and not once per flow. A new snapshot
// starts with an empty cache, so results never outlive the patterns.
type pinnedCache struct {
	mu sync.RWMutex
	m  map[pinnedKey]pinnedRes
}

func (c *pinnedCache) init() { c.m = make(map[pinnedKey]pinnedRes) }

func (c *pinnedCache) get(k pinnedKey) (pinnedRes, bool) {
	c.mu.RLock()
	r, ok := c.m[k]
	c.mu.RUnlock()
	return r, ok
}

func (c *pinnedCache) put(k pinnedKey, r pinnedRes) {
	c.mu.Lock()
	if len(c.m) >= pinnedCacheMax {
		clear(c.m)
	}
	c.m[k] = r
	c.mu.Unlock()
}
