package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer is a Hugging Face tokenizer loaded from tokenizer.json (and
// tokenizer_config.json). Encoding and decoding are safe for concurrent use;
// AddTokens and the Set methods are not and belong before first use.
type Tokenizer struct {
	model      model
	normalizer normalizer
	preTok     preTokenizer
	post       postProcessor
	decoder    decoder
	added      *addedVocab

	// needAlign: the pipeline reads original offsets (Metaspace's "first"
	// scheme), so alignments are tracked even when nobody asks for offsets.
	needAlign bool
	// prefixIDs/suffixIDs: what the post-processor puts around the ids.
	prefixIDs, suffixIDs []int32

	special SpecialTokens
	// free holds idle encoders (buffers and BPE word caches).
	free chan *encoder
}

// SpecialTokens names the tokenizer's bos, eos, pad and unk tokens (from
// tokenizer_config.json, the model's unk_token for UNK otherwise). An id of
// -1 means the tokenizer has no such token.
type SpecialTokens struct {
	BOS, EOS, PAD, UNK         string
	BOSID, EOSID, PADID, UNKID int32
}

// Load reads a Hugging Face tokenizer directory: tokenizer.json (or
// tokenizer.json.gz) and, when present, tokenizer_config.json.
func Load(dir string) (*Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		gzPath := path + ".gz"
		if data, err = readGzip(gzPath); err == nil {
			path = gzPath
		} else if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tokenizer: %s: no tokenizer.json", dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	cfg, err := os.ReadFile(cfgPath)
	if errors.Is(err, fs.ErrNotExist) {
		cfg, cfgPath = nil, ""
	} else if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return New(data, path, cfg, cfgPath)
}

func readGzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// New builds a tokenizer from the contents of tokenizer.json and, if not
// nil, tokenizer_config.json; the names are used in error messages.
func New(tokenizerJSON []byte, name string, configJSON []byte, configName string) (*Tokenizer, error) {
	if name == "" {
		name = "tokenizer.json"
	}
	t, err := parseTokenizer(tokenizerJSON, name)
	if err != nil {
		return nil, err
	}
	if configJSON != nil {
		if configName == "" {
			configName = "tokenizer_config.json"
		}
		if err := t.applyConfig(configJSON, configName); err != nil {
			return nil, err
		}
	}
	t.finish()
	return t, nil
}

// jsonObj is a decoded JSON object with its path, for error messages.
type jsonObj struct {
	file string
	path string
	m    map[string]json.RawMessage
}

func (o jsonObj) errorf(key, format string, args ...any) error {
	p := o.path
	if key != "" {
		if p != "" {
			p += "."
		}
		p += key
	}
	return fmt.Errorf("tokenizer: %s: %s: %s", o.file, p, fmt.Sprintf(format, args...))
}

func decodeObj(file, path string, raw json.RawMessage) (jsonObj, error) {
	o := jsonObj{file: file, path: path}
	if err := json.Unmarshal(raw, &o.m); err != nil {
		return o, fmt.Errorf("tokenizer: %s: %s: want an object: %v", file, path, err)
	}
	return o, nil
}

func (o jsonObj) has(key string) bool {
	raw, ok := o.m[key]
	return ok && string(raw) != "null"
}

// get decodes key into v when present and not null.
func (o jsonObj) get(key string, v any) (bool, error) {
	if !o.has(key) {
		return false, nil
	}
	if err := json.Unmarshal(o.m[key], v); err != nil {
		return true, o.errorf(key, "%v", err)
	}
	return true, nil
}

func (o jsonObj) str(key, def string) (string, error) {
	v := def
	_, err := o.get(key, &v)
	return v, err
}

func (o jsonObj) boolean(key string, def bool) (bool, error) {
	v := def
	_, err := o.get(key, &v)
	return v, err
}

func (o jsonObj) integer(key string, def int) (int, error) {
	v := def
	_, err := o.get(key, &v)
	return v, err
}

func (o jsonObj) typ() (string, error) {
	var t string
	if ok, err := o.get("type", &t); err != nil || !ok {
		if err == nil {
			err = o.errorf("type", "missing")
		}
		return "", err
	}
	return t, nil
}

func (o jsonObj) list(key string) ([]jsonObj, error) {
	var raws []json.RawMessage
	if _, err := o.get(key, &raws); err != nil {
		return nil, err
	}
	out := make([]jsonObj, len(raws))
	for i, r := range raws {
		p := fmt.Sprintf("%s.%s[%d]", o.path, key, i)
		obj, err := decodeObj(o.file, strings.TrimPrefix(p, "."), r)
		if err != nil {
			return nil, err
		}
		out[i] = obj
	}
	return out, nil
}

// splitPattern reads a {"String": s} or {"Regex": r} pattern.
func (o jsonObj) splitPattern(key string) (pattern, string, error) {
	var p struct {
		String *string
		Regex  *string
	}
	if ok, err := o.get(key, &p); err != nil || !ok {
		if err == nil {
			err = o.errorf(key, "missing")
		}
		return nil, "", err
	}
	switch {
	case p.String != nil:
		return literalPattern{lit: []byte(*p.String)}, *p.String, nil
	case p.Regex != nil:
		pat, err := compileRegex(*p.Regex)
		if err != nil {
			return nil, "", o.errorf(key, "%v", err)
		}
		return pat, *p.Regex, nil
	}
	return nil, "", o.errorf(key, "want {\"String\": ...} or {\"Regex\": ...}")
}

func (o jsonObj) char(key string, def rune) (rune, error) {
	s, err := o.str(key, string(def))
	if err != nil {
		return 0, err
	}
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || n != len(s) {
		return 0, o.errorf(key, "want one character, got %q", s)
	}
	return r, nil
}

func parseTokenizer(data []byte, file string) (*Tokenizer, error) {
	s := &jsonScanner{data: data, file: file}
	fields := map[string][]byte{}
	var m model
	err := s.eachMember(func(key string) error {
		if key == "model" {
			var err error
			m, err = parseModel(s)
			return err
		}
		raw, err := s.skipValue()
		fields[key] = raw
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("tokenizer: %s: no model", file)
	}
	if v, ok := fields["version"]; ok && string(v) != `"1.0"` {
		return nil, fmt.Errorf("tokenizer: %s: version: unknown tokenizer version %s", file, v)
	}
	t := &Tokenizer{model: m, added: newAddedVocab()}
	if raw := fields["normalizer"]; raw != nil && string(raw) != "null" {
		obj, err := decodeObj(file, "normalizer", raw)
		if err != nil {
			return nil, err
		}
		if t.normalizer, err = buildNormalizer(obj); err != nil {
			return nil, err
		}
	}
	if raw := fields["pre_tokenizer"]; raw != nil && string(raw) != "null" {
		obj, err := decodeObj(file, "pre_tokenizer", raw)
		if err != nil {
			return nil, err
		}
		if t.preTok, err = t.buildPreTokenizer(obj); err != nil {
			return nil, err
		}
	}
	if raw := fields["decoder"]; raw != nil && string(raw) != "null" {
		obj, err := decodeObj(file, "decoder", raw)
		if err != nil {
			return nil, err
		}
		if t.decoder, err = buildDecoder(obj); err != nil {
			return nil, err
		}
	}
	if raw := fields["added_tokens"]; raw != nil && string(raw) != "null" {
		var list []struct {
			ID int32 `json:"id"`
			AddedToken
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: added_tokens: %v", file, err)
		}
		toks := make([]AddedToken, len(list))
		for i, a := range list {
			toks[i] = a.AddedToken
		}
		t.addTokens(toks)
	}
	// The post-processor refers to token ids, so it comes last.
	if raw := fields["post_processor"]; raw != nil && string(raw) != "null" {
		obj, err := decodeObj(file, "post_processor", raw)
		if err != nil {
			return nil, err
		}
		if t.post, err = buildPostProcessor(obj); err != nil {
			return nil, err
		}
	}
	t.special = SpecialTokens{BOSID: -1, EOSID: -1, PADID: -1, UNKID: -1}
	if bpe, ok := m.(*bpeModel); ok && bpe.unkID >= 0 {
		t.special.UNK, t.special.UNKID = bpe.unkToken, bpe.unkID
	}
	if wp, ok := m.(*wordPieceModel); ok {
		t.special.UNK, t.special.UNKID = wp.vocabR[wp.unkID], wp.unkID
	}
	return t, nil
}

func buildNormalizer(o jsonObj) (normalizer, error) {
	typ, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		seq, err := buildSequence(o, "normalizers", buildNormalizer)
		return sequenceNormalizer(seq), err
	case "NFC":
		return unicodeNormalizer{norm.NFC}, nil
	case "NFD":
		return unicodeNormalizer{norm.NFD}, nil
	case "NFKC":
		return unicodeNormalizer{norm.NFKC}, nil
	case "NFKD":
		return unicodeNormalizer{norm.NFKD}, nil
	case "Lowercase":
		return lowercaseNormalizer{}, nil
	case "Strip":
		l, err := o.boolean("strip_left", true)
		if err != nil {
			return nil, err
		}
		r, err := o.boolean("strip_right", true)
		return stripNormalizer{left: l, right: r}, err
	case "StripAccents":
		return stripAccentsNormalizer(), nil
	case "Nmt":
		return nmtNormalizer(), nil
	case "Prepend":
		p, err := o.str("prepend", "")
		return prependNormalizer{prefix: p}, err
	case "Replace":
		pat, src, err := o.splitPattern("pattern")
		if err != nil {
			return nil, err
		}
		if src == "" {
			return nil, o.errorf("pattern", "empty pattern")
		}
		content, err := o.str("content", "")
		return &replaceNormalizer{pat: pat, content: content}, err
	case "ByteLevel":
		return byteLevelNormalizer{}, nil
	case "BertNormalizer":
		var b bertNormalizer
		var err error
		if b.cleanText, err = o.boolean("clean_text", true); err != nil {
			return nil, err
		}
		if b.handleChinese, err = o.boolean("handle_chinese_chars", true); err != nil {
			return nil, err
		}
		if b.lowercase, err = o.boolean("lowercase", true); err != nil {
			return nil, err
		}
		if b.stripAccents, err = o.boolean("strip_accents", b.lowercase); err != nil {
			return nil, err
		}
		return b, nil
	case "Precompiled":
		var charsmap string
		if _, err := o.get("precompiled_charsmap", &charsmap); err != nil {
			return nil, err
		}
		if charsmap == "" {
			return sequenceNormalizer{}, nil
		}
		return nil, o.errorf("type", "normalizer Precompiled (SentencePiece charsmap) is not supported")
	}
	return nil, o.errorf("type", "unknown normalizer %q", typ)
}

func behaviorOf(o jsonObj, key string, def splitBehavior) (splitBehavior, error) {
	name := ""
	if _, err := o.get(key, &name); err != nil {
		return 0, err
	}
	if name == "" {
		return def, nil
	}
	b, ok := behaviorNames[name]
	if !ok {
		return 0, o.errorf(key, "unknown split behavior %q", name)
	}
	return b, nil
}

func prependScheme(o jsonObj) (string, error) {
	scheme, err := o.str("prepend_scheme", "")
	if err != nil {
		return "", err
	}
	if scheme == "" {
		scheme = "always"
		if addPrefix, err := o.boolean("add_prefix_space", true); err != nil {
			return "", err
		} else if !addPrefix {
			scheme = "never"
		}
	}
	if scheme != "always" && scheme != "first" && scheme != "never" {
		return "", o.errorf("prepend_scheme", "unknown prepend scheme %q", scheme)
	}
	return scheme, nil
}

func (t *Tokenizer) buildPreTokenizer(o jsonObj) (preTokenizer, error) {
	typ, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		seq, err := buildSequence(o, "pretokenizers", t.buildPreTokenizer)
		return sequencePreTokenizer(seq), err
	case "Split":
		pat, _, err := o.splitPattern("pattern")
		if err != nil {
			return nil, err
		}
		b, err := behaviorOf(o, "behavior", behaviorIsolated)
		if err != nil {
			return nil, err
		}
		inv, err := o.boolean("invert", false)
		return &splitPreTokenizer{pat: pat, behavior: b, invert: inv}, err
	case "ByteLevel":
		aps, err := o.boolean("add_prefix_space", true)
		if err != nil {
			return nil, err
		}
		re, err := o.boolean("use_regex", true)
		return &byteLevelPreTokenizer{addPrefixSpace: aps, useRegex: re}, err
	case "Metaspace":
		r, err := o.char("replacement", '▁')
		if err != nil {
			return nil, err
		}
		scheme, err := prependScheme(o)
		if err != nil {
			return nil, err
		}
		split, err := o.boolean("split", true)
		if scheme == "first" {
			t.needAlign = true
		}
		return &metaspacePreTokenizer{replacement: r, prepend: scheme, split: split}, err
	case "Whitespace":
		return &patternPreTokenizer{pat: wordPunctPattern{}, behavior: behaviorRemoved, invert: true}, nil
	case "WhitespaceSplit":
		return &patternPreTokenizer{pat: charPattern(isSpace), behavior: behaviorRemoved}, nil
	case "Digits":
		individual, err := o.boolean("individual_digits", false)
		b := behaviorContiguous
		if individual {
			b = behaviorIsolated
		}
		return &patternPreTokenizer{pat: charPattern(isNumeric), behavior: b}, err
	case "Punctuation":
		b, err := behaviorOf(o, "behavior", behaviorIsolated)
		return &patternPreTokenizer{pat: charPattern(isPunctuation), behavior: b}, err
	case "BertPreTokenizer":
		return sequencePreTokenizer{
			&patternPreTokenizer{pat: charPattern(isSpace), behavior: behaviorRemoved},
			&patternPreTokenizer{pat: charPattern(isPunctuation), behavior: behaviorIsolated},
		}, nil
	case "CharDelimiterSplit":
		d, err := o.char("delimiter", ' ')
		return &patternPreTokenizer{pat: charPattern(func(r rune) bool { return r == d }), behavior: behaviorRemoved}, err
	case "FixedLength":
		n, err := o.integer("length", 5)
		if err == nil && n <= 0 {
			err = o.errorf("length", "must be positive")
		}
		return &fixedLengthPreTokenizer{length: n}, err
	}
	return nil, o.errorf("type", "unknown or unsupported pre-tokenizer %q", typ)
}

