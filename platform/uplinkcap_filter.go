package platform

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
)

// The uplink capture's classic BPF program: Linux (SO_ATTACH_FILTER on a
// packet socket) and macOS (BIOCSETF on /dev/bpf) run the same one. It
// passes an IPv4 or IPv6 packet whose protocol is that of an endpoint and
// whose destination (outgoing) or source (incoming) address and port are
// the endpoint's, and drops everything else: other protocols, IPv4
// fragments after the first (no ports), IPv6 packets with extension headers
// before TCP or UDP.

// filterKeep is what the program returns for a packet it passes: the most
// of it that is kept (the capture cuts it to the snapshot length itself).
const filterKeep = 262144

// linkHeader is how a packet's IP header is reached on a link: after
// Offset bytes; when EtherType is set, the 16-bit EtherType ends the link
// header and names IPv4 (0x0800) or IPv6 (0x86dd).
type linkHeader struct {
	Offset    uint32
	EtherType bool
}

// Scratch memory: v4 proto, src, dst, sport, dport; v6 proto, src (4
// words), dst (4 words), sport, dport.
const (
	mProto         = 0
	m4Src, m4Dst   = 1, 2
	m4SPort, m4DPt = 3, 4
	m6Src, m6Dst   = 1, 5
	m6SPort, m6DPt = 9, 10
)

// ownTrafficFilter compiles the program for eps on link lh.
func ownTrafficFilter(eps []Endpoint, lh linkHeader) ([]bpf.RawInstruction, error) {
	var a bpfAsm
	v4, v6, drop := a.label(), a.label(), a.label()
	off := lh.Offset
	if lh.EtherType {
		a.emit(bpf.LoadAbsolute{Off: off - 2, Size: 2})
		a.jumpIf(bpf.JumpEqual, 0x0800, v4, -1)
		a.jumpIf(bpf.JumpEqual, 0x86dd, v6, drop)
	} else {
		a.emit(bpf.LoadAbsolute{Off: off, Size: 1})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
		a.jumpIf(bpf.JumpEqual, 4, v4, -1)
		a.jumpIf(bpf.JumpEqual, 6, v6, drop)
	}
	a.mark(v4)
	a.emit(bpf.LoadAbsolute{Off: off + 6, Size: 2})
	a.jumpIfSet(0x1fff, drop, -1) // a later fragment: no ports
	a.loadStore(bpf.LoadAbsolute{Off: off + 9, Size: 1}, mProto)
	a.loadStore(bpf.LoadAbsolute{Off: off + 12, Size: 4}, m4Src)
	a.loadStore(bpf.LoadAbsolute{Off: off + 16, Size: 4}, m4Dst)
	a.emit(bpf.LoadMemShift{Off: off})
	a.loadStore(bpf.LoadIndirect{Off: off, Size: 2}, m4SPort)
	a.loadStore(bpf.LoadIndirect{Off: off + 2, Size: 2}, m4DPt)
	for _, ep := range eps {
		if ep.Addr.Addr().Is4() {
			a.endpoint(ep, []int{m4Src}, []int{m4Dst}, m4SPort, m4DPt)
		}
	}
	a.emit(bpf.RetConstant{Val: 0})
	a.mark(v6)
	a.loadStore(bpf.LoadAbsolute{Off: off + 6, Size: 1}, mProto)
	for i := range 4 {
		a.loadStore(bpf.LoadAbsolute{Off: off + 8 + 4*uint32(i), Size: 4}, m6Src+i)
		a.loadStore(bpf.LoadAbsolute{Off: off + 24 + 4*uint32(i), Size: 4}, m6Dst+i)
	}
	a.loadStore(bpf.LoadAbsolute{Off: off + 40, Size: 2}, m6SPort)
	a.loadStore(bpf.LoadAbsolute{Off: off + 42, Size: 2}, m6DPt)
	for _, ep := range eps {
		if ep.Addr.Addr().Is6() {
			a.endpoint(ep, []int{m6Src, m6Src + 1, m6Src + 2, m6Src + 3}, []int{m6Dst, m6Dst + 1, m6Dst + 2, m6Dst + 3}, m6SPort, m6DPt)
		}
	}
	a.mark(drop)
	a.emit(bpf.RetConstant{Val: 0})
	return a.assemble()
}

