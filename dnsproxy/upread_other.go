//go:build !unix

package dnsproxy

import "net"

// upReader reads the answers of one upstream socket into a buffer of its
// own (see upread_unix.go for the systems where the buffer is taken only
// while a packet is there to be read).
type upReader struct {
	conn *net.UDPConn
	bp   *[]byte // from readBufs, given back when the socket fails
}

func newUpReader(conn *net.UDPConn) *upReader {
	return &upReader{conn: conn}
}

// read returns the next packet, valid until release.
func (r *upReader) read() ([]byte, error) {
	if r.bp == nil {
		r.bp = readBufs.Get().(*[]byte)
	}
	n, err := r.conn.Read(*r.bp)
	if err != nil {
		readBufs.Put(r.bp)
		r.bp = nil
		return nil, err
	}
	return (*r.bp)[:n], nil
}

func (r *upReader) release() {}