// buildSequence builds each component listed under key (a Sequence's
// normalizers, pre-tokenizers, decoders or processors).
func buildSequence[T any](o jsonObj, key string, build func(jsonObj) (T, error)) ([]T, error) {
	items, err := o.list(key)
	if err != nil {
		return nil, err
	}
	seq := make([]T, 0, len(items))
	for _, it := range items {
		c, err := build(it)
		if err != nil {
			return nil, err
		}
		seq = append(seq, c)
	}
	return seq, nil
}

func buildDecoder(o jsonObj) (decoder, error) {
	typ, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		seq, err := buildSequence(o, "decoders", buildDecoder)
		return sequenceDecoder(seq), err
	case "ByteLevel":
		return byteLevelDecoder{}, nil
	case "ByteFallback":
		return byteFallbackDecoder{}, nil
	case "Fuse":
		return fuseDecoder{}, nil
	case "Strip":
		c, err := o.char("content", ' ')
		if err != nil {
			return nil, err
		}
		start, err := o.integer("start", 0)
		if err != nil {
			return nil, err
		}
		stop, err := o.integer("stop", 0)
		return stripDecoder{content: c, start: start, stop: stop}, err
	case "Replace":
		pat, src, err := o.splitPattern("pattern")
		if err != nil {
			return nil, err
		}
		if src == "" {
			return nil, o.errorf("pattern", "empty pattern")
		}
		content, err := o.str("content", "")
		return replaceDecoder{pat: pat, content: content}, err
	case "Metaspace":
		r, err := o.char("replacement", '▁')
		if err != nil {
			return nil, err
		}
		scheme, err := prependScheme(o)
		return metaspaceDecoder{replacement: r, prepend: scheme}, err
	case "WordPiece":
		prefix, err := o.str("prefix", "##")
		if err != nil {
			return nil, err
		}
		cleanup, err := o.boolean("cleanup", true)
		return wordPieceDecoder{prefix: prefix, cleanup: cleanup}, err
	case "BPEDecoder":
		suffix, err := o.str("suffix", "</w>")
		return bpeDecoder{suffix: suffix}, err
	case "CTC":
		pad, err := o.str("pad_token", "<pad>")
		if err != nil {
			return nil, err
		}
		wd, err := o.str("word_delimiter_token", "|")
		if err != nil {
			return nil, err
		}
		cleanup, err := o.boolean("cleanup", true)
		return ctcDecoder{pad: pad, wordDelimiter: wd, cleanup: cleanup}, err
	}
	return nil, o.errorf("type", "unknown decoder %q", typ)
}

