package prompt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/eftml/eft/shared/chattemplate"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/shared/tokenizer"
)

// dummyContent is the content Axolotl's find_turn puts in a turn to see
// where the turn's own tokens are; otherDummy differs from it in its first
// and last characters.
const (
	dummyContent = "[[dummy_message]]"
	otherDummy   = "<<dummy_message>>"
)

// renderer renders a conversation with a chat template, as
// transformers' apply_chat_template(tokenize=False) does.
type renderer interface {
	Render(messages []any, kwargs map[string]any) (string, error)
	// AppendRender is Render into a reused buffer.
	AppendRender(dst []byte, messages []any, kwargs map[string]any) ([]byte, error)
	// ProbeRender is Render watched by a probe (chattemplate.Probe).
	ProbeRender(messages []any, kwargs map[string]any, p *chattemplate.Probe) (string, error)
}

// chatTemplate is Axolotl's chat_template strategy: the conversation
// rendered with the chat template and tokenized without special tokens (the
// template writes them); the content of every turn that trains (a role in
// roles_to_train, or train_on_inputs, or the message's own training flag)
// is labelled, and the EOS / EOT token closing a turn (within three tokens
// of its end) follows train_on_eos / train_on_eot (all, turn, last, none).
//
// Where a turn's tokens are: Axolotl renders the conversation up to the
// turn twice, with the content and with "[[dummy_message]]", and diffs the
// token ids. eft finds the characters of the content in the text of the
// whole conversation (through the conversation's shape, one cached render
// per shape; else findTurn: diffing against the conversation rendered with
// the turn's content replaced), then takes the tokens that overlap them. It
// is Axolotl's span for templates that render a turn the same whatever
// follows it, and the right one for those that do not (Qwen3's think block
// on the last turn), where Axolotl's prefix indices are off; and a content
// that begins or ends like the dummy keeps its first and last tokens.
//
// Rendering: when the shape's render showed (through a jinja Probe) that
// the template only copies contents into its text, never looks into them,
// a conversation's text is written from its shape — glue and contents —
// without rendering it: the same text, at a fraction of the cost
// (TestWrittenTextsEqualRendered holds every named template to that).
type chatTemplate struct {
	enc           *encoder
	tpl           renderer
	template      string // the template source, for the EOT checks
	fieldMessages string
	mappings      [][2]string // template property, message key; role and content first
	roles         map[string]string
	rolesToTrain  []string
	trainingField string
	trainOnInputs bool
	trainOnEOS    string
	trainOnEOT    string
	eotIDs        map[int32]bool
	dropSystem    bool
	// skipFirstSystem mirrors Axolotl's "mistral" special case: a system
	// turn first is never found (never trained) when the tokenizer's name
	// says mistral.
	skipFirstSystem bool
	kwargs          map[string]any
	// alwaysRender turns off writing texts from shapes (tests compare).
	alwaysRender bool
	shapes       shapeCache
}

func newChatTemplate(cfg *config.Config, ds *config.Dataset, enc *encoder, env Env) (Strategy, error) {
	tpl, source, err := chatRenderer(cfg, ds, enc, env)
	if err != nil {
		return nil, err
	}
	return newChatWith(cfg, ds, enc, tpl, source)
}

