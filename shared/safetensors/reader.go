package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// MaxHeaderSize bounds the JSON header, as the Rust implementation does
// (100 MB), so a corrupt length cannot make us allocate the world.
const MaxHeaderSize = 100_000_000

// metadataKey is the header entry that holds free-form string metadata.
const metadataKey = "__metadata__"

// Info describes one tensor of a header. Begin and End are byte offsets into
// the data section, which starts right after the header.
type Info struct {
	Name       string
	DType      DType
	Shape      []int
	Begin, End int64
}

// Source is what model loaders read from: one file or a sharded set.
type Source interface {
	// Names lists the tensors in sorted order.
	Names() []string
	Info(name string) (Info, bool)
	// Tensor returns a tensor whose Data aliases the source's memory.
	Tensor(name string) (Tensor, error)
	// Float32s returns a converted copy of a float tensor.
	Float32s(name string) ([]float32, error)
	Close() error
}

// File is one opened safetensors file.
type File struct {
	name     string // path, or the name given to Parse, for errors
	buf      []byte // the whole file
	data     []byte // the data section: buf[8+headerLen:]
	infos    map[string]Info
	names    []string
	metadata map[string]string
	release  func() error
}

var _ Source = (*File)(nil)

// Open maps (or, where mapping is unavailable, reads) a safetensors file and
// validates its header. Close releases it.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if st.Size() < 8 {
		return nil, fmt.Errorf("safetensors: %s: truncated: %d bytes, but a safetensors file starts with an 8-byte header length", path, st.Size())
	}
	buf, release, err := mapFile(fh, st.Size())
	if err != nil {
		buf, err = io.ReadAll(fh)
		if err != nil {
			return nil, fmt.Errorf("safetensors: read %s: %w", path, err)
		}
		release = nil
	}
	f, err := Parse(path, buf)
	if err != nil {
		if release != nil {
			_ = release()
		}
		return nil, err
	}
	f.release = release
	return f, nil
}

