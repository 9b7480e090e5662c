package platform

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

// The Windows control channel is a named pipe (DefaultPipeName) whose
// security descriptor (pipeSDDL, ctl_pipe.go) lets every local user connect
// and only SYSTEM and Administrators create instances of it or change it;
// mutating calls are allowed by the caller's token (PeerCred).

var errConnRefused = windows.ERROR_PIPE_BUSY

// ListenControl listens on the control pipe at path. A pipe another live
// agent serves is an error, so two daemons never fight over one machine.
func ListenControl(path string) (net.Listener, error) {
	if err := checkPipeName(path); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	c, err := winio.DialPipeAccess(ctx, path, pipeClientAccess)
	cancel()
	if err == nil {
		c.Close()
		return nil, fmt.Errorf("control pipe %s is in use: another ztagent is running (stop it first, or pass --socket)", path)
	}
	ln, err := winio.ListenPipe(path, &winio.PipeConfig{SecurityDescriptor: pipeSDDL()})
	if err != nil {
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_PIPE_BUSY) {
			return nil, fmt.Errorf("control pipe %s is held by another process: %w", path, err)
		}
		return nil, fmt.Errorf("listen on control pipe %s: %w", path, err)
	}
	return ln, nil
}

// DialControl connects to the daemon's control pipe.
func DialControl(ctx context.Context, path string) (net.Conn, error) {
	if err := checkPipeName(path); err != nil {
		return nil, err
	}
	c, err := winio.DialPipeAccess(ctx, path, pipeClientAccess)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w (no control pipe %s)", ErrNotRunning, path)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("cannot open control pipe %s: permission denied", path)
		}
		return nil, err
	}
	return c, nil
}

// PeerCred returns the credentials of the client on the other end of the
// control pipe c, from the access token of its process.
func PeerCred(c net.Conn) (Cred, error) {
	if cc, ok := c.(*ControlConn); ok {
		c = cc.Conn
	}
	f, ok := c.(interface{ Fd() uintptr })
	if !ok {
		return Cred{UID: -1, PID: -1}, fmt.Errorf("control connection is %T, not a named pipe", c)
	}
	var pid uint32
	if err := windows.GetNamedPipeClientProcessId(windows.Handle(f.Fd()), &pid); err != nil {
		return Cred{UID: -1, PID: -1}, fmt.Errorf("the pipe client's process: %w", err)
	}
	cred, err := processCred(pid)
	if err != nil {
		return Cred{UID: -1, PID: int(pid)}, err
	}
	return cred, nil
}

// processCred reads the user, elevation and groups of process pid's token.
func processCred(pid uint32) (Cred, error) {
	p, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return Cred{}, fmt.Errorf("open process %d: %w", pid, err)
	}
	defer windows.CloseHandle(p)
	var tok windows.Token
	if err := windows.OpenProcessToken(p, windows.TOKEN_QUERY, &tok); err != nil {
		return Cred{}, fmt.Errorf("the token of process %d: %w", pid, err)
	}
	defer tok.Close()
	user, err := tok.GetTokenUser()
	if err != nil {
		return Cred{}, fmt.Errorf("the user of process %d: %w", pid, err)
	}
	tg, err := tok.GetTokenGroups()
	if err != nil {
		return Cred{}, fmt.Errorf("the groups of process %d: %w", pid, err)
	}
	var groups []tokenGroup
	for _, g := range tg.AllGroups() {
		groups = append(groups, tokenGroup{SID: g.Sid.String(), Enabled: g.Attributes&windows.SE_GROUP_ENABLED != 0})
	}
	sid := user.User.Sid.String()
	return Cred{UID: sidRID(sid), PID: int(pid), Admin: tokenIsAdmin(sid, tok.IsElevated(), groups)}, nil
}

// Descriptors are not counted on Windows: no reserve is kept for them.
func fileLimit() int               { return 0 }
func countOpenFiles() (int, error) { return 0, errors.ErrUnsupported }
func connFD(net.Conn) int          { return -1 }

// RaiseFileLimit does nothing on Windows, which has no such limit.
func RaiseFileLimit() (soft, hard uint64, err error) { return 0, 0, nil }
