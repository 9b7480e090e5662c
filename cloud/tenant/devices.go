package tenant

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/platform/atomicfile"
)

// Device records. The tenant keeps one record per enrolled device, keyed by
// the device id, which is derived from the device's public key (deviceIDFor).
// That key is what makes enrollment idempotent from the agent's side: an agent
// whose answer was lost (a cut connection, a proxy, a read limit) asks again
// with the same key and CSR, and the tenant finds the same record and answers
// again — never a second device. An invitation or sign-in code consumed by the
// first attempt is bound to the same device id, so it serves the retry too,
// and only the retry.
//
// Order of an enrollment: authenticate (org key, invitation, sign-in code) →
// sign the certificate and build the whole answer → record the device
// (persisted) → write the answer. So no certificate leaves unrecorded, and
// nothing is recorded for a request refused or failed before its answer.
// A record whose answer never arrived stays pending: it is confirmed when the
// device first presents its certificate (config fetch or renewal), which an
// agent does at its first config poll (5 minutes by default, 24 hours at
// most). A record still pending two days later is an enrollment whose agent
// gave up (or a retry that never came) and is dropped, at the next open or
// hourly sweep; should that device appear after all, its first request with
// its certificate records it again.
//
// The store is an append-only file of JSON lines, one whole record per line,
// the last line of an id winning: an enrollment costs one appended line, not a
// rewrite of every device. Opening it compacts it when old lines dominate.

const (
	devicesFile = "devices.jsonl"
	// pendingDeviceTTL is how long a record may stay unconfirmed: twice the
	// longest config poll an agent may be given (steering's client.config_poll).
	pendingDeviceTTL = 48 * time.Hour
	// deviceSweepEvery is how often record drops expired pending records.
	deviceSweepEvery = time.Hour
)

// deviceRecord is one device as the tenant knows it.
type deviceRecord struct {
	ID       string `json:"device_id"`
	UPN      string `json:"upn"`
	Name     string `json:"name,omitempty"`
	Method   string `json:"method"` // upn, invite, idp; "seen" for a device met first with its certificate
	TokenSet string `json:"token_set,omitempty"`
	// Enrolled is the first answer, Issued the latest (a retry's).
	Enrolled time.Time `json:"enrolled"`
	Issued   time.Time `json:"issued"`
	// Confirmed is the device's first request with its certificate: from then
	// on the tenant knows the answer arrived.
	Confirmed time.Time `json:"confirmed,omitzero"`
}

// deviceStore holds the records. Every change is on disk before the call that
// made it returns; with no state directory it is in memory only.
type deviceStore struct {
	mu      sync.Mutex
	path    string // "" = memory only
	loadErr error  // the file could not be read: refuse, never guess
	byID    map[string]*deviceRecord
	swept   time.Time // the last drop of expired pending records
}

func openDeviceStore(stateDir string, now time.Time) *deviceStore {
	s := &deviceStore{byID: map[string]*deviceRecord{}, swept: now}
	if stateDir == "" {
		return s
	}
	s.path = filepath.Join(stateDir, devicesFile)
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s
	case err != nil:
		s.loadErr = err
		return s
	}
	lines, torn, err := s.replay(data)
	if err != nil {
		s.loadErr = fmt.Errorf("%s: %w (fix or restore it; enrollment is refused until then)", s.path, err)
		return s
	}
	pruned := s.pruneLocked(now)
	// A torn tail is cut off before anything is appended after it.
	if torn || pruned > 0 || lines > 2*len(s.byID)+1024 {
		if err := s.compactLocked(); err != nil {
			s.loadErr = fmt.Errorf("%s: compact: %w", s.path, err)
		}
	}
	return s
}

// replay loads the lines of data and returns how many there were. A last line
// without its newline is a write that a crash cut short: it is ignored, and
// torn says so.
func (s *deviceStore) replay(data []byte) (n int, torn bool, err error) {
	if i := bytes.LastIndexByte(data, '\n'); i < len(data)-1 {
		data, torn = data[:i+1], true
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		n++
		var r deviceRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.ID == "" || r.UPN == "" {
			return n, torn, fmt.Errorf("line %d is not a device record", n)
		}
		s.byID[r.ID] = &r
	}
	return n, torn, sc.Err()
}

