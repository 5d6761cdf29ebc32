package cuda

import (
	"fmt"
	"math/bits"
)

// allocator is a caching device allocator: freed blocks go to a free list
// by size class and the next request of that class reuses one, so a
// training step, which asks for the same sizes every time, calls cuMemAlloc
// only in its first step. Every kernel runs on one stream, so a block freed
// while earlier work still reads it is only reused by work queued later:
// stream order makes that safe. Used only on the executor goroutine.
type allocator struct {
	g     gpu
	free  map[int][]uintptr // by class size
	sizes map[uintptr]int   // live and cached blocks: their class size

	inUse, reserved         int // bytes handed out; bytes held from the driver
	peakInUse, peakReserved int
	mallocs                 int // cuMemAlloc calls so far
}

func newAllocator(g gpu) *allocator {
	return &allocator{g: g, free: map[int][]uintptr{}, sizes: map[uintptr]int{}}
}

// sizeClass rounds a request up: to 512 bytes below 1 MiB, to an eighth of
// its power of two below 64 MiB (at most 12.5% over), to 2 MiB above.
func sizeClass(bytes int) int {
	switch {
	case bytes <= 0:
		return 512
	case bytes < 1<<20:
		return (bytes + 511) &^ 511
	case bytes < 64<<20:
		step := 1 << (bits.Len(uint(bytes-1)) - 4)
		return (bytes + step - 1) / step * step
	default:
		return (bytes + (2<<20 - 1)) &^ (2<<20 - 1)
	}
}

func (a *allocator) alloc(bytes int) (uintptr, error) {
	class := sizeClass(bytes)
	if list := a.free[class]; len(list) > 0 {
		p := list[len(list)-1]
		a.free[class] = list[:len(list)-1]
		a.use(class)
		return p, nil
	}
	p, err := a.g.malloc(class)
	if err != nil {
		// Out of memory: give the cached blocks back and try once more.
		a.release()
		if p, err = a.g.malloc(class); err != nil {
			return 0, fmt.Errorf("%w (%d MiB in use, %d MiB reserved)", err, a.inUse>>20, a.reserved>>20)
		}
	}
	a.mallocs++
	a.sizes[p] = class
	a.reserved += class
	a.peakReserved = max(a.peakReserved, a.reserved)
	a.use(class)
	return p, nil
}

func (a *allocator) use(class int) {
	a.inUse += class
	a.peakInUse = max(a.peakInUse, a.inUse)
}

// put returns a block to its free list.
func (a *allocator) put(p uintptr) {
	class, ok := a.sizes[p]
	if !ok {
		panic(fmt.Sprintf("cuda: free of unknown device pointer %#x", p))
	}
	a.inUse -= class
	a.free[class] = append(a.free[class], p)
}

// release frees every cached block (the caller has synchronised or does
// not care: cuMemFree waits for the device itself).
func (a *allocator) release() {
	for class, list := range a.free {
		for _, p := range list {
			a.g.free(p)
			delete(a.sizes, p)
			a.reserved -= class
		}
		delete(a.free, class)
	}
}