func buildPostProcessor(o jsonObj) (postProcessor, error) {
	typ, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		seq, err := buildSequence(o, "processors", buildPostProcessor)
		return sequenceProcessor(seq), err
	case "ByteLevel":
		trim, err := o.boolean("trim_offsets", true)
		if err != nil {
			return nil, err
		}
		aps, err := o.boolean("add_prefix_space", true)
		return &byteLevelProcessor{trimOffsets: trim, addPrefixSpace: aps}, err
	case "TemplateProcessing":
		var specials map[string]struct {
			IDs []int32 `json:"ids"`
		}
		if _, err := o.get("special_tokens", &specials); err != nil {
			return nil, err
		}
		var single []map[string]struct {
			ID string `json:"id"`
		}
		if ok, err := o.get("single", &single); err != nil || !ok {
			if err == nil {
				err = o.errorf("single", "missing")
			}
			return nil, err
		}
		tp := &templateProcessor{}
		for i, item := range single {
			if seq, ok := item["Sequence"]; ok {
				if seq.ID != "A" {
					return nil, o.errorf(fmt.Sprintf("single[%d]", i), "single template uses sequence %q", seq.ID)
				}
				tp.single = append(tp.single, templatePiece{sequence: true})
				continue
			}
			st, ok := item["SpecialToken"]
			if !ok {
				return nil, o.errorf(fmt.Sprintf("single[%d]", i), "want Sequence or SpecialToken")
			}
			sp, ok := specials[st.ID]
			if !ok {
				return nil, o.errorf(fmt.Sprintf("single[%d]", i), "special token %q missing from special_tokens", st.ID)
			}
			tp.single = append(tp.single, templatePiece{ids: sp.IDs})
		}
		return tp, nil
	case "RobertaProcessing", "BertProcessing":
		var sep, cls [2]any
		if _, err := o.get("sep", &sep); err != nil {
			return nil, err
		}
		if _, err := o.get("cls", &cls); err != nil {
			return nil, err
		}
		sepID, ok1 := sep[1].(float64)
		clsID, ok2 := cls[1].(float64)
		if !ok1 || !ok2 {
			return nil, o.errorf("sep", "want [token, id] pairs for sep and cls")
		}
		if typ == "BertProcessing" {
			return &bertProcessor{cls: int32(clsID), sep: int32(sepID)}, nil
		}
		trim, err := o.boolean("trim_offsets", true)
		if err != nil {
			return nil, err
		}
		aps, err := o.boolean("add_prefix_space", true)
		return &robertaProcessor{cls: int32(clsID), sep: int32(sepID), trimOffsets: trim, addPrefixSpace: aps}, err
	}
	return nil, o.errorf("type", "unknown post-processor %q", typ)
}

