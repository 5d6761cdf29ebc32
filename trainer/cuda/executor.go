package cuda

import (
	"fmt"
	"runtime"
	"sync"
)

// executor is the one goroutine that makes every CUDA call for a device. It
// is locked to its OS thread for its whole life: a CUDA context is current
// per thread, and calls from a goroutine that moved to another thread fail
// with CUDA_ERROR_INVALID_CONTEXT (201).
type executor struct {
	mu   sync.Mutex // one caller at a time
	work chan func()
	done chan any // nil, or what the work panicked with
}

// startExecutor starts the goroutine, runs open on it and returns once open
// is done; if open fails the goroutine ends.
func startExecutor(open func() error) (*executor, error) {
	e := &executor{work: make(chan func()), done: make(chan any)}
	errc := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := open(); err != nil {
			errc <- err
			return
		}
		errc <- nil
		for f := range e.work {
			e.done <- e.runOne(f)
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return e, nil
}

func (e *executor) runOne(f func()) (panicked any) {
	defer func() { panicked = recover() }()
	f()
	return nil
}

// do runs f on the executor's thread and waits for it. A panic in f (a CUDA
// error, a bad shape) is raised again in the caller's goroutine, where the
// caller can recover it.
func (e *executor) do(f func()) {
	e.mu.Lock()
	e.work <- f
	p := <-e.done
	e.mu.Unlock()
	if p != nil {
		if err, ok := p.(error); ok {
			panic(err)
		}
		panic(fmt.Sprint(p))
	}
}

// stop ends the goroutine (and its OS thread).
func (e *executor) stop() {
	e.mu.Lock()
	close(e.work)
	e.mu.Unlock()
}
