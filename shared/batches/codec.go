package batches

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"runtime"
	"slices"

	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/shared/parallel"
)

// Version is the format version this package writes and reads (2: token
// ids may be escaped, see the record layout).
const Version = 2

// Format names this encoding, at Version, wherever an event says how its
// batch files are encoded (DatasetTokenized.Format, TrainJob.Format): the
// tokenizer stage writes it and a stage that reads batch files refuses any
// other name.
const Format = "eft-batches/v2"

const (
	headerSize = 20
	footerSize = 28
	indexEntry = 16
)

var (
	magic       = [8]byte{'E', 'F', 'T', 'B', 'A', 'T', 'C', 'H'}
	footerMagic = [8]byte{'E', 'F', 'T', 'B', 'E', 'N', 'D', '!'}
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
)

// ErrCorrupt is wrapped by every error about a damaged or foreign file.
var ErrCorrupt = errors.New("corrupt batch file")

// escapedIDs is the token code of escaped ids (record layout), and escape
// the two bytes that say four bytes of id follow.
const (
	escapedIDs = 1
	escape     = 0xFFFF
)

// Limits on what a record may claim, so a damaged file cannot make the
// reader allocate without bound.
const (
	maxRows  = 1 << 12 // rows per micro-batch
	maxWidth = 1 << 20 // tokens per row
	maxCells = 1 << 24 // rows × width (192 MiB of int32 arrays once decoded)
)

// Writer appends micro-batches to a batch file.
type Writer struct {
	w      io.Writer
	pad    int32
	offset uint64
	index  []byte
	count  uint64
	buf    []byte
	rows   [][]recordSample // Write's scratch
	err    error
}

// NewWriter writes the header; padTokenID fills rows past their length
// when reading.
func NewWriter(w io.Writer, padTokenID int32) (*Writer, error) {
	h := make([]byte, headerSize)
	copy(h, magic[:])
	binary.LittleEndian.PutUint16(h[8:], Version)
	binary.LittleEndian.PutUint16(h[10:], 0)
	binary.LittleEndian.PutUint32(h[12:], uint32(padTokenID))
	binary.LittleEndian.PutUint32(h[16:], crc32.Checksum(h[:16], castagnoli))
	if _, err := w.Write(h); err != nil {
		return nil, err
	}
	return &Writer{w: w, pad: padTokenID, offset: headerSize}, nil
}

// Write appends one micro-batch. Its padding must be the writer's pad token
// and its position ids must restart per sample (what packing.Build makes);
// Write refuses a batch it could not give back exactly.
func (w *Writer) Write(mb packing.MicroBatch) error {
	if w.err != nil {
		return w.err
	}
	data, rows, err := encodeRecord(w.buf[:0], mb, w.pad, w.rows)
	w.rows = rows
	if err != nil {
		return fmt.Errorf("batches: micro-batch %d: %w", w.count, err)
	}
	w.buf = data
	return w.writeRecord(data, crc32.Checksum(data, castagnoli))
}

// writeRecord appends an encoded record and its index entry (crc is the
// record's CRC-32C, computed where the record was encoded: WriteBatches'
// single writer is its bottleneck).
func (w *Writer) writeRecord(data []byte, crc uint32) error {
	if w.err != nil {
		return w.err
	}
	if _, err := w.w.Write(data); err != nil {
		w.err = err
		return err
	}
	w.index = binary.LittleEndian.AppendUint64(w.index, w.offset)
	w.index = binary.LittleEndian.AppendUint32(w.index, uint32(len(data)))
	w.index = binary.LittleEndian.AppendUint32(w.index, crc)
	w.offset += uint64(len(data))
	w.count++
	return nil
}

