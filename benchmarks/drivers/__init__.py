"""Driver workers: one process per driver, commanded over stdin/stdout JSON lines."""
