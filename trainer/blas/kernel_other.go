//go:build !amd64

package blas

func selectKernel() *kernel { return genericKernel }