// WriteBatches encodes and appends every micro-batch of a packing: the
// same bytes as Write of each of packing.Build's micro-batches in turn, but
// encoded straight from the packed samples (never laid out into
// rows × width arrays) on workers goroutines (0: GOMAXPROCS) rather than
// on one core from a slice of them all. The packing's pad token must be the
// writer's.
func (w *Writer) WriteBatches(p *packing.Batches, workers int) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if pad := p.PadTokenID(); pad != w.pad {
		return fmt.Errorf("batches: the micro-batches are padded with token %d, the file's pad token is %d", pad, w.pad)
	}
	type slot struct {
		data []byte
		crc  uint32
		err  error
	}
	// A window of slots is encoded at once, then written in order by a
	// goroutine of its own while the next window is encoded into the other
	// set of slots: a file's writes can cost the kernel as much as the
	// encoding.
	var windows [2][]slot
	for i := range windows {
		windows[i] = make([]slot, 8*workers)
	}
	size := len(windows[0])
	scratch := make([][][]recordSample, workers)
	written := make(chan error, 1)
	writing := false
	waitWritten := func() error {
		if !writing {
			return nil
		}
		writing = false
		return <-written
	}
	for base, cur := 0, 0; base < p.Len(); base, cur = base+size, 1-cur {
		slots := windows[cur]
		k := min(size, p.Len()-base)
		parallel.Chunks(k, 1, workers, func(worker, j, _ int) bool {
			rows, width := groupRows(scratch[worker], p, base+j)
			scratch[worker] = rows
			s := &slots[j]
			if data, err := encodeRows(s.data[:0], width, rows); err != nil {
				s.err = err
			} else {
				s.data, s.crc, s.err = data, crc32.Checksum(data, castagnoli), nil
			}
			return true
		})
		if err := waitWritten(); err != nil {
			return err
		}
		for j := range k {
			if err := slots[j].err; err != nil {
				return fmt.Errorf("batches: micro-batch %d: %w", base+j, err)
			}
		}
		writing = true
		go func() {
			var err error
			for j := range k {
				if err = w.writeRecord(slots[j].data, slots[j].crc); err != nil {
					break
				}
			}
			written <- err
		}()
	}
	return waitWritten()
}

// Count is the number of micro-batches written so far.
func (w *Writer) Count() int { return int(w.count) }

// Close writes the index and footer. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	f := make([]byte, footerSize)
	binary.LittleEndian.PutUint64(f[0:], w.offset)
	binary.LittleEndian.PutUint64(f[8:], w.count)
	binary.LittleEndian.PutUint32(f[16:], crc32.Checksum(w.index, castagnoli))
	copy(f[20:], footerMagic[:])
	if _, err := w.w.Write(w.index); err != nil {
		return err
	}
	_, err := w.w.Write(f)
	w.err = errors.New("batches: writer closed")
	return err
}

// Record layout:
//
//	rows u32 | width u32 | token code u8 | label mode u8 (0 mask, 1 full)
//	per row: length u32 | samples u32
//	per sample (all rows in order): id u32 | length u32
//	tokens: Σ lengths ids, by the token code: 2, 3 or 4 bytes each, or
//	        (escapedIDs) 2 bytes each, 0xFFFF then 4 bytes for an id >= 0xFFFF
//	labels: mask bits (LSB first, padded to a byte) or Σ lengths × i32
//
// The writer takes the smallest: a Llama-3 text has ~3 % of its ids above
// 65535, so escaped ids take ~2.1 bytes each where three would be needed.
//
// encodeRecord checks that mb's padding and position ids are what the
// record rebuilds, then encodes its rows' samples (encodeRows); rows is
// scratch for that, returned for reuse.
func encodeRecord(dst []byte, mb packing.MicroBatch, pad int32, rows [][]recordSample) ([]byte, [][]recordSample, error) {
	if mb.Rows < 0 || mb.Rows > maxRows || mb.Width < 0 || mb.Width > maxWidth {
		return nil, rows, fmt.Errorf("rows %d × width %d out of range", mb.Rows, mb.Width)
	}
	n := mb.Rows * mb.Width
	if len(mb.InputIDs) != n || len(mb.Labels) != n || len(mb.PositionIDs) != n ||
		len(mb.RowLengths) != mb.Rows || len(mb.Boundaries) != mb.Rows || len(mb.SampleIDs) != mb.Rows {
		return nil, rows, errors.New("array sizes do not match rows × width")
	}
	rows = resizeRecordRows(rows, mb.Rows)
	for r := range mb.Rows {
		length := int(mb.RowLengths[r])
		b := mb.Boundaries[r]
		if length < 0 || length > mb.Width || len(b) != len(mb.SampleIDs[r])+1 || b[0] != 0 || int(b[len(b)-1]) != length {
			return nil, rows, fmt.Errorf("row %d: boundaries %v do not cover its length %d", r, b, length)
		}
		ids := mb.InputIDs[r*mb.Width : (r+1)*mb.Width]
		labels := mb.Labels[r*mb.Width : (r+1)*mb.Width]
		positions := mb.PositionIDs[r*mb.Width : (r+1)*mb.Width]
		for k := 1; k < len(b); k++ {
			if b[k] <= b[k-1] {
				return nil, rows, fmt.Errorf("row %d: boundaries %v are not increasing", r, b)
			}
			differ := int32(0)
			for p, pos := range positions[b[k-1]:b[k]] {
				differ |= pos ^ int32(p)
			}
			if differ != 0 {
				return nil, rows, fmt.Errorf("row %d: position ids do not restart at sample %d", r, k-1)
			}
			rows[r] = append(rows[r], recordSample{mb.SampleIDs[r][k-1], packing.Sample{InputIDs: ids[b[k-1]:b[k]], Labels: labels[b[k-1]:b[k]]}})
		}
		for p := length; p < mb.Width; p++ {
			if ids[p] != pad || labels[p] != packing.IgnoreIndex || positions[p] != 0 {
				return nil, rows, fmt.Errorf("row %d: padding at %d is not pad token / -100 / position 0", r, p)
			}
		}
	}
	dst, err := encodeRows(dst, mb.Width, rows)
	return dst, rows, err
}

