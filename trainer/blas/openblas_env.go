package blas

// singleThreadedEnv is set while a library loads (and restored after, unless
// the user set it): a pthreads OpenBLAS reads OPENBLAS_NUM_THREADS and an
// OpenMP one OMP_NUM_THREADS when it initialises, so neither starts worker
// threads we do not use (see Sgemm on threading).
var singleThreadedEnv = []string{"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "GOTO_NUM_THREADS"}