// newChatWith builds the strategy around a template already found.
func newChatWith(cfg *config.Config, ds *config.Dataset, enc *encoder, tpl renderer, source string) (*chatTemplate, error) {
	s := &chatTemplate{
		enc: enc, tpl: tpl, template: source,
		fieldMessages: orDefault(ds.FieldMessages, "messages"),
		trainingField: ds.MessageFieldTraining,
		trainOnInputs: cfg.TrainOnInputs,
		trainOnEOS:    orDefault(ds.TrainOnEOS, "turn"),
		dropSystem:    ds.DropSystemMessage,
		kwargs:        cfg.ChatTemplateKwargs,
	}
	s.trainOnEOT = orDefault(ds.TrainOnEOT, s.trainOnEOS)
	for _, opt := range []struct{ key, v string }{{"train_on_eos", s.trainOnEOS}, {"train_on_eot", s.trainOnEOT}} {
		if !slices.Contains([]string{"all", "turn", "last", "none"}, opt.v) {
			return nil, fmt.Errorf("%s: %q is not one of all, turn, last, none", opt.key, opt.v)
		}
	}
	m := ds.MessagePropertyMappings
	if len(m) == 0 {
		m = map[string]string{"role": "role", "content": "content"}
	}
	keys := slices.Collect(maps.Keys(m))
	sort.Slice(keys, func(i, j int) bool {
		return mappingRank(keys[i]) < mappingRank(keys[j]) || (mappingRank(keys[i]) == mappingRank(keys[j]) && keys[i] < keys[j])
	})
	for _, k := range keys {
		s.mappings = append(s.mappings, [2]string{k, m[k]})
	}
	roles := ds.Roles
	if len(roles) == 0 {
		roles = map[string][]string{"user": {"human", "user"}, "assistant": {"gpt", "assistant"}, "system": {"system"}, "tool": {"tool"}}
	}
	s.roles = map[string]string{}
	for target, sources := range roles {
		for _, src := range sources {
			s.roles[src] = target
		}
	}
	rolesToTrain := ds.RolesToTrain
	if rolesToTrain == nil {
		rolesToTrain = []string{"assistant"}
	}
	for _, r := range rolesToTrain {
		s.rolesToTrain = append(s.rolesToTrain, mapped(s.roles, r))
	}
	if err := s.eotTokens(cfg.EOTTokens); err != nil {
		return nil, err
	}
	for _, name := range []string{cfg.TokenizerConfig, cfg.BaseModel} {
		if strings.Contains(strings.ToLower(name), "mistral") {
			s.skipFirstSystem = true
		}
	}
	return s, nil
}

func mappingRank(k string) int {
	switch k {
	case "role":
		return 0
	case "content":
		return 1
	}
	return 2
}

func mapped(m map[string]string, k string) string {
	if v, ok := m[k]; ok {
		return v
	}
	return k
}

// eotTokens is Axolotl's _validate_eot_and_eos_tokens: eot_tokens default
// to the EOS token; otherwise only those the template writes count, each
// must be one token, and EOS among them needs train_on_eos = train_on_eot.
func (s *chatTemplate) eotTokens(eot []string) error {
	eos := s.enc.tok.Special().EOS
	if eot == nil && eos != "" {
		eot = []string{eos}
	}
	if !(len(eot) == 1 && eot[0] == eos) {
		var kept []string
		for _, t := range eot {
			if !strings.Contains(s.template, t) {
				continue // Axolotl warns and drops it
			}
			ids := s.enc.tok.Encode(t, false)
			if len(ids) != 1 {
				return fmt.Errorf("eot_tokens: %q is %d tokens %v; add it under tokens: so that it is one", t, len(ids), ids)
			}
			kept = append(kept, t)
		}
		if slices.Contains(kept, eos) && s.trainOnEOS != s.trainOnEOT {
			return fmt.Errorf("eot_tokens holds the EOS token %q, so train_on_eos (%s) and train_on_eot (%s) must agree", eos, s.trainOnEOS, s.trainOnEOT)
		}
		eot = kept
	}
	s.eotIDs = map[int32]bool{}
	for _, t := range eot {
		if ids := s.enc.tok.Encode(t, false); len(ids) == 1 {
			s.eotIDs[ids[0]] = true
		}
	}
	return nil
}

func (s *chatTemplate) Name() string { return "chat_template" }

// turn is one message of the conversation as the template sees it, and
// its training flag when the data sets one.
type turn struct {
	msg      datasets.Object
	training *bool
}