// addTokens registers added tokens the way Hugging Face's
// AddedVocabulary::add_tokens does: a token already known (model or added)
// keeps its id, a new one gets the next free id.
func (t *Tokenizer) addTokens(toks []AddedToken) int {
	a := t.added
	next := int32(t.model.vocabSize())
	maxAdded := int32(-1)
	for id := range a.byID {
		maxAdded = max(maxAdded, id)
	}
	if maxAdded >= 0 && (maxAdded >= next || next == 0) {
		next = maxAdded + 1
	}
	n := 0
	for _, tok := range toks {
		if tok.Content == "" {
			continue
		}
		if id, ok := a.ids[tok.Content]; ok && a.byID[id] == tok {
			continue
		}
		id, ok := t.TokenToID(tok.Content)
		if !ok {
			id = next
			next++
		}
		if tok.Normalized && t.normalizer != nil {
			var b textBuf
			b.reset(tok.Content, 0, false)
			t.normalizer.normalize(&b)
			if s := string(b.text); s != tok.Content {
				a.normForm[id] = s
			} else {
				delete(a.normForm, id)
			}
		}
		a.ids[tok.Content] = id
		if tok.Special {
			a.special[tok.Content] = true
		}
		a.byID[id] = tok
		n++
	}
	raw, normed := map[string]int32{}, map[string]int32{}
	for id, tok := range a.byID {
		if tok.Normalized {
			content := tok.Content
			if s, ok := a.normForm[id]; ok {
				content = s
			}
			normed[content] = id
		} else {
			raw[tok.Content] = id
		}
	}
	a.rawTrie, a.normTrie = buildTrie(raw), buildTrie(normed)
	return n
}

