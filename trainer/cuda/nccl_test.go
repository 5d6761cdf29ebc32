package cuda

import (
	"slices"
	"testing"
	"time"

	"github.com/eftml/eft/trainer/model"
)

// A world of one, the most a one-GPU machine can hold (NCCL refuses two
// ranks on one device): NCCL loads, makes a unique id, joins a
// communicator from it and all-reduces gradients in place on the backend's
// stream, leaving them as they were. It skips without a GPU or NCCL.
func TestNCCLWorldOfOne(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("no usable GPU: %v", err)
	}
	lib, err := NCCLAvailable()
	if err != nil {
		t.Skipf("no NCCL: %v", err)
	}
	t.Logf("NCCL: %s", lib)
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	id, err := NCCLUniqueID()
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.NewComm(id, 1, 0, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var params []*model.Param
	var want [][]float32
	for i, n := range []int{7, 1 << 16} {
		g := b.Alloc(n)
		v := make([]float32, n)
		for j := range v {
			v[j] = float32(j%13) - 6.5 + float32(i)
		}
		b.Upload(g, v)
		params = append(params, &model.Param{Name: "p", G: g})
		want = append(want, v)
	}
	if err := c.SumGradients(params); err != nil {
		t.Fatal(err)
	}
	for i, p := range params {
		got := make([]float32, p.G.Len())
		b.Download(got, p.G)
		if !slices.Equal(got, want[i]) {
			t.Fatalf("gradient %d changed in a world of one", i)
		}
	}
}

// Bad arguments are refused before NCCL is asked anything.
func TestNewCommRefusesBadArguments(t *testing.T) {
	b := &Backend{}
	if _, err := b.NewComm(make([]byte, 12), 2, 0, time.Second); err == nil {
		t.Fatal("a 12-byte unique id was accepted")
	}
	if _, err := b.NewComm(make([]byte, NCCLUniqueIDBytes), 2, 2, time.Second); err == nil {
		t.Fatal("rank 2 of 2 was accepted")
	}
}
