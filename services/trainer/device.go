package trainer

import (
	"fmt"
	"sync"

	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/cuda"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
)

// The devices a trainer trains on (Options.Device, --device).
const (
	// DeviceAuto trains on CUDA when cuda.Available() says a GPU is usable,
	// else on the CPU (and SGD runs on the CPU: CUDA has AdamW only).
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

// cudaUsable asks the driver once per process whether a GPU is usable.
var cudaUsable = sync.OnceValue(cuda.Available)

// device is the compute backend one run trains on.
type device struct {
	be  backend.Backend
	gpu *cuda.Backend // nil on the CPU
	// name is what TrainingStarted.Device says.
	name string
}

// openDevice opens the backend for a run of cfg on the trainer's device.
// On CUDA the products run in bf16 unless the config says bf16: false.
func (s *Service) openDevice(cfg *config.Config) (*device, error) {
	choice, err := ParseDevice(s.opts.Device)
	if err != nil {
		return nil, err
	}
	if choice == DeviceAuto {
		choice = DeviceCUDA
		if cfg.OptimizerKind() == config.OptimizerSGD {
			choice = DeviceCPU
			s.bus.Logger().Info("trainer: SGD trains on the CPU (the CUDA backend has a device AdamW only)")
		} else if err := cudaUsable(); err != nil {
			choice = DeviceCPU
			s.bus.Logger().Info("trainer: no usable GPU, training on the CPU", "reason", err)
		}
	}
	if choice == DeviceCPU {
		be := cpu.New(0)
		return &device{be: be, name: be.Name()}, nil
	}
	prec := cuda.PrecisionBF16
	if !cfg.BF16.Resolve(true) {
		prec = cuda.PrecisionFP32
	}
	g, err := cuda.New(cuda.Options{Precision: prec})
	if err != nil {
		return nil, fmt.Errorf("trainer: --device cuda: %w", err)
	}
	return &device{be: g, gpu: g, name: fmt.Sprintf("%s %s %s", g.Name(), prec, g.Device())}, nil
}

// prepare readies a built model for training on the device: on CUDA in
// bf16 the frozen matrices are stored in bfloat16 (after the adapter chose
// what trains), and the optimizer becomes the device's own.
func (d *device) prepare(m *model.Model, host optim.Optimizer) (optim.Optimizer, error) {
	if d.gpu == nil {
		return host, nil
	}
	if d.gpu.Precision() == cuda.PrecisionBF16 {
		d.gpu.StoreFrozenBF16(m)
	}
	return d.gpu.Optimizer(host)
}

// memoryBytes is the memory the run holds: the device allocator's reserve
// on a GPU, the Go runtime's footprint on the CPU.
func (d *device) memoryBytes() float64 {
	if d != nil && d.gpu != nil {
		return float64(d.gpu.Memory().Reserved)
	}
	return memoryInUse()
}

func (d *device) close() {
	if d != nil && d.gpu != nil {
		d.gpu.Close()
	}
}