// endpoint passes a packet of ep's protocol to ep (destination) or from it
// (source), given where the addresses' words and the ports are stored.
func (a *bpfAsm) endpoint(ep Endpoint, src, dst []int, sport, dport int) {
	next, fromIt, keep := a.label(), a.label(), a.label()
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: mProto})
	a.jumpIf(bpf.JumpEqual, uint32(ep.Proto), -1, next)
	ip := ep.Addr.Addr().AsSlice()
	words := func(slots []int, port int, fail int) {
		for i, n := range slots {
			a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: n})
			a.jumpIf(bpf.JumpEqual, binary.BigEndian.Uint32(ip[4*i:]), -1, fail)
		}
		a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: port})
		a.jumpIf(bpf.JumpEqual, uint32(ep.Addr.Port()), keep, fail)
	}
	words(dst, dport, fromIt)
	a.mark(fromIt)
	words(src, sport, next)
	a.mark(keep)
	a.emit(bpf.RetConstant{Val: filterKeep})
	a.mark(next)
}

// bpfAsm assembles a program with forward jumps to labels. A jump target of
// -1 is the next instruction.
type bpfAsm struct {
	ins    []bpf.Instruction
	at     []int // label → instruction index
	fixups []fixup
}

type fixup struct {
	pc              int
	onTrue, onFalse int // labels, -1: next
}

func (a *bpfAsm) label() int             { a.at = append(a.at, -1); return len(a.at) - 1 }
func (a *bpfAsm) mark(l int)             { a.at[l] = len(a.ins) }
func (a *bpfAsm) emit(i bpf.Instruction) { a.ins = append(a.ins, i) }

func (a *bpfAsm) loadStore(load bpf.Instruction, slot int) {
	a.emit(load)
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: slot})
}

func (a *bpfAsm) jumpIf(cond bpf.JumpTest, val uint32, t, f int) {
	a.fixups = append(a.fixups, fixup{pc: len(a.ins), onTrue: t, onFalse: f})
	a.emit(bpf.JumpIf{Cond: cond, Val: val})
}

func (a *bpfAsm) jumpIfSet(mask uint32, t, f int) { a.jumpIf(bpf.JumpBitsSet, mask, t, f) }

// assemble resolves the jumps. A conditional jump reaches 255
// instructions: one that must go further is made a conditional jump over
// two unconditional ones (which reach any), and the layout is done again,
// until every jump fits.
func (a *bpfAsm) assemble() ([]bpf.RawInstruction, error) {
	fix := make(map[int]fixup, len(a.fixups))
	for _, f := range a.fixups {
		fix[f.pc] = f
	}
	target := func(l, pc int) int {
		if l < 0 {
			return pc + 1
		}
		return a.at[l]
	}
	long := make(map[int]bool)
	newPC := make([]int, len(a.ins)+1)
	for changed := true; changed; {
		n := 0
		for pc := range a.ins {
			newPC[pc] = n
			n++
			if long[pc] {
				n += 2
			}
		}
		newPC[len(a.ins)] = n
		changed = false
		for pc, f := range fix {
			if !long[pc] && (newPC[target(f.onTrue, pc)]-newPC[pc]-1 > 255 || newPC[target(f.onFalse, pc)]-newPC[pc]-1 > 255) {
				long[pc], changed = true, true
			}
		}
	}
	if n := newPC[len(a.ins)]; n > 4096 {
		return nil, fmt.Errorf("capture filter: %d instructions, more than the 4096 the kernels take", n)
	}
	out := make([]bpf.Instruction, 0, newPC[len(a.ins)])
	for pc, in := range a.ins {
		f, ok := fix[pc]
		if !ok {
			out = append(out, in)
			continue
		}
		j := in.(bpf.JumpIf)
		t, e := newPC[target(f.onTrue, pc)], newPC[target(f.onFalse, pc)]
		if !long[pc] {
			at := newPC[pc] + 1
			out = append(out, bpf.JumpIf{Cond: j.Cond, Val: j.Val, SkipTrue: uint8(t - at), SkipFalse: uint8(e - at)})
			continue
		}
		at := newPC[pc]
		out = append(out, bpf.JumpIf{Cond: j.Cond, Val: j.Val, SkipTrue: 0, SkipFalse: 1},
			bpf.Jump{Skip: uint32(t - (at + 2))}, bpf.Jump{Skip: uint32(e - (at + 3))})
	}
	return bpf.Assemble(out)
}