// recordSample is one sample of a record's row: its index among the packed
// samples, and the sample.
type recordSample struct {
	id int32
	packing.Sample
}

// resizeRecordRows makes rows n empty rows, reusing their storage.
func resizeRecordRows(rows [][]recordSample, n int) [][]recordSample {
	for len(rows) < n {
		rows = append(rows, nil)
	}
	rows = rows[:n]
	for r := range rows {
		clear(rows[r])
		rows[r] = rows[r][:0]
	}
	return rows
}

// groupRows is micro-batch i of p as a record's rows (reusing rows), and
// its width.
func groupRows(rows [][]recordSample, p *packing.Batches, i int) ([][]recordSample, int) {
	group, width := p.Group(i)
	rows = resizeRecordRows(rows, len(group))
	for r, ids := range group {
		for _, id := range ids {
			rows[r] = append(rows[r], recordSample{int32(id), p.Sample(id)})
		}
	}
	return rows, width
}

// encodeRows appends the record of len(rows) rows of width tokens, each
// holding the samples it lists in turn and padding after them.
func encodeRows(dst []byte, width int, rows [][]recordSample) ([]byte, error) {
	if len(rows) > maxRows || width < 0 || width > maxWidth {
		return nil, fmt.Errorf("rows %d × width %d out of range", len(rows), width)
	}
	fullLabels := false
	tokens, samples := 0, 0
	for r, row := range rows {
		length := 0
		odd := uint32(0)
		for k, s := range row {
			if len(s.InputIDs) == 0 {
				return nil, fmt.Errorf("row %d: sample %d is empty", r, k)
			}
			if err := s.Check(); err != nil {
				return nil, fmt.Errorf("row %d: sample %d: %w", r, k, err)
			}
			length += len(s.InputIDs)
			if s.Masked() {
				continue // a mask's labels copy or ignore their ids
			}
			// Whether any label is neither -100 nor its id, without a branch
			// per token.
			ls := s.Labels[:len(s.InputIDs)]
			for p, id := range s.InputIDs {
				l := ls[p]
				a, c := uint32(l^packing.IgnoreIndex), uint32(l^id)
				odd |= (a | -a) & (c | -c)
			}
		}
		if length > width {
			return nil, fmt.Errorf("row %d: %d tokens in a row of width %d", r, length, width)
		}
		fullLabels = fullLabels || odd>>31 != 0
		tokens += length
		samples += len(row)
	}
	labelBytes := (tokens + 7) / 8
	mode := byte(0)
	if fullLabels {
		labelBytes, mode = 4*tokens, 1
	}
	// Room for the ids in the escaped code, the largest: they are written in
	// it first, which tells which code is smallest (the same pass, rather
	// than one more over every id), and rewritten in a smaller one if needed.
	room := 10 + 8*len(rows) + 8*samples + 6*tokens + labelBytes
	start := len(dst)
	dst = slices.Grow(dst, room)[:start+room]
	out := dst[start:]
	le := binary.LittleEndian
	le.PutUint32(out[0:], uint32(len(rows)))
	le.PutUint32(out[4:], uint32(width))
	out[9] = mode
	at := 10
	for _, row := range rows {
		length := 0
		for _, s := range row {
			length += len(s.InputIDs)
		}
		le.PutUint32(out[at:], uint32(length))
		le.PutUint32(out[at+4:], uint32(len(row)))
		at += 8
	}
	for _, row := range rows {
		for _, s := range row {
			le.PutUint32(out[at:], uint32(s.id))
			le.PutUint32(out[at+4:], uint32(len(s.InputIDs)))
			at += 8
		}
	}
	// idBits is every id ORed: negative when one is, at or above 1<<16 or
	// 1<<24 exactly when the largest id is.
	idsAt, idBits, escapes := at, int32(0), 0
	for _, row := range rows {
		for _, s := range row {
			var bits int32
			var n int
			at, bits, n = appendEscapedIDs(out, at, s.InputIDs)
			idBits |= bits
			escapes += n
		}
	}
	if idBits < 0 {
		for r, row := range rows {
			for _, s := range row {
				if k := slices.IndexFunc(s.InputIDs, func(id int32) bool { return id < 0 }); k >= 0 {
					return nil, fmt.Errorf("row %d: negative token id %d", r, s.InputIDs[k])
				}
			}
		}
	}
	fixed := 3
	if idBits >= 1<<24 {
		fixed = 4
	}
	code := escapedIDs
	switch {
	case idBits < 1<<16:
		code = 2
	case 2*tokens+4*escapes >= fixed*tokens:
		code = fixed
	}
	out[8] = byte(code)
	if code != escapedIDs && (code != 2 || escapes > 0) {
		// Never longer than the escaped ids: it overwrites them from their start.
		at = idsAt
		for _, row := range rows {
			for _, s := range row {
				at = appendIDs(out, at, code, s.InputIDs)
			}
		}
	}
	if fullLabels {
		for _, row := range rows {
			for _, s := range row {
				for p := range s.InputIDs {
					le.PutUint32(out[at:], uint32(s.Label(p)))
					at += 4
				}
			}
		}
		return dst[:start+at], nil
	}
	mask := out[at : at+labelBytes]
	clear(mask)
	bit := 0
	for _, row := range rows {
		for _, s := range row {
			if s.Masked() {
				bit = appendMaskWords(mask, bit, s.TrainedMask, len(s.InputIDs))
			} else {
				bit = appendMask(mask, bit, s.Labels)
			}
		}
	}
	return dst[:start+at+labelBytes], nil
}

