package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// The binary value encoding carries row values between eft's own stages
// (the rows artifact) where JSON's escaping, scanning and number parsing
// would be wasted: every value is a tag byte and its payload,
//
//	'n' null | 'f' false | 't' true
//	'i' int64, zig-zag varint | 'd' float64, 8 bytes little-endian
//	's' string: uvarint length, bytes
//	'l' list: uvarint count, values
//	'o' object: uvarint count, then per field a string (length, bytes) and a value
//
// It holds exactly what AppendJSON writes: a float that is not finite is
// null, as in JSON.
const (
	binNull   = 'n'
	binFalse  = 'f'
	binTrue   = 't'
	binInt    = 'i'
	binFloat  = 'd'
	binString = 's'
	binList   = 'l'
	binObject = 'o'
)

// AppendBinary appends v's binary encoding.
func AppendBinary(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, binNull)
	case bool:
		if x {
			return append(dst, binTrue)
		}
		return append(dst, binFalse)
	case int64:
		return binary.AppendVarint(append(dst, binInt), x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return append(dst, binNull)
		}
		return binary.LittleEndian.AppendUint64(append(dst, binFloat), math.Float64bits(x))
	case string:
		return appendBinaryString(append(dst, binString), x)
	case []any:
		dst = binary.AppendUvarint(append(dst, binList), uint64(len(x)))
		for _, e := range x {
			dst = AppendBinary(dst, e)
		}
		return dst
	case Object:
		dst = binary.AppendUvarint(append(dst, binObject), uint64(len(x)))
		for _, f := range x {
			dst = appendBinaryString(dst, f.Name)
			dst = AppendBinary(dst, f.Value)
		}
		return dst
	default:
		// Not a row value: a reader bug. Encode it visibly rather than panic,
		// as AppendJSON does.
		return appendBinaryString(append(dst, binString), "<unsupported value>")
	}
}

func appendBinaryString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

// DecodeBinaryShared decodes one value from the start of data and returns
// what follows it. Its strings share data's memory (no copy), so data must
// not change while the value is in use. Damaged input is an error giving
// the byte offset, never a panic or an allocation larger than data.
func DecodeBinaryShared(data []byte) (any, []byte, error) {
	return DecodeBinaryArena(data, nil)
}

// DecodeBinaryArena is DecodeBinaryShared with the value's containers and
// boxed strings taken from a: it first resets a, so what an earlier call
// with a returned must no longer be in use (it would change under its
// holder). A loop decoding row after row with one Arena allocates nothing
// once the arena has grown to a row's size. A nil a is DecodeBinaryShared.
func DecodeBinaryArena(data []byte, a *Arena) (any, []byte, error) {
	if a != nil {
		a.reset()
	}
	d := binDecoder{data: data, arena: a}
	v := d.value()
	if d.err != nil {
		return nil, nil, fmt.Errorf("binary value: byte %d: %w", d.pos, d.err)
	}
	return v, data[d.pos:], nil
}

// binDecoder reads the binary encoding from data[pos:]; the first error
// stops it. With an arena, its values' memory comes from there.
type binDecoder struct {
	data  []byte
	pos   int
	depth int
	err   error
	arena *Arena
}

var errBinaryEnd = errors.New("ends early")

func (d *binDecoder) fail(err error) any {
	if d.err == nil {
		d.err = err
	}
	return nil
}

func (d *binDecoder) uvarint() uint64 {
	if d.pos < len(d.data) && d.data[d.pos] < 0x80 { // one byte: most lengths
		d.pos++
		return uint64(d.data[d.pos-1])
	}
	v, n := binary.Uvarint(d.data[d.pos:])
	if n <= 0 {
		d.fail(errors.New("bad length"))
		return 0
	}
	d.pos += n
	return v
}

// count reads a list's or object's length: each element takes a byte at
// least, so a count beyond what is left is damage, not a reason to allocate.
func (d *binDecoder) count() int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.data)-d.pos) {
		d.fail(fmt.Errorf("a count of %d with %d bytes left", n, len(d.data)-d.pos))
		return 0
	}
	return int(n)
}

func (d *binDecoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.data)-d.pos) {
		d.fail(errBinaryEnd)
		return ""
	}
	s := d.data[d.pos : d.pos+int(n)]
	d.pos += int(n)
	if len(s) == 0 {
		return ""
	}
	return unsafe.String(&s[0], len(s))
}

