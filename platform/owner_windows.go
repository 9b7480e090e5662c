package platform

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/windows"
)

// NewOwnerLookup returns the Windows lookup: the owning PID from the IP helper
// tables (GetExtendedTcpTable, GetExtendedUdpTable), then the image path from
// QueryFullProcessImageNameW. AppID stays "": packaged (MSIX/UWP) apps have a
// package family name (GetPackageFamilyName) that is not read yet.
func NewOwnerLookup(log *zap.Logger) OwnerLookup {
	return &winOwners{log: log.Named("owner"), owners: newTTLCache[int, Owner](ownerTTL, ownerCacheSize)}
}

var (
	modiphlpapi             = windows.NewLazySystemDLL("iphlpapi.dll")
	procGetExtendedTcpTable = modiphlpapi.NewProc("GetExtendedTcpTable")
	procGetExtendedUdpTable = modiphlpapi.NewProc("GetExtendedUdpTable")
)

// TCP_TABLE_CLASS and UDP_TABLE_CLASS values (iprtrmib.h).
const (
	tcpTableOwnerPIDAll = 5
	udpTableOwnerPID    = 1
)

type winOwners struct {
	log    *zap.Logger
	owners *ttlCache[int, Owner]
}

// Lookup implements OwnerLookup. An IPv4 flow may belong to a dual-stack
// socket listed in the IPv6 table, so both are searched for it.
func (w *winOwners) Lookup(proto string, local, remote netip.AddrPort) (Owner, error) {
	m, err := newSockMatcher(proto, local, remote)
	if err != nil {
		return Owner{}, err
	}
	families := []bool{true} // v6
	if m.local.Addr().Is4() {
		families = []bool{false, true}
	}
	var best sockRow
	bestRank := rankNone
	for _, v6 := range families {
		b, err := extendedTable(m.udp, v6)
		if err != nil {
			return Owner{}, fmt.Errorf("socket owner: %w", err)
		}
		rows, err := parseWinTable(b, m.udp, v6)
		if err != nil {
			return Owner{}, fmt.Errorf("socket owner: %w", err)
		}
		if row, ok := m.bestRow(rows); ok {
			if k := m.rank(row.Local, row.Remote); k > bestRank {
				best, bestRank = row, k
			}
		}
		if bestRank == m.best() {
			break
		}
	}
	// PID 0 owns sockets in TIME_WAIT: no process.
	if bestRank == rankNone || best.PID == 0 {
		return Owner{}, fmt.Errorf("%w: no %s socket at %v", ErrOwnerNotFound, proto, local)
	}
	return w.owner(best.PID), nil
}

// extendedTable fetches one table, growing the buffer while connections are
// added between the size query and the copy.
func extendedTable(udp, v6 bool) ([]byte, error) {
	proc, class := procGetExtendedTcpTable, uintptr(tcpTableOwnerPIDAll)
	if udp {
		proc, class = procGetExtendedUdpTable, udpTableOwnerPID
	}
	af := uintptr(windows.AF_INET)
	if v6 {
		af = windows.AF_INET6
	}
	size := uint32(16 << 10)
	for range 8 {
		// []uint32 for the DWORD alignment the API expects.
		buf := make([]uint32, (size+3)/4)
		r, _, _ := proc.Call(uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0, af, class, 0)
		switch windows.Errno(r) {
		case 0:
			return unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(buf)*4), nil
		case windows.ERROR_INSUFFICIENT_BUFFER:
			size += size / 4
			continue
		default:
			return nil, fmt.Errorf("%s: %w", proc.Name, windows.Errno(r))
		}
	}
	return nil, fmt.Errorf("%s: table keeps growing", proc.Name)
}

// owner names pid. A process the agent may not open (protected processes) is
// still its socket's owner: the PID alone is returned.
func (w *winOwners) owner(pid int) Owner {
	if o, ok := w.owners.get(pid); ok {
		return o
	}
	o := Owner{PID: pid, UID: -1}
	if pid == 4 {
		o.Process = "System" // the kernel: no image path
	} else if path, err := imagePath(uint32(pid)); err != nil {
		w.log.Debug("cannot name process", zap.Int("pid", pid), zap.Error(err))
	} else {
		o.Path, o.Process = path, windowsProcessName(path)
	}
	w.owners.put(pid, o)
	return o
}

func imagePath(pid uint32) (string, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return "", err
	}
	defer windows.CloseHandle(h)
	for n := uint32(windows.MAX_PATH); n <= 1<<15; n *= 4 {
		buf := make([]uint16, n)
		size := n
		err := windows.QueryFullProcessImageName(h, 0, &buf[0], &size)
		if err == nil {
			return windows.UTF16ToString(buf[:size]), nil
		}
		if !errors.Is(err, windows.ERROR_INSUFFICIENT_BUFFER) {
			return "", err
		}
	}
	return "", errors.New("image path too long")
}
