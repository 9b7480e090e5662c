package platform

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ztagent/ztagent/platform/atomicfile"
)

// journal is a record, in the state directory, of a change the agent is about
// to make to the system: written (atomically, durably) before the change, and
// removed only once the system is back as it was. If the agent dies in
// between, the next start finds the journal and repairs the system first.
type journal struct {
	path string
}

func newJournal(stateDir, name string) (journal, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return journal{}, fmt.Errorf("state directory %s: %w", stateDir, err)
	}
	return journal{path: filepath.Join(stateDir, name)}, nil
}

// write durably replaces the journal with v.
func (j journal) write(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	if err := atomicfile.Write(j.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// read loads the journal into v. It reports false when there is none.
func (j journal) read(v any) (bool, error) {
	b, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("journal: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("journal %s is corrupt (%v); it records what to restore, so "+
			"inspect it, put the system back by hand, then delete it", j.path, err)
	}
	return true, nil
}

// clear removes the journal durably: the change it records is undone.
func (j journal) clear() error {
	if err := os.Remove(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	syncDir(filepath.Dir(j.path))
	return nil
}

// syncDir makes a rename or removal in dir durable (best effort).
func syncDir(dir string) { atomicfile.SyncDir(dir) }