func (s *chatTemplate) Tokenize(dst []packing.Sample, row datasets.Object) ([]packing.Sample, error) {
	turns, messages, err := s.conversation(row)
	if err != nil {
		return dst, err
	}
	if len(turns) == 0 {
		return dst, nil
	}
	if messages == nil {
		messages = make([]any, len(turns))
		for i, t := range turns {
			messages[i] = t.msg
		}
	}
	scratch := scratchPool.Get().(*labelScratch)
	defer scratch.release()
	contents := contentsOf(messages, scratch.contents[:0])
	scratch.contents = contents
	sh, err := s.shapeOf(messages)
	if err != nil {
		return dst, err
	}
	// The text: written from the shape when the template only copies the
	// contents (no render), else rendered; spans[i] is where message i's
	// content is in it, when known.
	var spans []span
	placed := false
	if sh != nil && sh.direct && !s.alwaysRender {
		scratch.text, spans, placed = sh.write(scratch.text[:0], contents, scratch.spans[:0])
	}
	if !placed {
		rendered, err := s.tpl.AppendRender(scratch.text[:0], messages, s.kwargs)
		scratch.text = rendered
		if err != nil {
			return dst, err
		}
		if sh != nil {
			spans, placed = sh.locate(rendered, contents, scratch.spans[:0])
		}
	}
	if spans != nil {
		scratch.spans = spans
	}
	// text lives in the scratch buffer until this call returns: nothing
	// below keeps it (the encoder's caches copy their keys).
	text := unsafe.String(unsafe.SliceData(scratch.text), len(scratch.text))
	// The ids, and where the contents are among them: with the contents'
	// places known, one walk over the tokens' byte lengths finds their
	// tokens (ranges, by message); offsets are made only when that cannot.
	var encoded []int32
	var offsets []tokenizer.Offset
	var ranges []tokenSpan
	if s.enc.spellsBytes() {
		encoded = s.enc.tok.AppendEncode(scratch.ids[:0], text, false)
		scratch.ids = encoded
		if placed {
			ranges = s.enc.tokenRanges(encoded, len(text), spans, sh.order, scratch.ranges)
			scratch.ranges = ranges
		}
	} else {
		encoded, offsets = s.enc.encodeOffsets(text, scratch.offsets)
		scratch.offsets = offsets
	}
	// needOffsets makes the offsets when a turn's tokens must be found by them.
	needOffsets := func() error {
		if offsets == nil {
			if offsets, encoded = s.enc.offsetsOf(text, encoded, scratch.offsets); encoded == nil {
				return fmt.Errorf("the tokenizer's offsets do not cover the text")
			}
			scratch.offsets = offsets
		}
		return nil
	}
	// The sample's ids, copied without first zeroing them, and its labels as
	// a trained mask: chat labels copy or ignore their ids.
	ids := append([]int32(nil), encoded...)
	trained := make([]uint64, packing.MaskWords(len(ids)))
	// The turns whose tokens matter, and where their content is.
	var need []int
	for i, t := range turns {
		if s.trainsTurn(t) || s.trainOnEOS == "all" || s.trainOnEOT == "all" {
			need = append(need, i)
		}
	}
	eosID := s.enc.eos
	lastEOS, lastEOT := -1, -1
	for _, i := range need {
		train := s.trainsTurn(turns[i])
		if i == 0 && s.skipFirstSystem {
			if role, _ := turns[0].msg.Get("role"); role == "system" {
				continue
			}
		}
		var start, end int
		switch {
		case ranges != nil && spans[i].from >= 0:
			start, end = ranges[i].start, ranges[i].end
		case placed && spans[i].from >= 0:
			if err := needOffsets(); err != nil {
				return dst, err
			}
			start, end = tokenRange(spans[i], offsets)
		default:
			if err := needOffsets(); err != nil {
				return dst, err
			}
			if start, end, err = s.findTurn(messages, i, text, offsets); err != nil {
				return dst, err
			}
		}
		if start < 0 {
			continue
		}
		if train {
			packing.MarkTrained(trained, start, end)
		}
		for _, special := range []struct {
			eot    bool
			option string
			last   *int
		}{{true, s.trainOnEOT, &lastEOT}, {false, s.trainOnEOS, &lastEOS}} {
			// Only a token within three of the turn's end counts.
			idx := -1
			for j := end; j < min(len(ids), end+4); j++ {
				if (special.eot && s.eotIDs[ids[j]]) || (!special.eot && eosID >= 0 && ids[j] == eosID) {
					idx = j
					break
				}
			}
			if idx < 0 {
				continue
			}
			*special.last = idx
			if special.option == "all" || (special.option == "turn" && train) {
				packing.MarkTrained(trained, idx, idx+1)
			}
		}
	}
	if s.trainOnEOT == "last" && lastEOT >= 0 {
		packing.MarkTrained(trained, lastEOT, lastEOT+1)
	}
	if s.trainOnEOS == "last" && lastEOS >= 0 {
		packing.MarkTrained(trained, lastEOS, lastEOS+1)
	}
	return append(dst, packing.Sample{InputIDs: ids, TrainedMask: trained}), nil
}

