package platformtest

import (
	"maps"
	"sync"

	"github.com/ztagent/ztagent/platform"
)

// MDM is an in-memory platform.MDMSource whose settings a test pushes and
// changes, as an MDM server would.
type MDM struct {
	mu       sync.Mutex
	path     string
	settings map[string]string
	err      error
	loads    int
}

var _ platform.MDMSource = (*MDM)(nil)

// NewMDM returns a source named path with nothing pushed.
func NewMDM(path string) *MDM { return &MDM{path: path} }

// Push replaces the settings (nil = nothing pushed) and clears any error.
func (m *MDM) Push(settings map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.settings, m.err = maps.Clone(settings), nil
}

// Break makes Load fail with err, as an invalid file would.
func (m *MDM) Break(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

// Load returns the pushed settings or the error set by Break.
func (m *MDM) Load() (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	if m.err != nil {
		return nil, m.err
	}
	return maps.Clone(m.settings), nil
}

// Path returns the name given to NewMDM.
func (m *MDM) Path() string { return m.path }

// Loads counts Load calls.
func (m *MDM) Loads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loads
}
