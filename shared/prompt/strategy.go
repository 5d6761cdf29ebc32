package prompt

import (
	"fmt"
	"strings"

	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/shared/tokenizer"
)

// IgnoreIndex is the label of a token that does not count in the loss.
const IgnoreIndex = packing.IgnoreIndex

// Strategy turns one row into samples. Implementations are safe for
// concurrent use once built.
type Strategy interface {
	// Name is the strategy as the config named it ("alpaca:chat",
	// "completion", "user_defined", ...).
	Name() string
	// Tokenize appends the samples the row makes to dst (none, one, or, for
	// completion, one per sequence_len piece). An error says what in the row
	// is wrong; the caller adds where the row came from.
	Tokenize(dst []packing.Sample, row datasets.Object) ([]packing.Sample, error)
}

// Env says where a run's files are, for what strategies read besides rows:
// the tokenizer's folder (tokenizer_config.json's chat templates and
// special tokens) and the submitter's work dir (a relative
// chat_template_jinja path).
type Env struct {
	TokenizerDir string
	WorkDir      string
}

// New is NewWith without an Env: enough for every strategy but a
// chat_template that needs the tokenizer's own template.
func New(cfg *config.Config, ds *config.Dataset, tok *tokenizer.Tokenizer) (Strategy, error) {
	return NewWith(cfg, ds, tok, Env{})
}

// NewWith returns the strategy of one dataset entry of cfg, tokenizing with
// tok (already configured with Configure). A row that holds input_ids,
// labels and attention_mask is passed through as it is, whatever the type,
// as Axolotl does for an already tokenized dataset; a dataset without a
// type must be pre-tokenized.
func NewWith(cfg *config.Config, ds *config.Dataset, tok *tokenizer.Tokenizer, env Env) (Strategy, error) {
	if cfg.SequenceLen <= 0 {
		return nil, fmt.Errorf("sequence_len %d must be positive", cfg.SequenceLen)
	}
	enc := newEncoder(tok)
	pre := &pretokenized{enc: enc}
	if ds.Type.IsZero() {
		return pre, nil
	}
	s, err := newTyped(cfg, ds, enc, env)
	if err != nil {
		return nil, fmt.Errorf("%s: type %s: %w", ds.Path, typeName(ds.Type), err)
	}
	return passThrough{Strategy: s, pre: pre}, nil
}

func newTyped(cfg *config.Config, ds *config.Dataset, enc *encoder, env Env) (Strategy, error) {
	if f := ds.Type.Format; f != nil {
		return newUserDefined(cfg, *f, enc)
	}
	name := ds.Type.Name
	switch name {
	case "completion":
		return newCompletion(cfg, ds, enc), nil
	case "input_output":
		return &inputOutput{enc: enc, trainOnInputs: cfg.TrainOnInputs}, nil
	case "chat_template":
		return newChatTemplate(cfg, ds, enc, env)
	case "pretokenized":
		return &pretokenized{enc: enc}, nil
	}
	return newInstruct(cfg, ds, name, enc)
}

func typeName(t config.DatasetType) string {
	if t.Format != nil {
		return "(user-defined format)"
	}
	return t.Name
}

// Requirements lists the fields every row of ds must hold for its strategy,
// with the kinds they may have: the ingest stage rejects (and reports, with
// file and line) rows that lack them.
func Requirements(ds *config.Dataset) []datasets.Requirement {
	str := []string{"string"}
	req := func(fields ...string) []datasets.Requirement {
		out := make([]datasets.Requirement, len(fields))
		for i, f := range fields {
			out[i] = datasets.Requirement{Field: f, Kinds: str}
		}
		return out
	}
	if ds.Type.IsZero() {
		return []datasets.Requirement{{Field: "input_ids", Kinds: []string{"list"}}}
	}
	if f := ds.Type.Format; f != nil {
		return req(orDefault(f.FieldInstruction, "instruction"))
	}
	switch ds.Type.Name {
	case "completion":
		return req(orDefault(ds.Field, "text"))
	case "input_output":
		return []datasets.Requirement{{Field: "segments", Kinds: []string{"list"}}}
	case "chat_template":
		return []datasets.Requirement{{Field: orDefault(ds.FieldMessages, "messages"), Kinds: []string{"list", "string"}}}
	case "pretokenized":
		return []datasets.Requirement{{Field: "input_ids", Kinds: []string{"list"}}}
	}
	if spec, ok := instructSpecs[strings.SplitN(ds.Type.Name, ":", 2)[0]]; ok {
		return req(spec.fields.required...)
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Configure applies the config's tokenizer changes as Axolotl's tokenizer
// loader does: special_tokens (bos/eos/pad/unk, added when missing), then
// tokens, then additional_special_tokens. Call it once, before New.
func Configure(cfg *config.Config, tok *tokenizer.Tokenizer) error {
	st := cfg.SpecialTokens
	for _, s := range []struct{ role, value string }{
		{"bos_token", st.BOSToken}, {"eos_token", st.EOSToken}, {"pad_token", st.PadToken}, {"unk_token", st.UnkToken},
	} {
		if s.value == "" {
			continue
		}
		if err := tok.SetSpecialToken(s.role, s.value); err != nil {
			return fmt.Errorf("special_tokens.%s: %w", s.role, err)
		}
	}
	for _, t := range cfg.Tokens {
		tok.AddTokens(tokenizer.AddedToken{Content: t})
	}
	for _, t := range st.AdditionalSpecialTokens {
		tok.AddTokens(tokenizer.AddedToken{Content: t, Special: true})
	}
	return nil
}

// PadTokenID is the id written into padding: the pad token, else EOS (the
// fallback Axolotl's tokenizer loader sets), else 0.
func PadTokenID(tok *tokenizer.Tokenizer) int32 {
	sp := tok.Special()
	switch {
	case sp.PADID >= 0:
		return sp.PADID
	case sp.EOSID >= 0:
		return sp.EOSID
	}
	return 0
}

// passThrough hands rows that are already tokenized to the pre-tokenized
// strategy and the rest to the dataset's own.
type passThrough struct {
	Strategy
	pre *pretokenized
}

func (p passThrough) Tokenize(dst []packing.Sample, row datasets.Object) ([]packing.Sample, error) {
	if isTokenized(row) {
		return p.pre.Tokenize(dst, row)
	}
	return p.Strategy.Tokenize(dst, row)
}

func isTokenized(row datasets.Object) bool {
	var n int
	for _, f := range row {
		switch f.Name {
		case "input_ids", "labels", "attention_mask":
			n++
		}
	}
	return n == 3
}

// field reads a string field. A missing or null field is "" when optional
// (HF datasets give absent columns as None, which the prompters treat as
// empty) and an error otherwise.
func field(row datasets.Object, name string, optional bool) (string, error) {
	v, ok := row.Get(name)
	if !ok || v == nil {
		if optional {
			return "", nil
		}
		return "", fmt.Errorf("field %q is missing", name)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("field %q is %s, want string", name, datasets.Kind(v))
	}
	return s, nil
}