// findTurn returns the tokens [start, end) of turn i's content, or -1 when
// the template does not show it (an empty turn, a turn the template drops).
func (s *chatTemplate) findTurn(messages []any, i int, text string, offsets []tokenizer.Offset) (int, int, error) {
	// Two dummies that differ in their first and last characters: a content
	// that happens to begin or end like one of them (Axolotl's diff then
	// leaves those characters out) still differs from the other there.
	from, to := len(text), 0
	swapped := slices.Clone(messages)
	for _, d := range []string{dummyContent, otherDummy} {
		swapped[i] = withContent(messages[i].(datasets.Object), d)
		other, err := s.tpl.Render(swapped, s.kwargs)
		if err != nil {
			return -1, -1, err
		}
		p := commonPrefix(text, other)
		q := commonSuffix(text[p:], other[p:])
		from, to = min(from, p), max(to, len(text)-q)
	}
	start, end := tokenRange(span{from, to}, offsets)
	return start, end, nil
}

// labelScratch holds a conversation's text, its ids and where its contents
// are (offsets or token ranges) while it is labelled, reused from one
// conversation to the next.
type labelScratch struct {
	text     []byte
	ids      []int32
	offsets  []tokenizer.Offset
	ranges   []tokenSpan
	contents []string
	spans    []span
}

// tokenSpan is the tokens [start, end) of a message's content; -1, -1 when
// it has none.
type tokenSpan struct{ start, end int }

var scratchPool = sync.Pool{New: func() any { return new(labelScratch) }}

// release returns the scratch to the pool, holding no contents: they may
// share the memory of a whole rows file, which must not outlive its rows.
func (l *labelScratch) release() {
	clear(l.contents)
	l.contents = l.contents[:0]
	scratchPool.Put(l)
}

// span is a byte range [from, to) of the rendered text.
type span struct{ from, to int }

