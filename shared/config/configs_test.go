package config

import (
	"reflect"
	"strings"
	"testing"
)

// The five configs in testdata/configs are modelled on Axolotl's examples.
// Each test states the whole resolved Config, so every key is checked to
// parse to the right value and every default to be filled in.

type realConfig struct {
	file  string
	want  Config
	warns []string // "key: message fragment", in order
}

func realConfigs() []realConfig {
	return []realConfig{
		{
			file: "llama3-lora.yml",
			want: Config{
				BaseModel: "NousResearch/Meta-Llama-3-8B", BaseModelConfig: "NousResearch/Meta-Llama-3-8B",
				ModelType: "LlamaForCausalLM", TokenizerType: "AutoTokenizer", TokenizerConfig: "NousResearch/Meta-Llama-3-8B",
				Adapter: "lora", LoraR: 32, LoraAlpha: 16, LoraDropout: 0.05, LoraTargetLinear: true,
				LoraModulesToSave: []string{"embed_tokens", "lm_head"},
				Datasets:          []Dataset{{Path: "mhenrichsen/alpaca_2k_test", Type: DatasetType{Name: "alpaca"}}},
				ValSetSize:        0.05, ShuffleMergedDatasets: true,
				SequenceLen: 4096, SamplePacking: true, EvalSamplePacking: false, PadToSequenceLen: true,
				ExcessLengthStrategy: "drop",
				SpecialTokens:        SpecialTokens{PadToken: "<|end_of_text|>"},
				MicroBatchSize:       2, GradientAccumulationSteps: 4, EvalBatchSize: 2, NumEpochs: 4,
				Optimizer: "adamw_bnb_8bit", LearningRate: 0.0002, LRScheduler: "cosine", WarmupRatio: floatp(0.1),
				AdamBeta1: 0.9, AdamBeta2: 0.999, AdamEpsilon: 1e-8, MaxGradNorm: 1,
				BF16: Auto, TF32: False, GradientCheckpointing: true, AttnImplementation: "flash_attention_2",
				LoggingSteps: 1, SavesPerEpoch: 1, SaveTotalLimit: 4, EvalsPerEpoch: 4,
				OutputDir: "./outputs/lora-out", Seed: 42, WorldSize: 1,
			},
			warns: []string{"optimizer: eft runs AdamW with fp32 state"},
		},
		{
			file: "llama3-qlora.yml",
			want: Config{
				BaseModel: "NousResearch/Meta-Llama-3-8B", BaseModelConfig: "NousResearch/Meta-Llama-3-8B",
				RevisionOfModel: "main", ModelType: "AutoModelForCausalLM", TokenizerType: "AutoTokenizer",
				TokenizerConfig: "NousResearch/Meta-Llama-3-8B",
				Adapter:         "qlora", LoadIn4bit: true, LoraR: 32, LoraAlpha: 16, LoraDropout: 0.05,
				LoraTargetModules: TargetModules{Names: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}},
				PeftUseRSLoRA:     true, MergeLora: true,
				Datasets:              []Dataset{{Path: "aaditya/alpaca_subset_1", Split: "train", Type: DatasetType{Name: "alpaca"}}},
				TestDatasets:          []Dataset{{Path: "./data/alpaca_eval.jsonl", Split: "train", DsType: "json", Type: DatasetType{Name: "alpaca"}}},
				ShuffleMergedDatasets: true,
				SequenceLen:           4096, SamplePacking: true, EvalSamplePacking: true, PadToSequenceLen: true,
				ExcessLengthStrategy: "drop",
				SpecialTokens:        SpecialTokens{PadToken: "<|end_of_text|>"},
				MicroBatchSize:       2, GradientAccumulationSteps: 4, EvalBatchSize: 2, NumEpochs: 4,
				Optimizer: "paged_adamw_32bit", LearningRate: 0.0002, LRScheduler: "cosine", CosineMinLRRatio: 0.1,
				WarmupSteps: intp(10), AdamBeta1: 0.9, AdamBeta2: 0.999, AdamEpsilon: 1e-8, MaxGradNorm: 1,
				BF16: Auto, TF32: False, GradientCheckpointing: true, AttnImplementation: "flash_attention_2",
				LoggingSteps: 1, SavesPerEpoch: 1, SaveTotalLimit: 2, EvalsPerEpoch: 4,
				OutputDir: "./outputs/qlora-out", AutoResumeFromCheckpoints: true, Seed: 42,
				TrainerPool: "h100", WorldSize: 2,
			},
			warns: []string{
				"hub_model_id: ignored: eft does not push",
				"wandb_project: ignored: eft records metrics in its own tracker",
				"flash_attention: read as attn_implementation: flash_attention_2",
			},
		},
		{
			file: "chat-template.yml",
			want: Config{
				BaseModel: "NousResearch/Meta-Llama-3-8B-Instruct", BaseModelConfig: "NousResearch/Meta-Llama-3-8B-Instruct",
				TokenizerConfig: "NousResearch/Meta-Llama-3-8B-Instruct",
				Adapter:         "lora", LoraR: 32, LoraAlpha: 16, LoraDropout: 0.05, LoraTargetLinear: true,
				Datasets: []Dataset{
					{
						Path: "fozziethebeat/alpaca_messages_2k_test", Type: DatasetType{Name: "chat_template"},
						FieldMessages:           "messages",
						MessagePropertyMappings: map[string]string{"role": "role", "content": "content"},
						Roles:                   map[string][]string{"user": {"user"}, "assistant": {"assistant"}},
						RolesToTrain:            []string{"assistant"}, TrainOnEOS: "turn", TrainOnEOT: "turn",
						ChatTemplate: "tokenizer_default",
					},
					{
						Path: "./data/support-chats", DataFiles: []string{"train-00000.parquet", "train-00001.parquet"},
						DsType: "parquet", Type: DatasetType{Name: "chat_template"}, ChatTemplate: "chatml",
						FieldMessages:           "conversations",
						MessagePropertyMappings: map[string]string{"role": "from", "content": "value"},
						MessageFieldTraining:    "train",
						Roles:                   defaultRoles(),
						RolesToTrain:            []string{"assistant", "tool"}, TrainOnEOS: "last", TrainOnEOT: "turn",
						DropSystemMessage: true,
					},
					{
						Path: "philschmid/guanaco-sharegpt-style", Split: "train", Type: DatasetType{Name: "chat_template"},
						ChatTemplate: "chatml", FieldMessages: "conversations",
						MessagePropertyMappings: map[string]string{"role": "from", "content": "value"},
						Roles:                   defaultRoles(),
						RolesToTrain:            []string{"assistant"}, TrainOnEOS: "turn", TrainOnEOT: "turn",
					},
				},
				ValSetSize: 0.05, DatasetPreparedPath: "last_run_prepared", ShuffleMergedDatasets: true,
				SequenceLen: 4096, ExcessLengthStrategy: "drop",
				SpecialTokens:      SpecialTokens{PadToken: "<|end_of_text|>"},
				ChatTemplate:       "llama3",
				ChatTemplateKwargs: map[string]any{"enable_thinking": false},
				EOTTokens:          []string{"<|eot_id|>"},
				MicroBatchSize:     2, GradientAccumulationSteps: 4, EvalBatchSize: 2, NumEpochs: 4,
				Optimizer: "adamw_torch_fused", LearningRate: 2e-4, LRScheduler: "cosine", WarmupRatio: floatp(0.1),
				AdamBeta1: 0.9, AdamBeta2: 0.999, AdamEpsilon: 1e-8, MaxGradNorm: 1,
				BF16: Auto, TF32: False, GradientCheckpointing: true, AttnImplementation: "sdpa",
				LoggingSteps: 1, SavesPerEpoch: 1, SaveTotalLimit: 4, EvalsPerEpoch: 4,
				OutputDir: "./outputs/chat-lora-out", Seed: 42, WorldSize: 1,
			},
			warns: []string{
				"datasets[1].message_field_role: read as message_property_mappings: {role: from}",
				"datasets[1].message_field_content: read as message_property_mappings: {content: value}",
				"datasets[2].type: read as type: chat_template",
				"datasets[2].train_on_split: read as split: train",
				"sdp_attention: read as attn_implementation: sdpa",
			},
		},
		{
			file: "full-finetune.yml",
			want: Config{
				BaseModel: "NousResearch/Meta-Llama-3.1-8B", BaseModelConfig: "NousResearch/Meta-Llama-3.1-8B",
				RevisionOfModel: "0e9e39f249a16976918f6564b8830bc894c89659", TokenizerConfig: "NousResearch/Meta-Llama-3.1-8B",
				Datasets: []Dataset{{Path: "tatsu-lab/alpaca", Type: DatasetType{Name: "alpaca"},
					Revision: "dce01c9b08f87459cf36a430d809084718273017"}},
				ValSetSize: 0.05, DatasetPreparedPath: "last_run_prepared", ShuffleMergedDatasets: true,
				SequenceLen: 8192, SamplePacking: true, EvalSamplePacking: true, PadToSequenceLen: true,
				ExcessLengthStrategy: "drop",
				SpecialTokens:        SpecialTokens{BOSToken: "<|begin_of_text|>", EOSToken: "<|end_of_text|>", PadToken: "<|end_of_text|>"},
				Tokens:               []string{"<|im_start|>", "<|im_end|>"},
				MicroBatchSize:       1, GradientAccumulationSteps: 8, EvalBatchSize: 1, NumEpochs: 1,
				Optimizer: "paged_adamw_8bit", LearningRate: 2e-5, LRScheduler: "cosine", WarmupRatio: floatp(0.1),
				WeightDecay: 0.01, AdamBeta1: 0.9, AdamBeta2: 0.95, AdamEpsilon: 1e-6, MaxGradNorm: 0.5,
				BF16: True, TF32: False, GradientCheckpointing: true, AttnImplementation: "flash_attention_2",
				LoggingSteps: 1, SavesPerEpoch: 1, SaveTotalLimit: 4, EvalsPerEpoch: 2,
				OutputDir: "./outputs/out", ResumeFromCheckpoint: "./outputs/out/checkpoint-100", Seed: 1234, WorldSize: 1,
			},
			warns: []string{
				"optimizer: eft runs AdamW with fp32 state",
				"gradient_checkpointing_kwargs: ignored",
			},
		},
		{
			file: "sample-packing.yml",
			want: Config{
				BaseModel: "meta-llama/Llama-3.2-1B", BaseModelConfig: "meta-llama/Llama-3.2-1B", TokenizerConfig: "meta-llama/Llama-3.2-1B",
				Adapter: "lora", LoraR: 16, LoraAlpha: 32,
				LoraTargetModules: TargetModules{Pattern: `model.layers.\d+.self_attn.(q|k|v|o)_proj`},
				Datasets: []Dataset{
					{Path: "./data/books", DsType: "text", Type: DatasetType{Name: "completion"}, Field: "text"},
					{Path: "./data/instructions.jsonl", DsType: "json", Type: DatasetType{Format: &UserDefinedFormat{
						SystemPrompt: "You are a helpful assistant.", SystemFormat: "{system}", FieldSystem: "system",
						FieldInstruction: "question", FieldInput: "input", FieldOutput: "answer",
						Format: "[INST] {instruction} [/INST]", NoInputFormat: "[INST] {instruction} [/INST]",
					}}},
					{Path: "yahma/alpaca-cleaned", Type: DatasetType{Name: "alpaca"}, Name: "default", Split: "train[:90%]"},
				},
				ShuffleMergedDatasets: false, DatasetExactDeduplication: true, ValSetSize: 200,
				SequenceLen: 2048, SamplePacking: true, EvalSamplePacking: true, PadToSequenceLen: true,
				ExcessLengthStrategy: "truncate", TrainOnInputs: true,
				MicroBatchSize: 4, GradientAccumulationSteps: 4, EvalBatchSize: 4, NumEpochs: 3, MaxSteps: 1200,
				Optimizer: "sgd", LearningRate: 0.01, LRScheduler: "linear", WarmupSteps: intp(50),
				AdamBeta1: 0.9, AdamBeta2: 0.999, AdamEpsilon: 1e-8, MaxGradNorm: 0,
				BF16: False, TF32: True,
				LoggingSteps: 10, SaveSteps: 200, SaveStrategy: "steps", SaveTotalLimit: 3, EvalSteps: 0.25,
				OutputDir: "./outputs/packed-lora", AutoResumeFromCheckpoints: true, Seed: 7, Strict: true, WorldSize: 1,
			},
		},
	}
}

