"""The cache's key function: keys made from user input (the login limit counts per username) may hold a NUL,
which PostgreSQL text, and so the database cache, cannot store (a 500 at the first such request). NUL and the
backslash are escaped, so distinct keys stay distinct."""


def make_key(key, key_prefix, version):
    key = str(key).replace("\\", "\\\\").replace("\x00", "\\0")
    return f"{key_prefix}:{version}:{key}"
