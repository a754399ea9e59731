"""Rebuilds this corpus from a CPython 3.11.7 installation.

    python data/pystdlib/build.py /path/to/python3.11/lib/python3.11

Every top-level `*.py` module of the standard library, in sorted order; each
tenth (index 9, 19, ...) goes to the held-out split, the rest to training.
A file is written as `# file: <name>\n` then its bytes. FILES lists every
module with its split, size and SHA-256; the build refuses a source whose
digests differ, so the corpus is exactly the one the benchmarks measured.
"""

import gzip
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _gzip(path, data):
    # mtime=0 and no name: the same bytes give the same file on every machine.
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
            f.write(data)


def main(source):
    names = sorted(n for n in os.listdir(source) if n.endswith(".py"))
    listed = os.path.join(HERE, "FILES")
    expected = None
    if os.path.exists(listed):
        with open(listed) as f:
            expected = [line.split() for line in f if not line.startswith("#")]
    splits = {"train": [], "heldout": []}
    rows = []
    for i, name in enumerate(names):
        with open(os.path.join(source, name), "rb") as f:
            data = f.read()
        split = "heldout" if i % 10 == 9 else "train"
        splits[split].append(b"# file: " + name.encode() + b"\n" + data)
        rows.append([name, split, str(len(data)), hashlib.sha256(data).hexdigest()])
    if expected is not None and expected != rows:
        sys.exit(f"{source} is not the CPython 3.11.7 standard library listed in FILES.")
    with open(listed, "w") as f:
        f.write("# module split bytes sha256 (CPython 3.11.7, Lib/*.py)\n")
        f.writelines(" ".join(row) + "\n" for row in rows)
    for split, parts in splits.items():
        _gzip(os.path.join(HERE, f"{split}.txt.gz"), b"\n".join(parts))


if __name__ == "__main__":
    main(sys.argv[1])
