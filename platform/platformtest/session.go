package platformtest

import (
	"slices"
	"sync"

	"github.com/ztagent/ztagent/platform"
)

// Sessions is an in-memory platform.SessionSource: a test logs users in and
// out and the agent sees it on its next Current.
type Sessions struct {
	mu  sync.Mutex
	cur []platform.Session
	err error
}

var _ platform.SessionSource = (*Sessions)(nil)

// Login adds (or replaces, by ID) a session.
func (s *Sessions) Login(sess platform.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = slices.DeleteFunc(s.cur, func(x platform.Session) bool { return x.ID == sess.ID })
	s.cur = append(s.cur, sess)
}

// Logout removes the session with id.
func (s *Sessions) Logout(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = slices.DeleteFunc(s.cur, func(x platform.Session) bool { return x.ID == id })
}

// Fail makes Current return err until Fail(nil).
func (s *Sessions) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// Current returns a copy of the sessions.
func (s *Sessions) Current() ([]platform.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return slices.Clone(s.cur), nil
}
