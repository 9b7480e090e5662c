package macpkg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"path"
)

// A BOM ("bill of materials", a BOMStore file) lists what a component
// package installs: for each path its type, mode, owner, modification time,
// size and POSIX cksum. Installer uses it to lay out and later to report the
// receipt (pkgutil --files, lsbom). The store is a set of numbered blocks —
// a 512-byte header, the blocks, a table of (offset, length) per block
// number and a table of named variables pointing at blocks — all numbers
// big-endian. The variables are BomInfo, Paths (a B+ tree whose keys are
// (parent id, name) and whose values point at each path's attributes),
// HLIndex (hard links), VIndex and Size64, the last three empty here.

const (
	bomHeaderSize   = 512
	bomPathsBlock   = 4096 // node size of the Paths and HLIndex trees
	bomSmallBlock   = 128  // node size of the VIndex and Size64 trees
	bomTypeFile     = 1
	bomTypeDir      = 2
	bomMaxLeafPaths = (bomPathsBlock - 12) / 8
)

// bomStore collects blocks; block 0 is the null block.
type bomStore struct {
	blocks [][]byte
	vars   []bomVar
}

type bomVar struct {
	name  string
	block uint32
}

func (s *bomStore) add(b []byte) uint32 {
	if len(s.blocks) == 0 {
		s.blocks = append(s.blocks, nil)
	}
	s.blocks = append(s.blocks, b)
	return uint32(len(s.blocks) - 1)
}

// be builds a big-endian block from fixed-size values and byte strings.
func be(vals ...any) []byte {
	var b bytes.Buffer
	for _, v := range vals {
		if s, ok := v.([]byte); ok {
			b.Write(s)
			continue
		}
		binary.Write(&b, binary.BigEndian, v)
	}
	return b.Bytes()
}

func padTo(b []byte, n int) []byte {
	if len(b) < n {
		b = append(b, make([]byte, n-len(b))...)
	}
	return b
}

// tree adds an empty B+ tree (one empty leaf) or, with leaf, one holding
// count entries, and returns the tree's block.
func (s *bomStore) tree(nodeSize int, leaf []byte, count uint32) uint32 {
	node := s.add(padTo(be(uint16(1), uint16(count), uint32(0), uint32(0), leaf), nodeSize))
	return s.add(be([]byte("tree"), uint32(1), node, uint32(nodeSize), count, uint8(0)))
}

// writeBOM writes the BOM of entries (each directory before what it holds,
// "." first).
func writeBOM(w io.Writer, entries []entry) error {
	if len(entries) > bomMaxLeafPaths {
		return fmt.Errorf("bom: %d paths do not fit one tree node", len(entries))
	}
	s := &bomStore{}
	ids := map[string]uint32{}
	var leaf bytes.Buffer
	for i, e := range entries {
		id := uint32(i + 1)
		clean := path.Clean(e.name) // "." and "usr/local/bin"
		ids[clean] = id
		parent, name := uint32(0), "."
		if clean != "." {
			p, ok := ids[path.Dir(clean)]
			if !ok {
				return fmt.Errorf("bom: %s comes before its directory", e.name)
			}
			parent, name = p, path.Base(clean)
		}
		typ, size, sum := uint8(bomTypeFile), uint32(len(e.data)), cksum(e.data)
		if e.isDir() {
			typ, size, sum = bomTypeDir, 0, 0
		}
		// type, 1, architecture, mode, uid, gid, mtime, size, 1, cksum, link name length
		info2 := s.add(be(typ, uint8(1), uint16(0), uint16(e.mode), e.uid, e.gid, uint32(e.mtime),
			size, uint8(1), sum, uint32(0)))
		info1 := s.add(be(id, info2))
		key := s.add(be(parent, []byte(name), uint8(0)))
		leaf.Write(be(info1, key))
	}
	s.vars = []bomVar{
		{"BomInfo", s.add(be(uint32(1), uint32(len(entries)), uint32(0)))},
		{"Paths", s.tree(bomPathsBlock, leaf.Bytes(), uint32(len(entries)))},
		{"HLIndex", s.tree(bomPathsBlock, nil, 0)},
	}
	vtree := s.tree(bomSmallBlock, nil, 0)
	s.vars = append(s.vars,
		bomVar{"VIndex", s.add(be(uint32(1), vtree, uint32(0), uint8(0)))},
		bomVar{"Size64", s.tree(bomSmallBlock, nil, 0)})
	return s.write(w)
}

// write lays out the header, the blocks, the variables and the block table.
func (s *bomStore) write(w io.Writer) error {
	var body bytes.Buffer
	body.Write(make([]byte, bomHeaderSize))
	ptrs := make([][2]uint32, len(s.blocks))
	for i, b := range s.blocks {
		if i == 0 {
			continue
		}
		ptrs[i] = [2]uint32{uint32(body.Len()), uint32(len(b))}
		body.Write(b)
	}
	varsOff := body.Len()
	binary.Write(&body, binary.BigEndian, uint32(len(s.vars)))
	for _, v := range s.vars {
		body.Write(be(v.block, uint8(len(v.name)), []byte(v.name)))
	}
	varsLen := body.Len() - varsOff
	indexOff := body.Len()
	binary.Write(&body, binary.BigEndian, uint32(len(ptrs)))
	for _, p := range ptrs {
		body.Write(be(p[0], p[1]))
	}
	body.Write(be(uint32(2), uint64(0), uint64(0))) // the free list: two empty entries
	indexLen := body.Len() - indexOff
	out := body.Bytes()
	copy(out, be([]byte("BOMStore"), uint32(1), uint32(len(s.blocks)-1),
		uint32(indexOff), uint32(indexLen), uint32(varsOff), uint32(varsLen)))
	_, err := w.Write(out)
	return err
}

// cksum is the POSIX cksum of data: CRC-32 with polynomial 0x04C11DB7, most
// significant bit first, over the data and then its length (least
// significant byte first, as few bytes as it needs), inverted.
func cksum(data []byte) uint32 {
	var crc uint32
	for _, b := range data {
		crc = crc<<8 ^ cksumTable[byte(crc>>24)^b]
	}
	for n := len(data); n > 0; n >>= 8 {
		crc = crc<<8 ^ cksumTable[byte(crc>>24)^byte(n)]
	}
	return ^crc
}

var cksumTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()
