"""Sans-IO protocols: bytes in, events out; events in, bytes out. No I/O, clocks or config."""