// finish derives what encoding needs from the loaded parts.
func (t *Tokenizer) finish() {
	// Drop idle encoders: their caches may predate a vocabulary change.
	t.free = make(chan *encoder, max(4, 2*runtime.GOMAXPROCS(0)))
	if bpe, ok := t.model.(*bpeModel); ok && hasByteLevel(t.preTok) {
		bpe.prepareByteLevel()
	}
	// Find what the post-processor wraps around a sequence by running it on
	// a marker.
	t.prefixIDs, t.suffixIDs = nil, nil
	if t.post != nil {
		const marker = -7
		e := Encoding{IDs: []int32{marker}}
		t.post.process(t, &e, true)
		for i, id := range e.IDs {
			if id == marker {
				t.prefixIDs = append([]int32(nil), e.IDs[:i]...)
				t.suffixIDs = append([]int32(nil), e.IDs[i+1:]...)
				break
			}
		}
	}
}

func hasByteLevel(p preTokenizer) bool {
	switch p := p.(type) {
	case *byteLevelPreTokenizer:
		return true
	case sequencePreTokenizer:
		for _, q := range p {
			if hasByteLevel(q) {
				return true
			}
		}
	}
	return false
}

// parseModel reads the "model" object. Vocabulary and merges go through
// the scanner (one allocation for all token strings); the few scalar
// fields through encoding/json.
func parseModel(s *jsonScanner) (model, error) {
	start := s.pos
	fields := map[string][]byte{}
	var vocab map[string]int32
	var unigram []unigramPiece
	var mergesAt = -1
	err := s.eachMember(func(key string) error {
		switch key {
		case "vocab":
			var err error
			switch s.peek() {
			case '{':
				vocab, err = parseVocab(s)
			case '[':
				unigram, err = parseUnigramVocab(s)
			default:
				return s.errorf("model.vocab: want an object or a list")
			}
			return err
		case "merges":
			mergesAt = s.pos
			_, err := s.skipValue()
			return err
		}
		raw, err := s.skipValue()
		fields[key] = raw
		return err
	})
	if err != nil {
		return nil, err
	}
	o := jsonObj{file: s.file, path: "model", m: map[string]json.RawMessage{}}
	for k, v := range fields {
		o.m[k] = v
	}
	typ, _ := o.str("type", "")
	if typ == "" {
		switch {
		case mergesAt >= 0:
			typ = "BPE"
		case unigram != nil:
			typ = "Unigram"
		case o.has("continuing_subword_prefix") || o.has("max_input_chars_per_word"):
			typ = "WordPiece"
		default:
			typ = "WordLevel"
		}
	}
	switch typ {
	case "BPE":
		if vocab == nil || mergesAt < 0 {
			return nil, s.errorAt(start, "model: BPE needs vocab and merges")
		}
		m := &bpeModel{vocabulary: vocabulary{vocab: vocab, vocabR: reverseVocab(vocab)}}
		var err error
		if m.unkToken, err = o.str("unk_token", ""); err != nil {
			return nil, err
		}
		if m.prefix, err = o.str("continuing_subword_prefix", ""); err != nil {
			return nil, err
		}
		if m.suffix, err = o.str("end_of_word_suffix", ""); err != nil {
			return nil, err
		}
		if m.fuseUnk, err = o.boolean("fuse_unk", false); err != nil {
			return nil, err
		}
		if m.byteFallback, err = o.boolean("byte_fallback", false); err != nil {
			return nil, err
		}
		if m.ignoreMerges, err = o.boolean("ignore_merges", false); err != nil {
			return nil, err
		}
		var dropout float64
		if _, err := o.get("dropout", &dropout); err != nil {
			return nil, err
		}
		if dropout < 0 || dropout > 1 {
			return nil, o.errorf("dropout", "must be within [0, 1], got %v", dropout)
		}
		if dropout > 0 {
			return nil, o.errorf("dropout", "BPE dropout %v is random; only deterministic tokenizers are supported", dropout)
		}
		ms := &jsonScanner{data: s.data, pos: mergesAt, file: s.file}
		if m.merges, err = parseMerges(ms, vocab, len(m.prefix)); err != nil {
			return nil, err
		}
		if err := m.finish(); err != nil {
			return nil, o.errorf("unk_token", "%v", err)
		}
		return m, nil
	case "WordPiece":
		if vocab == nil {
			return nil, s.errorAt(start, "model: WordPiece needs a vocab object")
		}
		w := &wordPieceModel{vocabulary: vocabulary{vocab: vocab, vocabR: reverseVocab(vocab)}}
		unk, err := o.str("unk_token", "[UNK]")
		if err != nil {
			return nil, err
		}
		id, ok := vocab[unk]
		if !ok {
			return nil, o.errorf("unk_token", "%q is not in the vocabulary", unk)
		}
		w.unkID = id
		if w.prefix, err = o.str("continuing_subword_prefix", "##"); err != nil {
			return nil, err
		}
		if w.maxInputChar, err = o.integer("max_input_chars_per_word", 100); err != nil {
			return nil, err
		}
		return w, nil
	case "WordLevel":
		if vocab == nil {
			return nil, s.errorAt(start, "model: WordLevel needs a vocab object")
		}
		w := &wordLevelModel{vocabulary: vocabulary{vocab: vocab, vocabR: reverseVocab(vocab)}, unkID: -1}
		unk, err := o.str("unk_token", "")
		if err != nil {
			return nil, err
		}
		if unk != "" {
			id, ok := vocab[unk]
			if !ok {
				return nil, o.errorf("unk_token", "%q is not in the vocabulary", unk)
			}
			w.unkID = id
		}
		return w, nil
	case "Unigram":
		if unigram == nil {
			return nil, s.errorAt(start, "model: Unigram needs a vocab list")
		}
		return newUnigram(unigram, o)
	}
	return nil, o.errorf("type", "unknown model %q", typ)
}