// appendEscapedIDs stores ids at out[at:] in the escaped code, four at a
// time while none of the four needs an escape, and returns where they end,
// the ids ORed and how many were escaped.
func appendEscapedIDs(out []byte, at int, ids []int32) (end int, bits int32, escapes int) {
	for len(ids) >= 4 {
		g := ids[:4:4]
		ids = ids[4:]
		a, b, c, d := uint32(g[0]), uint32(g[1]), uint32(g[2]), uint32(g[3])
		or := a | b | c | d
		bits |= int32(or)
		if or >= escape {
			for _, id := range g {
				escapes += int(uint32(escape-1-id) >> 31)
			}
			at = appendEscaped(out, at, g)
			continue
		}
		binary.LittleEndian.PutUint64(out[at:at+8], uint64(a)|uint64(b)<<16|uint64(c)<<32|uint64(d)<<48)
		at += 8
	}
	for _, id := range ids {
		bits |= id
		escapes += int(uint32(escape-1-id) >> 31)
	}
	return appendEscaped(out, at, ids), bits, escapes
}

// appendIDs stores ids at out[at:] in a fixed-width code (2, 3 or 4 bytes
// an id) and returns where they end; two-byte ids go four at a time.
func appendIDs(out []byte, at, code int, ids []int32) int {
	le := binary.LittleEndian
	switch code {
	case 2:
		for len(ids) >= 4 {
			g := ids[:4:4]
			ids = ids[4:]
			le.PutUint64(out[at:at+8], uint64(uint16(g[0]))|uint64(uint16(g[1]))<<16|uint64(uint16(g[2]))<<32|uint64(uint16(g[3]))<<48)
			at += 8
		}
		for _, id := range ids {
			le.PutUint16(out[at:], uint16(id))
			at += 2
		}
	case 3:
		for _, id := range ids {
			v := uint32(id)
			out[at], out[at+1], out[at+2] = byte(v), byte(v>>8), byte(v>>16)
			at += 3
		}
	default:
		for _, id := range ids {
			le.PutUint32(out[at:], uint32(id))
			at += 4
		}
	}
	return at
}

