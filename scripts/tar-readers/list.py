"""Lists a tar the way Python's tarfile reads it: "<type> <sha256> <size> <name>" per entry."""
import hashlib
import sys
import tarfile

with tarfile.open(sys.argv[1], "r:") as archive:
    for member in archive:
        digest = hashlib.sha256()
        size = 0
        if member.isfile():
            stream = archive.extractfile(member)
            while True:
                chunk = stream.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
        print(member.type.decode(), digest.hexdigest(), size, member.name)
