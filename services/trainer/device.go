package trainer

import (
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
)

// device is the compute backend one run trains on.
type device struct{ *runspec.Device }

// openDevice opens the backend for a run of cfg on the trainer's device:
// runspec.OpenDevice, except that auto keeps SGD on the CPU (CUDA has a
// device AdamW only).
func (s *Service) openDevice(cfg *config.Config) (*device, error) {
	choice, err := runspec.ParseDevice(s.opts.Device)
	if err != nil {
		return nil, err
	}
	if choice == runspec.DeviceAuto && cfg.OptimizerKind() == config.OptimizerSGD {
		choice = runspec.DeviceCPU
		s.bus.Logger().Info("trainer: SGD trains on the CPU (the CUDA backend has a device AdamW only)")
	}
	d, err := runspec.OpenDevice(choice, cfg, s.bus.Logger(), "trainer")
	if err != nil {
		return nil, err
	}
	return &device{d}, nil
}

// prepare readies a built model for training on the device: on CUDA in
// bf16 the frozen matrices are stored in bfloat16 (after the adapter chose
// what trains), and the optimizer becomes the device's own.
func (d *device) prepare(m *model.Model, host optim.Optimizer) (optim.Optimizer, error) {
	if d.GPU == nil {
		return host, nil
	}
	d.StoreFrozen(m)
	return d.GPU.Optimizer(host)
}

// memoryBytes is the memory the run holds: the device allocator's reserve
// on a GPU, the Go runtime's footprint on the CPU.
func (d *device) memoryBytes() float64 {
	if d != nil && d.GPU != nil {
		return float64(d.GPU.Memory().Reserved)
	}
	return memoryInUse()
}

func (d *device) close() {
	if d != nil {
		d.Close()
	}
}