// tokenRange is the tokens [start, end) that overlap sp, or -1, -1 when sp
// is empty.
func tokenRange(sp span, offsets []tokenizer.Offset) (int, int) {
	if sp.to <= sp.from {
		return -1, -1
	}
	// Offsets grow with the index: find the first token ending after from.
	lo, hi := 0, len(offsets)
	for lo < hi {
		mid := (lo + hi) / 2
		if offsets[mid].End <= sp.from {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	start, end := -1, -1
	for k := lo; k < len(offsets) && offsets[k].Start < sp.to; k++ {
		if offsets[k].End > sp.from {
			if start < 0 {
				start = k
			}
			end = k + 1
		}
	}
	return start, end
}

// trainsTurn says whether a turn's content counts in the loss: its own
// training flag, else train_on_inputs or a role in roles_to_train.
func (s *chatTemplate) trainsTurn(t turn) bool {
	if t.training != nil {
		return *t.training
	}
	if s.trainOnInputs {
		return true
	}
	role, _ := t.msg.Get("role")
	name, isStr := role.(string)
	if !isStr {
		name = fmt.Sprint(role)
	}
	return slices.Contains(s.rolesToTrain, name)
}

// shapeOf returns the conversation's shape: the render of the messages
// with every string content replaced by its own placeholder, which depends
// only on the roles and other keys, so it is cached per shape. nil when the
// template cannot be cut at the placeholders.
func (s *chatTemplate) shapeOf(messages []any) (*shape, error) {
	keySpace := keyPool.Get().(*[]byte)
	defer keyPool.Put(keySpace)
	key := (*keySpace)[:0]
	for _, m := range messages {
		key = appendShapeKey(key, m.(datasets.Object))
	}
	*keySpace = key
	return s.shapes.get(key, func() (*shape, error) { return s.renderShape(messages) })
}

// contentsOf lists each message's content, "" where it is not a string.
func contentsOf(messages []any, dst []string) []string {
	for _, m := range messages {
		c, _ := m.(datasets.Object).Get("content")
		str, _ := c.(string)
		dst = append(dst, str)
	}
	return dst
}

// shape is the render of a conversation with its contents replaced by
// placeholders, cut at them: glue[k] comes before the content of message
// order[k] (trimmed first when trimmed[k]), glue[len(order)] after the last.
// direct says the template only copies the contents into its text (a
// jinja Probe saw it look into none), so any conversation of this shape
// renders as its glue and contents: no render needed.
type shape struct {
	order   []int
	trimmed []bool
	glue    []string
	direct  bool
}

// maxWritten bounds a text written from a shape, as the renderer bounds
// its output (a longer one is rendered, and fails there).
const maxWritten = 64 << 20

// write appends the text of a conversation of this shape to dst, and the
// place of each message's content to spans (from -1 where the message has
// no string content). ok is false when a content is empty or blank: the
// probe saw non-empty placeholders, and a template may test a content's
// truth, trimmed or not.
func (sh *shape) write(dst []byte, contents []string, spans []span) (text []byte, _ []span, ok bool) {
	spans = noSpans(spans, len(contents))
	total := 0
	for _, g := range sh.glue {
		total += len(g)
	}
	for _, i := range sh.order {
		if chattemplate.Trim(contents[i]) == "" {
			return dst, spans, false
		}
		total += len(contents[i])
	}
	if total > maxWritten {
		return dst, spans, false
	}
	dst = slices.Grow(dst, total)
	for k, i := range sh.order {
		dst = append(dst, sh.glue[k]...)
		c := contents[i]
		if sh.trimmed[k] {
			c = chattemplate.Trim(c)
		}
		spans[i] = span{len(dst), len(dst) + len(c)}
		dst = append(dst, c...)
	}
	return append(dst, sh.glue[len(sh.order)]...), spans, true
}

// locate checks that a rendered text is this shape's glue with the
// contents where the placeholders were, and returns where each content is
// (from -1 where the message has no string content). ok is false otherwise
// (a template that rewrites contents or writes differently around them).
func (sh *shape) locate(text []byte, contents []string, spans []span) (_ []span, ok bool) {
	spans = noSpans(spans, len(contents))
	in := 0
	for k, i := range sh.order {
		glue, c := sh.glue[k], contents[i]
		if sh.trimmed[k] {
			c = chattemplate.Trim(c)
		}
		if !hasPrefixAt(text, in, glue) || !hasPrefixAt(text, in+len(glue), c) {
			return spans, false
		}
		in += len(glue)
		spans[i] = span{in, in + len(c)}
		in += len(c)
	}
	return spans, string(text[in:]) == sh.glue[len(sh.order)]
}

// hasPrefixAt says whether text[at:] begins with prefix.
func hasPrefixAt(text []byte, at int, prefix string) bool {
	return len(text)-at >= len(prefix) && string(text[at:at+len(prefix)]) == prefix
}

func noSpans(spans []span, n int) []span {
	spans = slices.Grow(spans[:0], n)[:n]
	for i := range spans {
		spans[i] = span{-1, -1}
	}
	return spans
}

// placeholder is the content renderShape gives message i, and its trimmed
// form: what the probe's trim filter returns for it, so the text shows
// which occurrence was trimmed.
func placeholder(i int) (plain, trimmed string) {
	n := strconv.Itoa(i)
	return placeholderMarker + n + "]]", placeholderMarker + n + "|trim]]"
}

const placeholderMarker = "[[dummy_message_"

// renderShape renders messages with every string content replaced by its
// own placeholder, watched by a jinja Probe, and cuts the text at them. It
// returns nil when a placeholder is not there exactly once (plain or
// trimmed), or the placeholders are out of order.
func (s *chatTemplate) renderShape(messages []any) (*shape, error) {
	swapped := slices.Clone(messages)
	probe := &chattemplate.Probe{Marker: placeholderMarker, Trimmed: map[string]string{}}
	var order []int
	for i, m := range messages {
		msg := m.(datasets.Object)
		if c, ok := msg.Get("content"); ok {
			if _, isStr := c.(string); isStr {
				plain, trimmed := placeholder(i)
				swapped[i] = withContent(msg, plain)
				probe.Trimmed[plain], probe.Trimmed[trimmed] = trimmed, trimmed
				order = append(order, i)
			}
		}
	}
	other, err := s.tpl.ProbeRender(swapped, s.kwargs, probe)
	if err != nil {
		return nil, err
	}
	sh := &shape{order: order, direct: probe.Looked == ""}
	at := 0
	for _, i := range order {
		plain, trimmed := placeholder(i)
		if strings.Count(other, plain)+strings.Count(other, trimmed) != 1 {
			return nil, nil
		}
		j, isTrimmed, d := strings.Index(other[at:], plain), false, plain
		if j < 0 {
			j, isTrimmed, d = strings.Index(other[at:], trimmed), true, trimmed
		}
		if j < 0 {
			return nil, nil // before an earlier placeholder
		}
		sh.glue = append(sh.glue, other[at:at+j])
		sh.trimmed = append(sh.trimmed, isTrimmed)
		at += j + len(d)
	}
	sh.glue = append(sh.glue, other[at:])
	return sh, nil
}

// shapeCache keeps conversation shapes by key, up to a bound (real datasets
// have few: the roles and turn counts vary, the contents do not matter).
type shapeCache struct {
	mu sync.Mutex
	m  map[string]*shape // nil value: the template cannot be cut at dummies
}

const maxShapes = 4096

func (c *shapeCache) get(key []byte, build func() (*shape, error)) (*shape, error) {
	c.mu.Lock()
	sh, ok := c.m[string(key)]
	c.mu.Unlock()
	if ok {
		return sh, nil
	}
	sh, err := build()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*shape{}
	}
	if len(c.m) < maxShapes {
		c.m[string(key)] = sh
	}
	c.mu.Unlock()
	return sh, nil
}

// keyPool holds the buffers shape keys are built in.
var keyPool = sync.Pool{New: func() any { return new([]byte) }}

// appendShapeKey appends the part of msg its shape depends on: every field
// but a string content, which only marks its place. Self-delimiting (counts
// and lengths first; JSON, which holds no 0xFF byte, ended by one), so that
// two conversations share a key only when they differ in their string
// contents alone; binary rather than JSON, as this runs for every row.
func appendShapeKey(dst []byte, msg datasets.Object) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(msg)))
	for _, f := range msg {
		dst = append(binary.AppendUvarint(dst, uint64(len(f.Name))), f.Name...)
		switch v := f.Value.(type) {
		case string:
			if f.Name == "content" {
				dst = append(dst, 'c')
				continue
			}
			dst = append(binary.AppendUvarint(append(dst, 's'), uint64(len(v))), v...)
		default:
			dst = append(datasets.AppendJSON(append(dst, 'j'), v), 0xFF)
		}
	}
	return dst
}

