package trainer

import (
	"strings"
	"testing"

	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/shared/bus/bustest"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/trainer/cuda"
)

// Each device choice opens the backend it names, or says why it cannot:
// auto is the CPU without a usable GPU; cuda without one is refused with
// the reason. QLoRA goes where LoRA goes (both backends multiply by 4-bit
// weights); SGD stays on the CPU with auto (CUDA has AdamW only).
func TestDeviceChoice(t *testing.T) {
	b, _ := bustest.New(t)
	_, lora := runtest.Resolve(t, loraConfig(t, ""))
	_, qlora := runtest.Resolve(t, strings.Replace(loraConfig(t, "load_in_4bit: true\n"), "adapter: lora", "adapter: qlora", 1))
	_, sgd := runtest.Resolve(t, loraConfig(t, "optimizer: sgd\n"))
	if sgd.OptimizerKind() != config.OptimizerSGD {
		t.Fatalf("optimizer: sgd parsed as %v", sgd.OptimizerKind())
	}
	configs := map[string]*config.Config{"lora": lora, "qlora": qlora, "sgd": sgd}
	gpu := cuda.Available() == nil
	onCUDA := map[bool]string{false: "--device cuda: cuda: cannot load the CUDA driver", true: "cuda:0 bf16 "}[gpu]
	auto := map[bool]string{false: "cpu", true: "cuda:0 bf16 "}[gpu]
	for _, c := range []struct {
		device, config string
		want           string // the device's name, or a piece of the error
	}{
		{"cpu", "lora", "cpu"},
		{"cpu", "qlora", "cpu"},
		{"", "lora", auto},
		{"auto", "lora", auto},
		{"auto", "qlora", auto},
		{"auto", "sgd", "cpu"},
		{"cuda", "lora", onCUDA},
		{"cuda", "qlora", onCUDA},
		{"tpu", "lora", `device "tpu": use auto, cpu or cuda`},
	} {
		got := ""
		d, err := New(b, Options{Device: c.device}).openDevice(configs[c.config])
		if err != nil {
			got = err.Error()
		} else {
			got = d.Name
			d.close()
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("device %q (%s): got %q, want %q", c.device, c.config, got, c.want)
		}
	}
}
