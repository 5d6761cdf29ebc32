package datasets

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// TestBinaryRoundTrip: every kind of row value, nested, decodes to what it
// was (a float that is not finite to null, as in JSON), and what follows
// the value is returned untouched.
func TestBinaryRoundTrip(t *testing.T) {
	v := Object{
		{Name: "messages", Value: []any{
			Object{{Name: "role", Value: "user"}, {Name: "content", Value: "x\n\"y\" é 日 🐳"}},
			Object{{Name: "role", Value: "assistant"}, {Name: "content", Value: ""}},
		}},
		{Name: "n", Value: int64(-1 << 62)}, {Name: "m", Value: int64(math.MaxInt64)}, {Name: "f", Value: 0.1},
		{Name: "nan", Value: math.NaN()}, {Name: "inf", Value: math.Inf(-1)},
		{Name: "b", Value: true}, {Name: "c", Value: false}, {Name: "z", Value: nil},
		{Name: "", Value: []any{}}, {Name: "o", Value: Object{}}, {Name: "bad", Value: struct{}{}},
		{Name: "long", Value: strings.Repeat("a length of two varint bytes ", 10)},
	}
	data := append(AppendBinary(nil, v), "rest"...)
	back, rest, err := DecodeBinaryShared(data)
	if err != nil || string(rest) != "rest" {
		t.Fatalf("decode: %v, rest %q", err, rest)
	}
	if got, want := string(AppendJSON(nil, back)), string(AppendJSON(nil, v)); got != want {
		t.Fatalf("decoded %s\nwant    %s", got, want)
	}
	if nan, _ := back.(Object).Get("nan"); nan != nil {
		t.Fatalf("NaN decoded as %v, want null", nan)
	}
	if f, _ := back.(Object).Get("f"); f != 0.1 {
		t.Fatalf("float decoded as %v", f)
	}
}

// TestBinaryDamage: a cut or altered encoding is an error naming the byte,
// and a count larger than the bytes left allocates nothing.
func TestBinaryDamage(t *testing.T) {
	good := AppendBinary(nil, Object{{Name: "k", Value: []any{"abc", int64(300), 1.5}}})
	for n := range len(good) {
		if _, _, err := DecodeBinaryShared(good[:n]); err == nil || !strings.HasPrefix(err.Error(), "binary value: byte ") {
			t.Fatalf("cut at %d: error %v", n, err)
		}
	}
	for _, c := range []struct {
		data []byte
		want string
	}{
		{[]byte{'x'}, `byte 0: unknown tag 'x'`},
		{[]byte{'l', 0xff, 0xff, 0xff, 0xff, 0x0f}, "a count of 4294967295 with 0 bytes left"},
		{[]byte(strings.Repeat("l\x01", maxJSONDepth+1) + "n"), "nested deeper than 1000"},
	} {
		if _, _, err := DecodeBinaryShared(c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.data, err, c.want)
		}
	}
}

// FuzzBinary: any bytes decode to a value or an error, never a panic; a
// value encodes to bytes that decode to it again.
func FuzzBinary(f *testing.F) {
	f.Add(AppendBinary(nil, Object{{Name: "k", Value: []any{"abc", int64(-3), 1.5, nil, true}}}))
	f.Add([]byte{'d', 0, 0, 0, 0, 0, 0, 0xf8, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _, err := DecodeBinaryShared(data)
		if err != nil {
			return
		}
		again := AppendBinary(nil, v)
		back, rest, err := DecodeBinaryShared(again)
		if err != nil || len(rest) > 0 || string(AppendJSON(nil, back)) != string(AppendJSON(nil, v)) {
			t.Fatalf("%v encodes to %q, which decodes to %v (%v, %d bytes left)", v, again, back, err, len(rest))
		}
		// An arena that held another value first decodes the same value.
		var a Arena
		DecodeBinaryArena(AppendBinary(nil, Object{{Name: "k", Value: []any{"x", Object{{Name: "y", Value: "z"}}}}}), &a)
		inArena, _, err := DecodeBinaryArena(data, &a)
		if err != nil || string(AppendJSON(nil, inArena)) != string(AppendJSON(nil, v)) {
			t.Fatalf("in an arena %q decodes to %v (%v), not %v", data, inArena, err, v)
		}
	})
}

// TestArenaDecodesTheSameValues: DecodeBinaryArena's values are
// DecodeBinaryShared's (types, equality, type switches included), a list
// or object taken from the arena grows by copying rather than into its
// neighbour, and once the arena has grown, decoding allocates nothing.
func TestArenaDecodesTheSameValues(t *testing.T) {
	rows := []any{
		Object{{Name: "messages", Value: []any{
			Object{{Name: "role", Value: "user"}, {Name: "content", Value: "hello"}},
			Object{{Name: "role", Value: "assistant"}, {Name: "content", Value: ""}, {Name: "train", Value: true}},
		}}},
		Object{{Name: "instruction", Value: "do"}, {Name: "n", Value: int64(1 << 40)}, {Name: "f", Value: 2.5},
			{Name: "z", Value: nil}, {Name: "l", Value: []any{}}, {Name: "o", Value: Object{}}},
		[]any{"a", []any{"b", []any{"c"}}, Object{{Name: "d", Value: "e"}}},
		"just a string",
	}
	var a Arena
	for round := range 3 { // the later rounds reuse the arena's memory
		for _, v := range rows {
			data := AppendBinary(nil, v)
			want, _, _ := DecodeBinaryShared(data)
			got, rest, err := DecodeBinaryArena(data, &a)
			if err != nil || len(rest) > 0 || !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d: %#v decodes to %#v (%v)", round, want, got, err)
			}
		}
	}
	data := AppendBinary(nil, rows[0])
	v, _, _ := DecodeBinaryArena(data, &a)
	msgs, _ := v.(Object).Get("messages")
	first := msgs.([]any)[0].(Object)
	if role, _ := first.Get("role"); role != "user" || role.(string) != "user" {
		t.Fatalf("role %v", role)
	}
	_ = append(first, Field{Name: "extra", Value: "x"})
	if second := msgs.([]any)[1].(Object); second[0].Name != "role" || second[0].Value != "assistant" {
		t.Fatalf("appending to one message changed the next: %v", second)
	}
	if n := testing.AllocsPerRun(20, func() { DecodeBinaryArena(data, &a) }); n != 0 {
		t.Errorf("a grown arena allocates %v times a decode", n)
	}
}

// BenchmarkDecodeBinaryChatRow decodes the row BenchmarkParseChatRow parses,
// in the binary encoding: no string is scanned, so only the values' memory
// costs.
func BenchmarkDecodeBinaryChatRow(b *testing.B) {
	prose := strings.Repeat("Call me Ishmael. Some years ago, never mind how long precisely, having little money in my purse. ", 8)
	v, err := ParseJSONShared([]byte(`{"messages":[{"role":"system","content":"` + prose + `"},{"role":"user","content":"` + prose + `\"quoted\""},{"role":"assistant","content":"` + prose + prose + `"}]}`))
	if err != nil {
		b.Fatal(err)
	}
	row := AppendBinary(nil, v)
	b.SetBytes(int64(len(row)))
	for b.Loop() {
		if _, _, err := DecodeBinaryShared(row); err != nil {
			b.Fatal(err)
		}
	}
}
