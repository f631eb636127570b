//go:build linux

package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Layout of the TPACKET_V3 ring (include/uapi/linux/if_packet.h).
const (
	blockStatusOff   = 8  // tpacket_block_desc.hdr.bh1.block_status
	blockNumPktsOff  = 12 // .num_pkts
	blockFirstPktOff = 16 // .offset_to_first_pkt

	hdrNextOff    = 0 // tpacket3_hdr.tp_next_offset
	hdrSecOff     = 4
	hdrNsecOff    = 8
	hdrSnaplenOff = 12
	hdrLenOff     = 16
	hdrStatusOff  = 20
	hdrMacOff     = 24
	hdrSize       = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): sockaddr_ll follows

	sllProtocolOff = hdrSize + 2
	sllIfindexOff  = hdrSize + 4
	sllHatypeOff   = hdrSize + 8
	sllPkttypeOff  = hdrSize + 10

	tpStatusUser         = 1
	tpStatusCsumNotReady = 1 << 3
	tpStatusCsumValid    = 1 << 7

	arphrdLoopback = 772
)

// ringPacket is one packet in the ring; Data points into the ring and is
// valid until the block is released.
type ringPacket struct {
	Data     []byte
	Len      int // tp_len: the packet's length from the network header
	Time     time.Time
	Protocol uint16 // sll_protocol (ethertype)
	Ifindex  int
	Outgoing bool // PACKET_OUTGOING
	Loopback bool // ARPHRD_LOOPBACK
	CsumOK   bool // TP_STATUS_CSUM_VALID or TP_STATUS_CSUMNOTREADY
}

// ring is one AF_PACKET socket with its TPACKET_V3 receive ring.
type ring struct {
	fd        int
	mem       []byte
	blockSize int
	nblocks   int
	cur       int // block being read
	pkt       int // packets of the current block consumed
	off       int // offset in the block of the next packet
	inBlock   bool
	drops     uint64
	packets   uint64
}

// openRing opens a SOCK_DGRAM packet socket, attaches prog (if any) before
// binding it to ifindex (0 = all interfaces), and maps its ring of nblocks
// blocks of blockSize bytes.
func openRing(ifindex, blockSize, nblocks int, prog []Instruction) (r *ring, err error) {
	// Protocol 0: no packet is queued before the filter and bind are in place.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("open AF_PACKET socket: %w", ErrPermission)
		}
		return nil, fmt.Errorf("open AF_PACKET socket: %w", err)
	}
	r = &ring{fd: fd, blockSize: blockSize, nblocks: nblocks}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("set TPACKET_V3: %w", err)
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(blockSize),
		Block_nr:       uint32(nblocks),
		Frame_size:     2048,
		Frame_nr:       uint32(blockSize / 2048 * nblocks),
		Retire_blk_tov: 10, // ms: a quiet link still hands over what it has
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("set up %d MiB packet ring: %w", blockSize*nblocks>>20, err)
	}
	r.mem, err = unix.Mmap(fd, 0, blockSize*nblocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("map packet ring: %w", err)
	}
	if len(prog) > 0 {
		p := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &p); err != nil {
			return nil, fmt.Errorf("attach capture filter: %w", err)
		}
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind packet socket to interface %d: %w", ifindex, err)
	}
	return r, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (r *ring) close() {
	if r.mem != nil {
		_ = unix.Munmap(r.mem)
		r.mem = nil
	}
	if r.fd >= 0 {
		_ = unix.Close(r.fd)
		r.fd = -1
	}
}

func (r *ring) block(i int) []byte { return r.mem[i*r.blockSize : (i+1)*r.blockSize] }

func (r *ring) status(b []byte) *uint32 {
	return (*uint32)(unsafe.Pointer(&b[blockStatusOff]))
}

// next returns the next packet, or false when the ring holds no ready block.
func (r *ring) next(p *ringPacket) bool {
	for {
		b := r.block(r.cur)
		if !r.inBlock {
			if atomic.LoadUint32(r.status(b))&tpStatusUser == 0 {
				return false
			}
			r.inBlock = true
			r.pkt = 0
			r.off = int(binary.NativeEndian.Uint32(b[blockFirstPktOff:]))
		}
		if r.pkt >= int(binary.NativeEndian.Uint32(b[blockNumPktsOff:])) || r.off+hdrSize+20 > len(b) {
			r.release()
			continue
		}
		h := b[r.off:]
		snap := int(binary.NativeEndian.Uint32(h[hdrSnaplenOff:]))
		mac := int(binary.NativeEndian.Uint16(h[hdrMacOff:]))
		if mac+snap > len(h) {
			r.release() // a corrupt header: skip the rest of the block
			continue
		}
		status := binary.NativeEndian.Uint32(h[hdrStatusOff:])
		p.Data = h[mac : mac+snap]
		p.Len = int(binary.NativeEndian.Uint32(h[hdrLenOff:]))
		p.Time = time.Unix(int64(binary.NativeEndian.Uint32(h[hdrSecOff:])), int64(binary.NativeEndian.Uint32(h[hdrNsecOff:])))
		p.Protocol = uint16(h[sllProtocolOff])<<8 | uint16(h[sllProtocolOff+1])
		p.Ifindex = int(int32(binary.NativeEndian.Uint32(h[sllIfindexOff:])))
		p.Loopback = binary.NativeEndian.Uint16(h[sllHatypeOff:]) == arphrdLoopback
		p.Outgoing = h[sllPkttypeOff] == unix.PACKET_OUTGOING
		p.CsumOK = status&(tpStatusCsumValid|tpStatusCsumNotReady) != 0
		r.pkt++
		next := int(binary.NativeEndian.Uint32(h[hdrNextOff:]))
		if next == 0 {
			r.pkt = int(^uint(0) >> 1) // last packet of the block
		}
		r.off += next
		return true
	}
}

// release hands the current block back to the kernel.
func (r *ring) release() {
	if r.inBlock {
		atomic.StoreUint32(r.status(r.block(r.cur)), 0) // TP_STATUS_KERNEL
		r.inBlock = false
		r.cur = (r.cur + 1) % r.nblocks
	}
}

// ready reports whether the next block is the user's.
func (r *ring) ready() bool {
	return r.inBlock || atomic.LoadUint32(r.status(r.block(r.cur)))&tpStatusUser != 0
}

// readStats adds the socket's counters since the last call (reading clears
// them in the kernel).
func (r *ring) readStats() error {
	st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return fmt.Errorf("read packet socket statistics: %w", err)
	}
	r.packets += uint64(st.Packets)
	r.drops += uint64(st.Drops)
	return nil
}
