"""Host emulation of the CUDA kernels for the tests (README.md): build, buffers, checks."""
