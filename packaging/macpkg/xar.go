package macpkg

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"time"
)

// xar is the archive a flat package is: a 28-byte big-endian header, a
// zlib-compressed XML table of contents, then the heap. The heap begins with
// the SHA-1 of the compressed TOC (which the TOC's <checksum> points at);
// each file's data follows, stored as is, with its offset, length and SHA-1
// in the TOC.

// xarNode is a file or a directory of the archive.
type xarNode struct {
	name     string
	data     []byte     // a file's contents
	children []*xarNode // a directory's entries; nil for a file
	dir      bool
}

const (
	xarMagic      = 0x78617221 // "xar!"
	xarHeaderSize = 28
	xarVersion    = 1
	xarSHA1       = 1 // checksum algorithm
)

// TOC elements, as the xar format names them.
type (
	xarDoc struct {
		XMLName xml.Name `xml:"xar"`
		TOC     xarTOC   `xml:"toc"`
	}
	xarTOC struct {
		Checksum     xarChecksum `xml:"checksum"`
		CreationTime string      `xml:"creation-time"`
		Files        []*xarFile  `xml:"file"`
	}
	xarChecksum struct {
		Style  string `xml:"style,attr"`
		Offset int64  `xml:"offset"`
		Size   int64  `xml:"size"`
	}
	xarFile struct {
		ID    int        `xml:"id,attr"`
		Name  string     `xml:"name"`
		Type  string     `xml:"type"`
		Mode  string     `xml:"mode"`
		UID   int        `xml:"uid"`
		GID   int        `xml:"gid"`
		User  string     `xml:"user"`
		Group string     `xml:"group"`
		MTime string     `xml:"mtime"`
		Data  *xarData   `xml:"data,omitempty"`
		Files []*xarFile `xml:"file"`
	}
	xarData struct {
		Length    int64     `xml:"length"`
		Offset    int64     `xml:"offset"`
		Size      int64     `xml:"size"`
		Encoding  xarStyle  `xml:"encoding"`
		Extracted xarDigest `xml:"extracted-checksum"`
		Archived  xarDigest `xml:"archived-checksum"`
	}
	xarStyle struct {
		Style string `xml:"style,attr"`
	}
	xarDigest struct {
		Style string `xml:"style,attr"`
		Value string `xml:",chardata"`
	}
)

// writeXAR writes nodes (the archive's top level) to w.
func writeXAR(w io.Writer, nodes []*xarNode, mtime time.Time) error {
	stamp := mtime.UTC().Format("2006-01-02T15:04:05Z")
	var heap bytes.Buffer
	heap.Write(make([]byte, sha1.Size)) // the TOC's checksum, filled in below
	id := 0
	var add func(n *xarNode) *xarFile
	add = func(n *xarNode) *xarFile {
		id++
		f := &xarFile{ID: id, Name: n.name, Type: "file", Mode: "0644", User: "root", Group: "wheel", MTime: stamp}
		if n.dir {
			f.Type, f.Mode = "directory", "0755"
			for _, c := range n.children {
				f.Files = append(f.Files, add(c))
			}
			return f
		}
		sum := sha1.Sum(n.data)
		f.Data = &xarData{
			Length: int64(len(n.data)), Offset: int64(heap.Len()), Size: int64(len(n.data)),
			Encoding:  xarStyle{"application/octet-stream"},
			Extracted: xarDigest{"sha1", hex.EncodeToString(sum[:])},
			Archived:  xarDigest{"sha1", hex.EncodeToString(sum[:])},
		}
		heap.Write(n.data)
		return f
	}
	doc := xarDoc{TOC: xarTOC{Checksum: xarChecksum{Style: "sha1", Offset: 0, Size: sha1.Size}, CreationTime: stamp}}
	for _, n := range nodes {
		doc.TOC.Files = append(doc.TOC.Files, add(n))
	}
	toc, err := xml.MarshalIndent(doc, "", " ")
	if err != nil {
		return fmt.Errorf("xar: %w", err)
	}
	toc = append([]byte(xml.Header), toc...)
	var ztoc bytes.Buffer
	zw := zlib.NewWriter(&ztoc)
	zw.Write(toc)
	if err := zw.Close(); err != nil {
		return fmt.Errorf("xar: %w", err)
	}
	sum := sha1.Sum(ztoc.Bytes())
	copy(heap.Bytes(), sum[:])

	hdr := make([]byte, xarHeaderSize)
	binary.BigEndian.PutUint32(hdr[0:], xarMagic)
	binary.BigEndian.PutUint16(hdr[4:], xarHeaderSize)
	binary.BigEndian.PutUint16(hdr[6:], xarVersion)
	binary.BigEndian.PutUint64(hdr[8:], uint64(ztoc.Len()))
	binary.BigEndian.PutUint64(hdr[16:], uint64(len(toc)))
	binary.BigEndian.PutUint32(hdr[24:], xarSHA1)
	for _, b := range [][]byte{hdr, ztoc.Bytes(), heap.Bytes()} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