// Parse validates a safetensors file held in memory; name is used in errors.
// The File keeps buf (no copy).
func Parse(name string, buf []byte) (*File, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("safetensors: %s: %s", name, fmt.Sprintf(format, args...))
	}
	if len(buf) < 8 {
		return nil, fail("truncated: %d bytes, but a safetensors file starts with an 8-byte header length", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > MaxHeaderSize {
		return nil, fail("header length %d exceeds the %d-byte limit (not a safetensors file?)", n, MaxHeaderSize)
	}
	if uint64(len(buf)-8) < n {
		return nil, fail("truncated: header length is %d bytes but only %d follow", n, len(buf)-8)
	}
	header := buf[8 : 8+n]
	f := &File{name: name, buf: buf, data: buf[8+n:]}
	if err := f.parseHeader(header); err != nil {
		return nil, fail("%v", err)
	}
	return f, nil
}

type rawInfo struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

func (f *File) parseHeader(header []byte) error {
	if !utf8.Valid(header) {
		return errors.New("header is not valid UTF-8")
	}
	if len(header) == 0 || header[0] != '{' {
		return errors.New("header does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("header JSON: %v", err)
	}
	f.infos = map[string]Info{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("header JSON: %v", err)
		}
		key := tok.(string) // object keys are always strings
		if seen[key] {
			return fmt.Errorf("header lists %q twice", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("header JSON at %q: %v", key, err)
		}
		if key == metadataKey {
			if err := json.Unmarshal(raw, &f.metadata); err != nil {
				return fmt.Errorf("%s must map strings to strings: %v", metadataKey, err)
			}
			continue
		}
		info, err := decodeInfo(key, raw, int64(len(f.data)))
		if err != nil {
			return err
		}
		f.infos[key] = info
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("header JSON: %v", err)
	}
	rest := header[dec.InputOffset():]
	if len(bytes.TrimRight(rest, " \t\r\n")) != 0 {
		return fmt.Errorf("header has %d bytes of trailing data after the JSON object", len(rest))
	}
	return f.checkLayout()
}

func decodeInfo(name string, raw json.RawMessage, dataLen int64) (Info, error) {
	var r rawInfo
	if err := json.Unmarshal(raw, &r); err != nil {
		return Info{}, fmt.Errorf("tensor %q: %v", name, err)
	}
	switch {
	case r.DType == nil:
		return Info{}, fmt.Errorf("tensor %q: missing dtype", name)
	case r.Shape == nil:
		return Info{}, fmt.Errorf("tensor %q: missing shape", name)
	case r.DataOffsets == nil:
		return Info{}, fmt.Errorf("tensor %q: missing data_offsets", name)
	}
	dtype, err := ParseDType(*r.DType)
	if err != nil {
		return Info{}, fmt.Errorf("tensor %q: %v", name, err)
	}
	offs := *r.DataOffsets
	if len(offs) != 2 {
		return Info{}, fmt.Errorf("tensor %q: data_offsets must be [begin, end], got %d numbers", name, len(offs))
	}
	begin, end := offs[0], offs[1]
	if begin < 0 || end < begin {
		return Info{}, fmt.Errorf("tensor %q: bad data_offsets [%d, %d]", name, begin, end)
	}
	if end > dataLen {
		return Info{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the %d-byte data section (truncated file?)", name, begin, end, dataLen)
	}
	// The byte size is bounded by dataLen, so an element count above it is
	// already wrong; checking as we multiply keeps the product from overflowing.
	shape := make([]int, len(*r.Shape))
	count := int64(1)
	for i, d := range *r.Shape {
		if d < 0 {
			return Info{}, fmt.Errorf("tensor %q: negative dimension in shape %v", name, *r.Shape)
		}
		shape[i] = int(d)
		if count != 0 && d > dataLen/count+1 {
			count = dataLen + 1
		} else {
			count *= d
		}
	}
	if want := count * int64(dtype.Size()); count > dataLen || want != end-begin {
		return Info{}, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes but data_offsets [%d, %d] hold %d",
			name, *r.Shape, dtype, count*int64(dtype.Size()), begin, end, end-begin)
	}
	return Info{Name: name, DType: dtype, Shape: shape, Begin: begin, End: end}, nil
}

// checkLayout requires the tensors to tile the data section exactly, in
// offset order, as the Rust implementation does: no gap, no overlap, nothing
// left over.
func (f *File) checkLayout() error {
	f.names = make([]string, 0, len(f.infos))
	for name := range f.infos {
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	byOffset := slices.Clone(f.names)
	sort.SliceStable(byOffset, func(i, j int) bool {
		a, b := f.infos[byOffset[i]], f.infos[byOffset[j]]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	var pos int64
	prev := ""
	for _, name := range byOffset {
		info := f.infos[name]
		switch {
		case info.Begin < pos:
			return fmt.Errorf("tensor %q [%d, %d] overlaps tensor %q, which ends at %d", name, info.Begin, info.End, prev, pos)
		case info.Begin > pos:
			return fmt.Errorf("tensor %q starts at %d, leaving a gap after byte %d", name, info.Begin, pos)
		}
		pos, prev = info.End, name
	}
	if pos != int64(len(f.data)) {
		return fmt.Errorf("tensors cover %d bytes but the data section has %d", pos, len(f.data))
	}
	return nil
}

// Name is the path the file was opened from.
func (f *File) Name() string { return f.name }

// Names lists the tensors in sorted order.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Metadata is the header's __metadata__ (nil when absent).
func (f *File) Metadata() map[string]string { return f.metadata }

// Info describes one tensor.
func (f *File) Info(name string) (Info, bool) {
	info, ok := f.infos[name]
	info.Shape = slices.Clone(info.Shape)
	return info, ok
}

// Tensor returns the named tensor; its Data aliases the file memory.
func (f *File) Tensor(name string) (Tensor, error) {
	info, ok := f.infos[name]
	if !ok {
		return Tensor{}, f.missing(name)
	}
	return Tensor{DType: info.DType, Shape: slices.Clone(info.Shape), Data: f.data[info.Begin:info.End:info.End]}, nil
}

// Float32s returns a converted copy of a float tensor.
func (f *File) Float32s(name string) ([]float32, error) {
	t, err := f.Tensor(name)
	if err != nil {
		return nil, err
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %v", f.name, name, err)
	}
	return v, nil
}

// Int64s returns a copy of an integer tensor widened to int64.
func (f *File) Int64s(name string) ([]int64, error) {
	t, err := f.Tensor(name)
	if err != nil {
		return nil, err
	}
	v, err := t.Int64s()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %v", f.name, name, err)
	}
	return v, nil
}

func (f *File) missing(name string) error {
	hint := ""
	if near := nearestName(name, f.names); near != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", near)
	}
	return fmt.Errorf("safetensors: %s: no tensor %q%s", f.name, name, hint)
}

// Close releases the mapping; tensors taken from the file die with it.
func (f *File) Close() error {
	release := f.release
	f.release, f.buf, f.data = nil, nil, nil
	if release != nil {
		return release()
	}
	return nil
}

// nearestName returns a name sharing the longest suffix with want, to help
// with prefix mistakes such as a missing "model." — empty when nothing shares
// at least its last dotted component.
func nearestName(want string, names []string) string {
	best, bestLen := "", 0
	for _, n := range names {
		k := commonSuffix(want, n)
		if k > bestLen {
			best, bestLen = n, k
		}
	}
	if bestLen == 0 || !strings.Contains(want[len(want)-bestLen:], ".") {
		return ""
	}
	return best
}

func commonSuffix(a, b string) int {
	k := 0
	for k < len(a) && k < len(b) && a[len(a)-1-k] == b[len(b)-1-k] {
		k++
	}
	return k
}
