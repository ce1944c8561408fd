"""A damped harmonic oscillator as a sweep kernel (``sweep_oscillator.kernel.KERNEL``)."""