func TestRealConfigsParseToTheRightValues(t *testing.T) {
	for _, rc := range realConfigs() {
		t.Run(rc.file, func(t *testing.T) {
			path := configPath(t, rc.file)
			c, warns, err := Load(path, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := public(c); !reflect.DeepEqual(got, rc.want) {
				diffConfigs(t, got, rc.want)
			}
			if c.File() != path {
				t.Errorf("File() = %q, want %q", c.File(), path)
			}
			if len(warns) != len(rc.warns) {
				t.Errorf("got %d warnings, want %d:\n%s", len(warns), len(rc.warns), (&Error{Issues: warns}).Error())
			}
			for i, w := range warns {
				if i >= len(rc.warns) {
					break
				}
				key, frag, _ := strings.Cut(rc.warns[i], ": ")
				if w.Key != key || !strings.Contains(w.Message, frag) || w.File != path || w.Line == 0 {
					t.Errorf("warning %d = %s, want key %s containing %q with a file position", i, w, key, frag)
				}
			}
		})
	}
}

// diffConfigs names the fields that differ, so a failure is readable.
func diffConfigs(t *testing.T, got, want Config) {
	t.Helper()
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		f := gv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			t.Errorf("%s (%s): got %#v, want %#v", f.Name, f.Tag.Get("yaml"), gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}
}

// TestResolvedYAMLRoundTrips checks that YAML() writes a config that parses
// back to the same Config, with no warning the original did not have: it is
// what `eft config` prints and what a run records.
func TestResolvedYAMLRoundTrips(t *testing.T) {
	for _, rc := range realConfigs() {
		t.Run(rc.file, func(t *testing.T) {
			c, firstWarns, err := Load(configPath(t, rc.file), nil)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.YAML()
			if err != nil {
				t.Fatalf("YAML: %v", err)
			}
			again, warns, err := Parse("resolved.yml", out, nil)
			if err != nil {
				t.Fatalf("the resolved config does not parse: %v\n%s", err, out)
			}
			for _, w := range warns {
				if _, ok := findIssue(firstWarns, w.Key, w.Message); !ok {
					t.Errorf("the resolved config gives a new warning: %s", w)
				}
			}
			if !reflect.DeepEqual(public(again), public(c)) {
				diffConfigs(t, public(again), public(c))
			}
		})
	}
}

func TestResolvedYAMLLeavesOutFoldedKeys(t *testing.T) {
	c, _ := mustParse(t, `base_model: m
datasets: [{path: d, type: alpaca}]
micro_batch_size: 2
batch_size: 8
learning_rate: 1e-4
flash_attention: true
wandb_project: x
`)
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, gone := range []string{"batch_size:", "flash_attention:", "wandb_project:"} {
		if strings.Contains(text, "\n"+gone) {
			t.Errorf("resolved YAML still has %s:\n%s", gone, text)
		}
	}
	for _, kept := range []string{"gradient_accumulation_steps: 4", "attn_implementation: flash_attention_2", "learning_rate: 0.0001"} {
		if !strings.Contains(text, kept) {
			t.Errorf("resolved YAML lacks %q:\n%s", kept, text)
		}
	}
}
