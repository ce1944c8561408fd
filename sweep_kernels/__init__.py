"""The built-in kernels, registered through this project's ``sweep.kernels`` entry points like
any other plugin; they import only the core's kernel API."""