// parseVocab reads {"token": id, ...}.
func parseVocab(s *jsonScanner) (map[string]int32, error) {
	type entry struct{ off, n, id int32 }
	arena := make([]byte, 0, len(s.data)/4)
	var entries []entry
	var buf []byte
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	if s.peek() == '}' {
		s.pos++
		return map[string]int32{}, nil
	}
	for {
		key, nb, err := s.readString(buf)
		buf = nb
		if err != nil {
			return nil, err
		}
		if err := s.expect(':'); err != nil {
			return nil, err
		}
		at := s.pos
		id, err := s.readInt()
		if err != nil {
			return nil, err
		}
		if id < 0 || id >= 1<<24 {
			return nil, s.errorAt(at, "model.vocab[%q]: id %d out of range [0, 2^24)", key, id)
		}
		entries = append(entries, entry{int32(len(arena)), int32(len(key)), int32(id)})
		arena = append(arena, key...)
		c := s.peek()
		s.pos++
		if c == '}' {
			break
		}
		if c != ',' {
			s.pos--
			return nil, s.errorf("model.vocab: want ',' or '}'")
		}
	}
	maxID := int32(0)
	for _, e := range entries {
		maxID = max(maxID, e.id)
	}
	if int(maxID) >= 16*len(entries)+1024 {
		return nil, s.errorf("model.vocab: ids up to %d for %d tokens are too sparse", maxID, len(entries))
	}
	all := string(arena)
	vocab := make(map[string]int32, len(entries))
	for _, e := range entries {
		vocab[all[e.off:e.off+e.n]] = e.id
	}
	return vocab, nil
}

