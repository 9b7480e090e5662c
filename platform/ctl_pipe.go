package platform

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The pure half of the Windows control channel (ctl_windows.go), a named
// pipe: its security descriptor and the decision whether a client is an
// administrator, from what its token says. Tested on any OS.

// DefaultPipeName is the Windows control channel.
const DefaultPipeName = `\\.\pipe\ztagent`

// checkPipeName refuses a control channel path that is not a local named
// pipe: on Windows --socket names a pipe, not a file.
func checkPipeName(path string) error {
	const prefix = `\\.\pipe\`
	if len(path) <= len(prefix) || !strings.EqualFold(path[:len(prefix)], prefix) ||
		strings.ContainsAny(path[len(prefix):], `\/`) {
		return fmt.Errorf("control channel %q: on Windows it is a named pipe, %sNAME (default %s)",
			path, prefix, DefaultPipeName)
	}
	return nil
}

// Access rights of a pipe (winnt.h). For a pipe FILE_APPEND_DATA is
// FILE_CREATE_PIPE_INSTANCE: whoever has it can create an instance of the
// pipe and pose as the agent.
const (
	fileReadData           = 0x1
	fileWriteData          = 0x2
	fileCreatePipeInstance = 0x4
	fileReadEA             = 0x8
	fileWriteEA            = 0x10
	fileReadAttributes     = 0x80
	fileWriteAttributes    = 0x100
	accessDelete           = 0x10000
	readControl            = 0x20000
	writeDAC               = 0x40000
	writeOwner             = 0x80000
	synchronize            = 0x100000
	genericAll             = 0x10000000
	genericWrite           = 0x40000000
	genericRead            = 0x80000000

	fileGenericRead  = readControl | synchronize | fileReadData | fileReadAttributes | fileReadEA
	fileGenericWrite = readControl | synchronize | fileWriteData | fileCreatePipeInstance | fileWriteEA |
		fileWriteAttributes
	fileAllAccess = 0x1f01ff
)

// pipeEveryoneAccess is what every local user may do with the pipe: connect,
// read and write requests (read-only calls are open; mutating calls check the
// caller's token), but neither create an instance of it nor change its
// security (0x12019b).
const pipeEveryoneAccess = fileGenericRead | fileWriteData | fileWriteAttributes

// pipeClientAccess is what clients ask for when they open the pipe: within
// pipeEveryoneAccess, so that any user can (GENERIC_WRITE would ask for
// FILE_CREATE_PIPE_INSTANCE too, and be refused).
const pipeClientAccess = genericRead | fileWriteData

// Well-known SIDs.
const (
	sidSystem         = "S-1-5-18"
	sidAdministrators = "S-1-5-32-544"
)

// pipeSDDL is the pipe's security descriptor: a protected DACL that refuses
// network logons (a named pipe is reachable over SMB), gives SYSTEM and
// Administrators full control, and everyone else pipeEveryoneAccess.
func pipeSDDL() string {
	return fmt.Sprintf("D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)(A;;%#x;;;WD)", pipeEveryoneAccess)
}

// mapPipeGeneric maps the generic rights in mask to the pipe's specific
// rights, as the object manager does before an access check.
func mapPipeGeneric(mask uint32) uint32 {
	out := mask &^ (genericAll | genericRead | genericWrite)
	if mask&genericRead != 0 {
		out |= fileGenericRead
	}
	if mask&genericWrite != 0 {
		out |= fileGenericWrite
	}
	if mask&genericAll != 0 {
		out |= fileAllAccess
	}
	return out
}

// tokenGroup is a group of an access token and whether it is enabled (a
// UAC-filtered token holds Administrators for deny only).
type tokenGroup struct {
	SID     string
	Enabled bool
}

// tokenIsAdmin reports whether a client whose token has user SID user,
// elevation elevated and groups may make mutating calls: SYSTEM, or an
// elevated token with Administrators enabled. A member of Administrators
// who did not elevate is not one, as on Linux a user who did not sudo.
func tokenIsAdmin(user string, elevated bool, groups []tokenGroup) bool {
	if user == sidSystem {
		return true
	}
	return elevated && slices.Contains(groups, tokenGroup{SID: sidAdministrators, Enabled: true})
}

// sidRID is the relative ID (the last sub-authority) of a SID in string
// form, -1 when it has none.
func sidRID(sid string) int {
	parts := strings.Split(sid, "-")
	if len(parts) < 4 || parts[0] != "S" {
		return -1
	}
	rid, err := strconv.ParseUint(parts[len(parts)-1], 10, 32)
	if err != nil {
		return -1
	}
	return int(rid)
}