func withContent(msg datasets.Object, content string) datasets.Object {
	out := make(datasets.Object, 0, len(msg))
	for _, f := range msg {
		if f.Name == "content" {
			f.Value = content
		}
		out = append(out, f)
	}
	return out
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func commonSuffix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[len(a)-1-i] != b[len(b)-1-i] {
			return i
		}
	}
	return n
}

// conversation is Axolotl's get_conversation_thread: the messages of the
// row (a list, or a JSON string holding one), each mapped to the template's
// property names and roles, a system turn from the row's "system" field when
// the conversation has none, and the first system turn dropped with
// drop_system_message. messages is the row's own list when the turns are its
// messages unchanged, one for one (nil otherwise: the caller lists them).
func (s *chatTemplate) conversation(row datasets.Object) (turns []turn, messages []any, err error) {
	v, ok := row.Get(s.fieldMessages)
	if !ok || v == nil {
		return nil, nil, fmt.Errorf("field %q is missing (field_messages)", s.fieldMessages)
	}
	if str, isStr := v.(string); isStr {
		parsed, err := parseJSONOrdered(str)
		if err != nil {
			return nil, nil, fmt.Errorf("field %q holds a string that is not a JSON list of messages: %w", s.fieldMessages, err)
		}
		v = parsed
	}
	list, ok := v.([]any)
	if !ok {
		return nil, nil, fmt.Errorf("field %q is %s, want a list of messages", s.fieldMessages, datasets.Kind(v))
	}
	turns = make([]turn, 0, len(list)+1)
	same := true // turns[i].msg is list[i], unchanged
	for i, m := range list {
		msg, ok := m.(datasets.Object)
		if !ok {
			return nil, nil, fmt.Errorf("%s[%d] is %s, want a message object", s.fieldMessages, i, datasets.Kind(m))
		}
		t, err := s.transform(msg)
		if err != nil {
			return nil, nil, fmt.Errorf("%s[%d]: %w", s.fieldMessages, i, err)
		}
		if i == 0 {
			if role, _ := t.msg.Get("role"); role != "system" {
				if sys, ok := row.Get("system"); ok && sys != nil {
					turns = append(turns, turn{msg: datasets.Object{{Name: "role", Value: "system"}, {Name: "content", Value: sys}}})
					same = false
				}
			}
		}
		same = same && sameObject(t.msg, msg)
		turns = append(turns, t)
	}
	if s.dropSystem && len(turns) > 0 {
		if role, _ := turns[0].msg.Get("role"); role == "system" {
			turns = turns[1:]
			same = false
		}
	}
	if same {
		// The template gets the row's own list of messages: no new list,
		// no message boxed again.
		messages = list
	}
	return turns, messages, nil
}

