//go:build !unix

package dnsproxy

import "net"

// upReader reads the answers of one upstream socket into a buffer of its
// own (see upread_unix.go for the systems where the buffer is taken only
// while a packet is there to be read).
type upReader struct {
	conn *net.UDPConn
	buf  []byte
}

func newUpReader(conn *net.UDPConn) *upReader {
	return &upReader{conn: conn}
}

// read returns the next packet, valid until release.
func (r *upReader) read() ([]byte, error) {
	if r.buf == nil {
		bp := readBufs.Get().(*[]byte)
		r.buf = *bp
	}
	n, err := r.conn.Read(r.buf)
	if err != nil {
		b := r.buf
		r.buf = nil
		readBufs.Put(&b)
		return nil, err
	}
	return r.buf[:n], nil
}

func (r *upReader) release() {}
