package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	os.Exit(profiled(func() int { return run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr) }))
}

// profiled runs cmd, writing a Go CPU profile of it to the file
// EFT_CPUPROFILE names when set (for `go tool pprof`): where a command's
// time goes, every service of an embedded run included.
func profiled(cmd func() int) int {
	path := os.Getenv("EFT_CPUPROFILE")
	if path == "" {
		return cmd()
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "eft: EFT_CPUPROFILE: %v\n", err)
		return 1
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "eft: EFT_CPUPROFILE: %v\n", err)
		return 1
	}
	defer pprof.StopCPUProfile()
	return cmd()
}

// run executes one command line and returns the process exit status. Ctrl-C
// (or SIGTERM) cancels the command's context, so commands shut down cleanly.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(&globals{})
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	fmt.Fprintf(stderr, "eft: %v\n", err)
	return 1
}
