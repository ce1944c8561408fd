"""The core of sweep: the contract, validation, point space, planning, layout, tables, run
reading, the ports and the kernel API. It imports nothing of ours above it and does no I/O but
through the ports it declares."""
