"""Pure, synchronous protocol codecs: bytes and dicts in, neutral values out. No I/O."""
