"""One owner per file format: each module reads and writes one kind of file and takes and returns plain
arrays, dicts and dataclasses, so every layer above shares one reader and one writer."""
