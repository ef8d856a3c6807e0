"""Files and videos: atomic writes, hashes, PyAV decoding and encoding, image helpers."""
