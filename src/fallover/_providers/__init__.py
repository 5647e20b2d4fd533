"""Wire protocols: one small file each, sharing ``_base``."""