// pruneLocked drops the records pending for longer than pendingDeviceTTL.
func (s *deviceStore) pruneLocked(now time.Time) int {
	n := 0
	for id, r := range s.byID {
		if r.Confirmed.IsZero() && now.Sub(r.Issued) > pendingDeviceTTL {
			delete(s.byID, id)
			n++
		}
	}
	return n
}

// compactLocked rewrites the file with one line per record, atomically.
func (s *deviceStore) compactLocked() error {
	var buf bytes.Buffer
	for _, r := range s.listLocked() {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		buf.Write(append(line, '\n'))
	}
	return atomicfile.Write(s.path, buf.Bytes(), 0o600)
}

// appendLocked persists r as one line; the caller keeps the old record in
// memory when it fails.
func (s *deviceStore) appendLocked(r *deviceRecord) error {
	if s.path == "" {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err == nil {
		if _, err = f.Write(append(line, '\n')); err != nil {
			// Never leave half a line for the next one to follow.
			f.Truncate(st.Size())
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

var errDeviceState = &tenantapi.Error{Status: http.StatusServiceUnavailable, Reason: tenantapi.ReasonInternal,
	Message: "tenant's device records are unreadable; the administrator must repair them"}

// record is called once the answer for r.ID is built and before it is
// written. The same key for the same user finds its record (a retry after a
// lost answer); the same key for another user is refused: a device key
// belongs to one user.
func (s *deviceStore) record(r deviceRecord) *tenantapi.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadErr != nil {
		return errDeviceState
	}
	next := r
	if old := s.byID[r.ID]; old != nil {
		if old.UPN != r.UPN {
			return &tenantapi.Error{Status: http.StatusConflict, Reason: tenantapi.ReasonDeviceKeyInUse,
				Message: "this device key is already enrolled for another user: enroll with a new key"}
		}
		next.Enrolled, next.Confirmed = old.Enrolled, old.Confirmed
	} else {
		next.Enrolled = r.Issued
	}
	if err := s.appendLocked(&next); err != nil {
		return &tenantapi.Error{Status: http.StatusInternalServerError, Reason: tenantapi.ReasonInternal,
			Message: "tenant could not record the device; retry later"}
	}
	s.byID[r.ID] = &next
	s.sweepLocked(r.Issued)
	return nil
}

// sweepLocked drops expired pending records at most every deviceSweepEvery,
// rewriting the file when it dropped any. A failed rewrite leaves the old
// file, which says the same but longer: it is tried again at the next sweep.
func (s *deviceStore) sweepLocked(now time.Time) {
	if now.Sub(s.swept) < deviceSweepEvery {
		return
	}
	s.swept = now
	if s.pruneLocked(now) > 0 && s.path != "" {
		s.compactLocked()
	}
}

// confirm marks the device presenting its certificate as confirmed; a device
// without a record (enrolled before the tenant kept records) gets one. It
// writes only the first time, so a config poll costs a map lookup.
func (s *deviceStore) confirm(p tenantapi.Peer, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.byID[p.Device]
	if s.loadErr != nil || (old != nil && !old.Confirmed.IsZero()) {
		return s.loadErr
	}
	next := deviceRecord{ID: p.Device, UPN: p.User, Method: "seen", Enrolled: now, Issued: now}
	if old != nil {
		next = *old
	}
	next.Confirmed = now
	if err := s.appendLocked(&next); err != nil {
		return err
	}
	s.byID[p.Device] = &next
	return nil
}

// listLocked returns copies of the records, oldest enrollment first.
func (s *deviceStore) listLocked() []deviceRecord {
	out := make([]deviceRecord, 0, len(s.byID))
	for _, r := range s.byID {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Enrolled.Equal(out[j].Enrolled) {
			return out[i].Enrolled.Before(out[j].Enrolled)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// get returns a copy of the device's record.
func (s *deviceStore) get(id string) (deviceRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[id]
	if !ok {
		return deviceRecord{}, false
	}
	return *r, true
}

// list returns copies of the records, oldest enrollment first.
func (s *deviceStore) list() []deviceRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked()
}
