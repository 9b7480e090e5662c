package platform

import (
	"sync"

	"github.com/godbus/dbus/v5"
	"go.uber.org/zap"
)

// resolvedWatch re-applies the agent's link configuration when
// systemd-resolved restarts: per-link settings live only in its memory, so a
// restarted resolved (an upgrade, a crash) would otherwise stop sending the
// agent's names to the agent. It owns one bus connection and one goroutine,
// from the first successful Set to Restore.
type resolvedWatch struct {
	conn *dbus.Conn
	wg   sync.WaitGroup
}

// startResolvedWatch calls resync each time resolved's bus name gets a new
// owner.
func startResolvedWatch(dial func() (*dbus.Conn, error), resync func(), log *zap.Logger) (*resolvedWatch, error) {
	conn, err := dial()
	if err != nil {
		return nil, err
	}
	err = conn.AddMatchSignal(
		dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, resolvedBusName),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	ch := make(chan *dbus.Signal, 8)
	conn.Signal(ch)
	w := &resolvedWatch{conn: conn}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		// The channel is closed when the connection is.
		for sig := range ch {
			if sig.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(sig.Body) != 3 {
				continue
			}
			name, _ := sig.Body[0].(string)
			owner, _ := sig.Body[2].(string)
			if name != resolvedBusName || owner == "" {
				continue // resolved left the bus; its return is what matters
			}
			log.Info("systemd-resolved restarted; configuring the link again")
			resync()
		}
	}()
	return w, nil
}

// stop closes the connection and waits for the goroutine. It must not be
// called with the configurator's lock held: resync takes it.
func (w *resolvedWatch) stop() {
	w.conn.Close()
	w.wg.Wait()
}