// sameObject reports whether a and b are the same object (one backing
// array), as transform returns a message it keeps.
func sameObject(a, b datasets.Object) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// transform is Axolotl's transform_message: the mapped properties (null
// ones left out), the role mapped, and the message's other keys kept as
// they are (Axolotl keeps those the template refers to; the others do not
// change what it writes), bar the training flag. Content given as a list of
// parts is joined into one string, as Axolotl does.
func (s *chatTemplate) transform(msg datasets.Object) (turn, error) {
	if s.unchanged(msg) {
		return turn{msg: msg}, nil
	}
	t := turn{msg: make(datasets.Object, 0, len(msg))}
	for _, m := range s.mappings {
		v, ok := msg.Get(m[1])
		if !ok || v == nil {
			continue
		}
		if m[0] == "role" {
			if r, isStr := v.(string); isStr {
				v = mapped(s.roles, r)
			}
		}
		if m[0] == "content" {
			if parts, isList := v.([]any); isList {
				joined, err := joinParts(parts)
				if err != nil {
					return t, err
				}
				v = joined
			}
		}
		t.msg = append(t.msg, datasets.Field{Name: m[0], Value: v})
	}
	for _, f := range msg {
		if s.isMapped(f.Name) || f.Value == nil {
			continue
		}
		if s.trainingField != "" && f.Name == s.trainingField {
			b, ok := f.Value.(bool)
			if !ok {
				if n, isInt := f.Value.(int64); isInt && (n == 0 || n == 1) {
					b, ok = n == 1, true
				}
			}
			if !ok {
				return t, fmt.Errorf("%s is %s, want true or false (message_field_training)", f.Name, datasets.Kind(f.Value))
			}
			t.training = &b
			continue
		}
		if _, taken := t.msg.Get(f.Name); !taken {
			t.msg = append(t.msg, f)
		}
	}
	if _, ok := t.msg.Get("role"); !ok {
		return t, fmt.Errorf("no %q (message_property_mappings.role)", s.mappingOf("role"))
	}
	return t, nil
}

// unchanged says whether transform would give msg back as it is: its keys
// are exactly the mapped properties, each its own source and in their
// order, none null, a string role the roles mapping keeps, a string content.
// Most datasets' messages are, and then no copy is made.
func (s *chatTemplate) unchanged(msg datasets.Object) bool {
	if len(msg) != len(s.mappings) {
		return false
	}
	for k, m := range s.mappings {
		f := msg[k]
		if f.Name != m[0] || m[0] != m[1] || f.Value == nil || f.Name == s.trainingField {
			return false
		}
		switch f.Name {
		case "role":
			r, isStr := f.Value.(string)
			if !isStr || mapped(s.roles, r) != r {
				return false
			}
		case "content":
			if _, isStr := f.Value.(string); !isStr {
				return false
			}
		}
	}
	return true
}

// isMapped says whether a message key is the source of a mapped property.
func (s *chatTemplate) isMapped(key string) bool {
	for _, m := range s.mappings {
		if m[1] == key {
			return true
		}
	}
	return false
}

func (s *chatTemplate) mappingOf(prop string) string {
	for _, m := range s.mappings {
		if m[0] == prop {
			return m[1]
		}
	}
	return prop
}

