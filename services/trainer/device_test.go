package trainer

import (
	"strings"
	"testing"

	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/shared/bus/bustest"
	"github.com/eftml/eft/trainer/cuda"
)

// Each device choice opens the backend it names, or says why it cannot:
// auto is the CPU without a usable GPU, and for QLoRA while the CUDA
// backend has no 4-bit product; cuda without a GPU, or for QLoRA then, is
// refused with the reason.
func TestDeviceChoice(t *testing.T) {
	b, _ := bustest.New(t)
	_, lora := runtest.Resolve(t, loraConfig(t, ""))
	_, qlora := runtest.Resolve(t, strings.Replace(loraConfig(t, "load_in_4bit: true\n"), "adapter: lora", "adapter: qlora", 1))
	gpu := cuda.Available() == nil
	open := func(device string, qlo bool) (string, error) {
		cfg := lora
		if qlo {
			cfg = qlora
		}
		d, err := New(b, Options{Device: device}).openDevice(cfg)
		if err != nil {
			return "", err
		}
		defer d.close()
		return d.name, nil
	}
	onCUDA := map[bool]string{false: "--device cuda: cuda: cannot load the CUDA driver", true: "cuda:0 bf16 "}[gpu]
	auto := map[bool]string{false: "cpu", true: "cuda:0 bf16 "}[gpu]
	qloraAuto, qloraCUDA := "cpu", "adapter: qlora cannot train on CUDA yet"
	if cudaHas4bit() { // QLoRA goes where LoRA goes
		qloraAuto, qloraCUDA = auto, onCUDA
	}
	for _, c := range []struct {
		device string
		qlora  bool
		want   string // the device's name, or a piece of the error
	}{
		{"cpu", false, "cpu"},
		{"cpu", true, "cpu"},
		{"", true, qloraAuto},
		{"auto", true, qloraAuto},
		{"cuda", true, qloraCUDA},
		{"tpu", false, `device "tpu": use auto, cpu or cuda`},
		{"auto", false, auto},
		{"cuda", false, onCUDA},
	} {
		name, err := open(c.device, c.qlora)
		got := name
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("device %q (qlora %v): got %q, want %q", c.device, c.qlora, got, c.want)
		}
	}
}