// appendEscaped stores ids one by one in the escaped code.
func appendEscaped(out []byte, at int, ids []int32) int {
	le := binary.LittleEndian
	for _, id := range ids {
		if id < escape {
			le.PutUint16(out[at:], uint16(id))
			at += 2
			continue
		}
		le.PutUint16(out[at:], escape)
		le.PutUint32(out[at+2:], uint32(id))
		at += 6
	}
	return at
}

// appendMask sets bits bit, bit+1, ... of mask (LSB first; mask cleared)
// for the labels that are trained, and returns the next bit: eight labels
// make a byte once bit is at a byte's start.
func appendMask(mask []byte, bit int, labels []int32) int {
	trained := func(l int32) byte {
		v := uint32(l ^ packing.IgnoreIndex)
		return byte((v | -v) >> 31)
	}
	i := 0
	for ; i < len(labels) && bit&7 != 0; i, bit = i+1, bit+1 {
		mask[bit>>3] |= trained(labels[i]) << (bit & 7)
	}
	for ; i+8 <= len(labels); i, bit = i+8, bit+8 {
		l := labels[i : i+8 : i+8]
		mask[bit>>3] = trained(l[0]) | trained(l[1])<<1 | trained(l[2])<<2 | trained(l[3])<<3 |
			trained(l[4])<<4 | trained(l[5])<<5 | trained(l[6])<<6 | trained(l[7])<<7
	}
	for ; i < len(labels); i, bit = i+1, bit+1 {
		mask[bit>>3] |= trained(labels[i]) << (bit & 7)
	}
	return bit
}

// appendMaskWords sets the mask bits of a sample's n tokens from its trained
// mask (packing.Sample.TrainedMask: bits past n clear) at mask's bit, a
// byte at a time, and returns where they end. mask is clear there.
func appendMaskWords(mask []byte, bit int, words []uint64, n int) int {
	for k, w := range words {
		count := min(64, n-64*k)
		at, off := bit>>3, uint(bit&7)
		last := (bit + count - 1) >> 3
		mask[at] |= byte(w << off)
		w >>= 8 - off
		for j := at + 1; j <= last; j++ {
			mask[j] |= byte(w)
			w >>= 8
		}
		bit += count
	}
	return bit
}