func (d *binDecoder) value() any {
	if d.pos >= len(d.data) {
		return d.fail(errBinaryEnd)
	}
	tag := d.data[d.pos]
	d.pos++
	switch tag {
	case binNull:
		return nil
	case binFalse:
		return false
	case binTrue:
		return true
	case binInt:
		v, n := binary.Varint(d.data[d.pos:])
		if n <= 0 {
			return d.fail(errors.New("bad integer"))
		}
		d.pos += n
		return v
	case binFloat:
		if len(d.data)-d.pos < 8 {
			return d.fail(errBinaryEnd)
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(d.data[d.pos:]))
		d.pos += 8
		return f
	case binString:
		s := d.str()
		if d.err != nil {
			return nil
		}
		if d.arena != nil {
			return box(&d.arena.strs, stringType, s)
		}
		return s
	case binList, binObject:
		if d.depth++; d.depth > maxJSONDepth {
			return d.fail(fmt.Errorf("nested deeper than %d", maxJSONDepth))
		}
		v := d.container(tag)
		d.depth--
		return v
	default:
		d.pos--
		return d.fail(fmt.Errorf("unknown tag %q", tag))
	}
}

// container reads a list's or object's count and members.
func (d *binDecoder) container(tag byte) any {
	n := d.count()
	if d.err != nil {
		return nil
	}
	if tag == binList {
		var items []any
		if d.arena != nil {
			items = d.arena.items.take(n)
		} else {
			items = make([]any, n)
		}
		for i := range items {
			if items[i] = d.value(); d.err != nil {
				return nil
			}
		}
		if d.arena != nil {
			return box(&d.arena.lists, listType, items)
		}
		return items
	}
	var fields Object
	if d.arena != nil {
		fields = d.arena.fields.take(n)
	} else {
		fields = make(Object, n)
	}
	for i := range fields {
		fields[i].Name = d.str()
		if fields[i].Value = d.value(); d.err != nil {
			return nil
		}
	}
	if d.arena != nil {
		return box(&d.arena.objects, objectType, fields)
	}
	return fields
}

// Arena holds decoded values for DecodeBinaryArena: the lists' and
// objects' backing arrays, and the boxes that make strings, lists and
// objects interface values (each an allocation of its own otherwise: a
// conversation of seven messages was some 25 small objects for the garbage
// collector, per row).
type Arena struct {
	strs    slab[string]
	lists   slab[[]any]
	objects slab[Object]
	items   slab[any]
	fields  slab[Field]
}

func (a *Arena) reset() {
	a.strs.reset()
	a.lists.reset()
	a.objects.reset()
	a.items.reset()
	a.fields.reset()
}

// An interface value is a type and a pointer to the value (for types that
// are not pointers themselves): the arena's boxes point the interface at
// a slot of a slab instead of a fresh copy on the heap. The slot is heap
// memory with the value's own type, which is all the garbage collector
// and type assertions need; nothing writes to it while the value is in use
// (DecodeBinaryArena's contract).
type eface struct{ typ, data unsafe.Pointer }

func typeOf(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

var (
	stringType = typeOf("")
	listType   = typeOf([]any(nil))
	objectType = typeOf(Object(nil))
)

// box makes v an interface value held in a slot of s (typ: T's type).
func box[T any](s *slab[T], typ unsafe.Pointer, v T) any {
	slot := &s.take(1)[0]
	*slot = v
	var out any
	*(*eface)(unsafe.Pointer(&out)) = eface{typ, unsafe.Pointer(slot)}
	return out
}

// slab hands out runs of Ts from chunks it keeps: reset takes them back
// for reuse. A run's capacity is its length, so appending to one copies
// it rather than overwrite the next.
type slab[T any] struct {
	chunks [][]T
	chunk  int // the chunk runs are taken from
	used   int // its Ts taken
}

func (s *slab[T]) take(n int) []T {
	for ; s.chunk < len(s.chunks); s.chunk, s.used = s.chunk+1, 0 {
		if c := s.chunks[s.chunk]; s.used+n <= len(c) {
			s.used += n
			return c[s.used-n : s.used : s.used]
		}
	}
	size := 64
	if k := len(s.chunks); k > 0 {
		size = 2 * len(s.chunks[k-1])
	}
	s.chunks = append(s.chunks, make([]T, max(size, n)))
	s.chunk, s.used = len(s.chunks)-1, n
	return s.chunks[s.chunk][:n:n]
}

func (s *slab[T]) reset() { s.chunk, s.used = 0, 0 }
