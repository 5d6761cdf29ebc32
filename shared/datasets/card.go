package datasets

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/goccy/go-yaml"
)

// A dataset card (README.md) may declare configs in its YAML header:
//
//	configs:
//	- config_name: default
//	  data_files:
//	  - split: train
//	    path: data/train-*
//
// `name` in an Axolotl dataset entry picks one of them.

type cardConfig struct {
	Name      string `yaml:"config_name"`
	DataFiles any    `yaml:"data_files"`
	DataDir   string `yaml:"data_dir"`
	Default   bool   `yaml:"default"`
}

// cardConfigs parses the configs of a README.md; none when it has no YAML
// header or no configs.
func cardConfigs(readme []byte) ([]cardConfig, error) {
	readme = bytes.TrimPrefix(readme, utf8BOM)
	if !bytes.HasPrefix(readme, []byte("---\n")) && !bytes.HasPrefix(readme, []byte("---\r\n")) {
		return nil, nil
	}
	body := readme[bytes.IndexByte(readme, '\n')+1:]
	end := bytes.Index(body, []byte("\n---"))
	if end < 0 {
		return nil, nil
	}
	var header struct {
		Configs []cardConfig `yaml:"configs"`
	}
	if err := yaml.Unmarshal(body[:end+1], &header); err != nil {
		return nil, fmt.Errorf("README.md YAML header: %w", err)
	}
	return header.Configs, nil
}

// pickConfig returns the config called name, or the default one when name is
// empty; ok is false when the card declares no configs (and name is empty).
func pickConfig(configs []cardConfig, name string) (cardConfig, bool, error) {
	if len(configs) == 0 {
		if name != "" && name != "default" {
			return cardConfig{}, false, fmt.Errorf("config name %q: the dataset declares no configs", name)
		}
		return cardConfig{}, false, nil
	}
	var names []string
	for _, c := range configs {
		names = append(names, c.Name)
		if name != "" && c.Name == name {
			return c, true, nil
		}
	}
	if name != "" {
		return cardConfig{}, false, fmt.Errorf("config name %q not found; the dataset has %v", name, names)
	}
	for _, c := range configs {
		if c.Default {
			return c, true, nil
		}
	}
	if i := slices.Index(names, "default"); i >= 0 {
		return configs[i], true, nil
	}
	if len(configs) == 1 {
		return configs[0], true, nil
	}
	return cardConfig{}, false, fmt.Errorf("the dataset has several configs %v and none is the default: set `name`", names)
}

// splitPatterns turns a config's data_files into split → glob patterns.
func (c cardConfig) splitPatterns() (map[string][]string, error) {
	prefix := ""
	if c.DataDir != "" {
		prefix = c.DataDir + "/"
	}
	out := map[string][]string{}
	add := func(split string, v any) error {
		switch x := v.(type) {
		case string:
			out[split] = append(out[split], prefix+x)
		case []any:
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("config %q: data_files path %v is not a string", c.Name, e)
				}
				out[split] = append(out[split], prefix+s)
			}
		default:
			return fmt.Errorf("config %q: data_files path %v is neither a string nor a list", c.Name, v)
		}
		return nil
	}
	switch x := c.DataFiles.(type) {
	case nil:
		if c.DataDir != "" {
			return nil, nil // the whole data_dir, split by default patterns
		}
		return nil, fmt.Errorf("config %q has no data_files", c.Name)
	case string, []string:
		return out, add("train", x)
	case []any:
		for _, e := range x {
			switch item := e.(type) {
			case string:
				if err := add("train", item); err != nil {
					return nil, err
				}
			case map[string]any:
				split, _ := item["split"].(string)
				if split == "" {
					split = "train"
				}
				if err := add(split, item["path"]); err != nil {
					return nil, err
				}
			default:
				return nil, fmt.Errorf("config %q: data_files entry %v is neither a path nor {split, path}", c.Name, e)
			}
		}
	case map[string]any:
		for split, v := range x {
			if err := add(split, v); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("config %q: data_files has an unexpected shape", c.Name)
	}
	return out, nil
}
