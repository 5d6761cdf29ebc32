package runspec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"

	"github.com/eftml/eft/shared/tokenizer"
)

// StopTokens are the ids that end a generation for the model in modelDir:
// eos_token_id of config.json and generation_config.json (an id or a list)
// and the tokenizer's eos token, as transformers' generate stops on them.
func StopTokens(modelDir string, tok *tokenizer.Tokenizer) []int32 {
	var out []int32
	add := func(id int32) {
		if id >= 0 && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	for _, name := range []string{"config.json", "generation_config.json"} {
		data, err := os.ReadFile(filepath.Join(modelDir, name))
		if err != nil {
			continue
		}
		var cfg struct {
			EOS json.RawMessage `json:"eos_token_id"`
		}
		if json.Unmarshal(data, &cfg) != nil || len(cfg.EOS) == 0 || string(cfg.EOS) == "null" {
			continue
		}
		var one int32
		var many []int32
		if json.Unmarshal(cfg.EOS, &one) == nil {
			add(one)
		} else if json.Unmarshal(cfg.EOS, &many) == nil {
			for _, id := range many {
				add(id)
			}
		}
	}
	if tok != nil && tok.Special().EOS != "" {
		add(tok.Special().EOSID)
	}
	return out
}