// joinParts is Axolotl's _convert_content_parts without per-part training:
// the text of each part ("text", else "content", else "value") joined.
func joinParts(parts []any) (string, error) {
	var b strings.Builder
	for i, p := range parts {
		obj, ok := p.(datasets.Object)
		if !ok {
			return "", fmt.Errorf("content[%d] is %s, want a part object", i, datasets.Kind(p))
		}
		for _, key := range []string{"train", "weight"} {
			if v, ok := obj.Get(key); ok && v != nil {
				return "", fmt.Errorf("content[%d].%s: per-part training flags are not supported (use message_field_training)", i, key)
			}
		}
		for _, key := range []string{"text", "content", "value"} {
			if v, ok := obj.Get(key); ok {
				if str, isStr := v.(string); isStr && str != "" {
					b.WriteString(str)
					break
				}
			}
		}
	}
	return b.String(), nil
}

// parseJSONOrdered decodes JSON keeping object key order (datasets.Object)
// and integers exact, as the dataset readers do.
func parseJSONOrdered(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return v, nil
}

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			var obj datasets.Object
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				obj = append(obj, datasets.Field{Name: k.(string), Value: v})
			}
			_, err := dec.Token()
			return obj, err
		case '[':
			list := []any{}
			for dec.More() {
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token()
			return list, err
		}
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n, nil
		}
		return t.Float64()
	}
	return tok, nil
}

// chatRenderer finds the dataset's chat template as Axolotl does
// (config.ChatTemplateFor: its own choice, the config's, or the
// tokenizer's) and returns it ready to render, with its source text.
func chatRenderer(cfg *config.Config, ds *config.Dataset, enc *encoder, env Env) (renderer, string, error) {
	choice, jinja := cfg.ChatTemplateFor(ds)
	if jinja != "" && !filepath.IsAbs(jinja) && env.WorkDir != "" && strings.HasSuffix(jinja, ".jinja") {
		jinja = filepath.Join(env.WorkDir, jinja)
	}
	var tc *chattemplate.TokenizerConfig
	if env.TokenizerDir != "" {
		var err error
		if tc, err = chattemplate.LoadTokenizerConfig(env.TokenizerDir); err != nil {
			return nil, "", err
		}
	}
	tpl, err := chattemplate.Resolve(choice, jinja, tc)
	if err != nil {
		if tc == nil && errors.Is(err, chattemplate.ErrNoTemplate) {
			return nil, "", fmt.Errorf("chat_template %s: %w (the tokenizer's folder is not known here)", choice, err)
		}
		return nil, "", err
	}
	specials := map[string]any{}
	if tc != nil {
		maps.Copy(specials, tc.SpecialTokens)
	}
	// The run's special_tokens replace the tokenizer's, as Axolotl sets them
	// on the tokenizer before rendering.
	for role, v := range map[string]string{"bos_token": cfg.SpecialTokens.BOSToken, "eos_token": cfg.SpecialTokens.EOSToken,
		"pad_token": cfg.SpecialTokens.PadToken, "unk_token": cfg.SpecialTokens.UnkToken} {
		if v != "" {
			specials[role] = v
		}
	}
	if tc == nil {
		// No tokenizer_config.json at hand: the tokenizer's own names.
		sp := enc.tok.Special()
		for role, v := range map[string]string{"bos_token": sp.BOS, "eos_token": sp.EOS, "pad_token": sp.PAD, "unk_token": sp.UNK} {
			if _, ok := specials[role]; !ok && v != "" {
				specials[role] = v
			}
		}
	}
	return templateRenderer{tpl: tpl, specials: specials}, tpl.Source, nil
}

// templateRenderer renders with a chat template and the special tokens it sees.
type templateRenderer struct {
	tpl      *chattemplate.Template
	specials map[string]any
}

func (r templateRenderer) request(messages []any, kwargs map[string]any) chattemplate.Request {
	return chattemplate.Request{Messages: messages, SpecialTokens: r.specials, Kwargs: kwargs}
}

func (r templateRenderer) Render(messages []any, kwargs map[string]any) (string, error) {
	return r.tpl.Render(r.request(messages, kwargs))
}

func (r templateRenderer) AppendRender(dst []byte, messages []any, kwargs map[string]any) ([]byte, error) {
	return r.tpl.AppendRender(dst, r.request(messages, kwargs))
}

func (r templateRenderer) ProbeRender(messages []any, kwargs map[string]any, p *chattemplate.Probe) (string, error) {
	return r.tpl.ProbeRender(r.request(messages, kwargs), p)
}
