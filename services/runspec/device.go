package runspec

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/cuda"
	"github.com/eftml/eft/trainer/model"
)

// The devices a service computes on (--device; trainer.Options.Device,
// evaluator.Options.Device).
const (
	// DeviceAuto is CUDA when cuda.Available() says a GPU is usable, else
	// the CPU.
	DeviceAuto = "auto"
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// ParseDevice checks a --device value ("" is auto).
func ParseDevice(s string) (string, error) {
	switch s {
	case "", DeviceAuto:
		return DeviceAuto, nil
	case DeviceCPU, DeviceCUDA:
		return s, nil
	}
	return "", fmt.Errorf("device %q: use auto, cpu or cuda", s)
}

// CUDAUsable asks the driver once per process whether a GPU is usable.
var CUDAUsable = sync.OnceValue(cuda.Available)

// Device is the compute backend one run (or one evaluation) uses.
type Device struct {
	Backend backend.Backend
	GPU     *cuda.Backend // nil on the CPU
	// Name says where it computes: "cpu", or e.g.
	// "cuda:0 bf16 NVIDIA H100 80GB HBM3 (sm_90, ...)".
	Name string
}

// OpenDevice opens the backend for a run of cfg on device (a ParseDevice
// value; auto falls back to the CPU, saying why in log as who). On CUDA the
// products run in bf16 unless the config says bf16: false.
func OpenDevice(device string, cfg *config.Config, log *slog.Logger, who string) (*Device, error) {
	choice, err := ParseDevice(device)
	if err != nil {
		return nil, err
	}
	if choice == DeviceAuto {
		choice = DeviceCUDA
		if err := CUDAUsable(); err != nil {
			choice = DeviceCPU
			log.Info(who+": no usable GPU, computing on the CPU", "reason", err)
		}
	}
	if choice == DeviceCPU {
		be := cpu.New(0)
		return &Device{Backend: be, Name: be.Name()}, nil
	}
	prec := cuda.PrecisionBF16
	if !cfg.BF16.Resolve(true) {
		prec = cuda.PrecisionFP32
	}
	g, err := cuda.New(cuda.Options{Precision: prec})
	if err != nil {
		return nil, fmt.Errorf("%s: --device cuda: %w", who, err)
	}
	return &Device{Backend: g, GPU: g, Name: fmt.Sprintf("%s %s %s", g.Name(), prec, g.Device())}, nil
}

// StoreFrozen stores m's frozen weight matrices in bf16 on a GPU computing
// in bf16 (after the adapter chose what trains); elsewhere it does nothing.
func (d *Device) StoreFrozen(m *model.Model) {
	if d.GPU != nil && d.GPU.Precision() == cuda.PrecisionBF16 {
		d.GPU.StoreFrozenBF16(m)
	}
}

// Close frees the device's memory (nothing on the CPU).
func (d *Device) Close() {
	if d != nil && d.GPU != nil {
		d.GPU.Close()
	}
}
