"""numba kernels, grouped by op family; ``KERNELS`` maps an op's kernel name to its launcher."""
