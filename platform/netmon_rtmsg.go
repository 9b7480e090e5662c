package platform

// The routing socket's message types that may change a connection's path
// (<net/route.h>; the same values on macOS and the BSDs).
const (
	rtmAdd     = 0x1
	rtmDelete  = 0x2
	rtmChange  = 0x3
	rtmNewAddr = 0xc
	rtmDelAddr = 0xd
	rtmIfInfo  = 0xe
)

// routeMessageMatters reads the header every routing-socket message starts
// with (u16 length, u8 version, u8 type) and tells whether the message may
// change a path. Lookups (RTM_GET), misses and the like do not; a message
// too short to have a type does not either.
func routeMessageMatters(msg []byte) bool {
	if len(msg) < 4 {
		return false
	}
	switch msg[3] {
	case rtmAdd, rtmDelete, rtmChange, rtmNewAddr, rtmDelAddr, rtmIfInfo:
		return true
	}
	return false
}