// decoder reads a record with bounds checks; any overrun marks it corrupt.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("%w: record ends early", ErrCorrupt)
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) u32() uint32 {
	b := d.take(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func decodeRecord(rec []byte, pad int32) (packing.MicroBatch, error) {
	d := &decoder{b: rec}
	rows, width := d.u32(), d.u32()
	mode := d.take(2)
	if d.err != nil {
		return packing.MicroBatch{}, d.err
	}
	code, labelMode := int(mode[0]), mode[1]
	if rows > maxRows || width > maxWidth || uint64(rows)*uint64(width) > maxCells ||
		(code != escapedIDs && (code < 2 || code > 4)) || labelMode > 1 {
		return packing.MicroBatch{}, fmt.Errorf("%w: bad record header (rows %d, width %d, token code %d, label mode %d)", ErrCorrupt, rows, width, code, labelMode)
	}
	R, W := int(rows), int(width)
	// Validate the tables against the bytes present before allocating the
	// rows × width arrays, so a short damaged record cannot claim gigabytes.
	if R*8 > len(d.b) {
		return packing.MicroBatch{}, fmt.Errorf("%w: record ends early", ErrCorrupt)
	}
	lengths := make([]int32, R)
	counts := make([]int, R)
	total := 0
	for r := 0; r < R; r++ {
		length, samples := d.u32(), d.u32()
		if length > width || samples > length {
			return packing.MicroBatch{}, fmt.Errorf("%w: row %d claims %d tokens in %d samples (width %d)", ErrCorrupt, r, length, samples, width)
		}
		lengths[r] = int32(length)
		counts[r] = int(samples)
		total += int(length)
	}
	sampleTable := make([][2]uint32, 0)
	for r := 0; r < R; r++ {
		if counts[r]*8 > len(d.b) {
			return packing.MicroBatch{}, fmt.Errorf("%w: record ends early", ErrCorrupt)
		}
		at := uint32(0)
		for k := 0; k < counts[r]; k++ {
			id, n := d.u32(), d.u32()
			if n == 0 || at+n > uint32(lengths[r]) || at+n < at {
				return packing.MicroBatch{}, fmt.Errorf("%w: row %d sample %d has a bad length %d", ErrCorrupt, r, k, n)
			}
			at += n
			sampleTable = append(sampleTable, [2]uint32{id, n})
		}
		if int32(at) != lengths[r] {
			return packing.MicroBatch{}, fmt.Errorf("%w: row %d samples cover %d of its %d tokens", ErrCorrupt, r, at, lengths[r])
		}
	}
	labelBytes := (total + 7) / 8
	if labelMode == 1 {
		labelBytes = 4 * total
	}
	// Escaped ids take 2 bytes each and 4 more for each escape.
	tokenSize := total * code
	if code == escapedIDs {
		tokenSize = len(d.b) - labelBytes
		if tokenSize < 2*total || (tokenSize-2*total)%4 != 0 {
			return packing.MicroBatch{}, fmt.Errorf("%w: %d bytes of escaped tokens and labels for %d tokens", ErrCorrupt, len(d.b), total)
		}
	}
	if tokenSize+labelBytes != len(d.b) {
		return packing.MicroBatch{}, fmt.Errorf("%w: %d bytes of tokens and labels, the tables need %d", ErrCorrupt, len(d.b), tokenSize+labelBytes)
	}
	mb := packing.MicroBatch{
		Rows: R, Width: W,
		InputIDs: make([]int32, R*W), Labels: make([]int32, R*W), PositionIDs: make([]int32, R*W),
		RowLengths: lengths, Boundaries: make([][]int32, R), SampleIDs: make([][]int32, R),
	}
	next := 0
	for r := 0; r < R; r++ {
		bounds := make([]int32, 1, counts[r]+1)
		ids := make([]int32, counts[r])
		at := uint32(0)
		for k := 0; k < counts[r]; k++ {
			id, n := sampleTable[next][0], sampleTable[next][1]
			next++
			ids[k] = int32(id)
			for p := uint32(0); p < n; p++ {
				mb.PositionIDs[r*W+int(at+p)] = int32(p)
			}
			at += n
			bounds = append(bounds, int32(at))
		}
		mb.Boundaries[r], mb.SampleIDs[r] = bounds, ids
	}
	tokens := d.take(tokenSize)
	if d.err != nil {
		return packing.MicroBatch{}, d.err
	}
	t := 0
	for r := 0; r < R; r++ {
		for p := 0; p < W; p++ {
			i := r*W + p
			if p >= int(mb.RowLengths[r]) {
				mb.InputIDs[i], mb.Labels[i] = pad, packing.IgnoreIndex
				continue
			}
			if code == escapedIDs {
				if t+2 > len(tokens) {
					return packing.MicroBatch{}, fmt.Errorf("%w: escaped token ids run past their bytes", ErrCorrupt)
				}
				v := uint32(binary.LittleEndian.Uint16(tokens[t:]))
				t += 2
				if v == escape {
					if t+4 > len(tokens) {
						return packing.MicroBatch{}, fmt.Errorf("%w: escaped token ids run past their bytes", ErrCorrupt)
					}
					v = binary.LittleEndian.Uint32(tokens[t:])
					t += 4
					if v < escape || v > math.MaxInt32 {
						return packing.MicroBatch{}, fmt.Errorf("%w: escaped token id %d", ErrCorrupt, v)
					}
				}
				mb.InputIDs[i] = int32(v)
				continue
			}
			v := uint32(tokens[t]) | uint32(tokens[t+1])<<8
			if code >= 3 {
				v |= uint32(tokens[t+2]) << 16
			}
			if code == 4 {
				v |= uint32(tokens[t+3]) << 24
			}
			t += code
			mb.InputIDs[i] = int32(v)
		}
	}
	if t != len(tokens) {
		return packing.MicroBatch{}, fmt.Errorf("%w: %d bytes of token ids, %d of them read", ErrCorrupt, len(tokens), t)
	}
	if labelMode == 1 {
		labels := d.take(4 * total)
		if d.err != nil {
			return packing.MicroBatch{}, d.err
		}
		k := 0
		for r := 0; r < R; r++ {
			for p := 0; p < int(mb.RowLengths[r]); p++ {
				mb.Labels[r*W+p] = int32(binary.LittleEndian.Uint32(labels[4*k:]))
				k++
			}
		}
	} else {
		bits := d.take((total + 7) / 8)
		if d.err != nil {
			return packing.MicroBatch{}, d.err
		}
		k := 0
		for r := 0; r < R; r++ {
			for p := 0; p < int(mb.RowLengths[r]); p++ {
				i := r*W + p
				if bits[k/8]&(1<<(k%8)) != 0 {
					mb.Labels[i] = mb.InputIDs[i]
				} else {
					mb.Labels[i] = packing.IgnoreIndex
				}
				k++
			}
		}
	}
	if len(d.b) != 0 {
		return packing.MicroBatch{}, fmt.Errorf("%w: %d bytes left after the record", ErrCorrupt, len(d.b))
	}
	return mb, nil
}

// Reader reads micro-batches by index from a batch file.
type Reader struct {
	r     io.ReaderAt
	pad   int32
	index []byte
	count int
}

// Open checks the header, footer and index of a batch file of the given size.
func Open(r io.ReaderAt, size int64) (*Reader, error) {
	if size < headerSize+footerSize {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, size)
	}
	h := make([]byte, headerSize)
	if _, err := r.ReadAt(h, 0); err != nil {
		return nil, err
	}
	if !bytes.Equal(h[:8], magic[:]) {
		return nil, fmt.Errorf("%w: not a batch file (bad magic)", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint16(h[8:]); v != Version {
		return nil, fmt.Errorf("batches: file format version %d, this build reads version %d", v, Version)
	}
	if crc32.Checksum(h[:16], castagnoli) != binary.LittleEndian.Uint32(h[16:]) {
		return nil, fmt.Errorf("%w: header checksum mismatch", ErrCorrupt)
	}
	f := make([]byte, footerSize)
	if _, err := r.ReadAt(f, size-footerSize); err != nil {
		return nil, err
	}
	if !bytes.Equal(f[20:], footerMagic[:]) {
		return nil, fmt.Errorf("%w: bad footer (truncated file?)", ErrCorrupt)
	}
	indexOffset, count := binary.LittleEndian.Uint64(f[0:]), binary.LittleEndian.Uint64(f[8:])
	indexEnd := uint64(size - footerSize)
	if indexOffset < headerSize || indexOffset > indexEnd || count > (indexEnd-indexOffset)/indexEntry || count*indexEntry != indexEnd-indexOffset {
		return nil, fmt.Errorf("%w: index offset %d and count %d do not fit the file", ErrCorrupt, indexOffset, count)
	}
	index := make([]byte, count*indexEntry)
	if _, err := r.ReadAt(index, int64(indexOffset)); err != nil {
		return nil, err
	}
	if crc32.Checksum(index, castagnoli) != binary.LittleEndian.Uint32(f[16:]) {
		return nil, fmt.Errorf("%w: index checksum mismatch", ErrCorrupt)
	}
	for i := uint64(0); i < count; i++ {
		off := binary.LittleEndian.Uint64(index[i*indexEntry:])
		n := uint64(binary.LittleEndian.Uint32(index[i*indexEntry+8:]))
		if off < headerSize || off+n > indexOffset || off+n < off {
			return nil, fmt.Errorf("%w: micro-batch %d lies outside the records", ErrCorrupt, i)
		}
	}
	return &Reader{r: r, pad: int32(binary.LittleEndian.Uint32(h[12:])), index: index, count: int(count)}, nil
}

// Len is the number of micro-batches in the file.
func (r *Reader) Len() int { return r.count }

// PadTokenID is the pad token the file was written with.
func (r *Reader) PadTokenID() int32 { return r.pad }

// Read decodes micro-batch i, verifying its checksum.
func (r *Reader) Read(i int) (packing.MicroBatch, error) {
	if i < 0 || i >= r.count {
		return packing.MicroBatch{}, fmt.Errorf("batches: micro-batch %d out of range [0, %d)", i, r.count)
	}
	e := r.index[i*indexEntry:]
	off, n, sum := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:])
	rec := make([]byte, n)
	if _, err := r.r.ReadAt(rec, int64(off)); err != nil {
		return packing.MicroBatch{}, fmt.Errorf("batches: micro-batch %d: %w", i, err)
	}
	if crc32.Checksum(rec, castagnoli) != sum {
		return packing.MicroBatch{}, fmt.Errorf("%w: micro-batch %d checksum mismatch", ErrCorrupt, i)
	}
	mb, err := decodeRecord(rec, r.pad)
	if err != nil {
		return packing.MicroBatch{}, fmt.Errorf("batches: micro-batch %d: %w", i, err)
	}
	return mb, nil
}