// parseMerges reads ["a b", ...] or [["a", "b"], ...] and resolves every
// merge to ids: (left, right) -> (rank, merged).
func parseMerges(s *jsonScanner, vocab map[string]int32, prefixLen int) (*pairTable, error) {
	table := newPairTable(len(vocab) * 2)
	var bufA, bufB, merged []byte
	err := s.eachElement(func(i int) error {
		var a, b []byte
		var err error
		switch s.peek() {
		case '"':
			at := s.pos
			var line []byte
			line, bufA, err = s.readString(bufA)
			if err != nil {
				return err
			}
			sp := bytes.IndexByte(line, ' ')
			if sp < 0 || bytes.IndexByte(line[sp+1:], ' ') >= 0 {
				return s.errorAt(at, "model.merges[%d]: %q is not two tokens separated by one space", i, line)
			}
			a, b = line[:sp], line[sp+1:]
		case '[':
			s.pos++
			if a, bufA, err = s.readString(bufA); err != nil {
				return err
			}
			if err := s.expect(','); err != nil {
				return err
			}
			if b, bufB, err = s.readString(bufB); err != nil {
				return err
			}
			if err := s.expect(']'); err != nil {
				return err
			}
		default:
			return s.errorf("model.merges[%d]: want a string or a pair", i)
		}
		ida, ok := vocab[string(a)]
		if !ok {
			return s.errorf("model.merges[%d]: token %q is not in the vocabulary", i, a)
		}
		idb, ok := vocab[string(b)]
		if !ok {
			return s.errorf("model.merges[%d]: token %q is not in the vocabulary", i, b)
		}
		if len(b) < prefixLen {
			return s.errorf("model.merges[%d]: token %q is shorter than the continuing_subword_prefix", i, b)
		}
		merged = append(append(merged[:0], a...), b[prefixLen:]...)
		idm, ok := vocab[string(merged)]
		if !ok {
			return s.errorf("model.merges[%d]: merged token %q is not in the vocabulary", i, merged)
		}
		table.put(ida, idb, int32(i), idm)
		return nil
	})
	return table, err
}

// sortedAddedTokens lists the added tokens by id.
func (t *Tokenizer) sortedAddedTokens() []int32 {
	ids := make([]int32, 0, len(t.added.byID))
	for id := range t.added.byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func isSpace(r rune) bool {
	return r == ' ' || (r >= '\t' && r <= '\r') || (r > 0x7F && isUnicodeSpace(r))
}
