#!/usr/bin/python3
"""Writes bench/run's image set as one OCI image layout (then pushed with `skopeo copy`).

  bench/app-1:1.0 ... bench/app-N:1.0   linux/amd64: shared base layer + own random layer
  bench/multi:1.0                       index: linux/amd64 (same shared base + own layer) and
                                        linux/arm64/v8 (arm64 base + own layer)
  bench/big-1:1.0                       linux/amd64, one uncompressed layer of random data

The base layers are gzip files made by bench/run (Debian rootfs tars from mmdebstrap, cached), or,
with --random-base BYTES, random data made here. Their digest and diff_id (sha256 of the gzip file
and of the tar inside) are cached next to them in FILE.json, keyed by size and mtime.

Prints shell assignments (sizes in bytes) for bench/run to eval.
"""
import argparse
import gzip
import hashlib
import json
import os
import sys
import tarfile
import zlib

CHUNK = 1 << 20
MTIME = 1767225600  # 2026-01-01T00:00:00Z: fixed, so the only entropy is the payload
CREATED = "2026-01-01T00:00:00Z"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_TGZ = "application/vnd.oci.image.layer.v1.tar+gzip"
PLATFORMS = {"amd64": {"architecture": "amd64", "os": "linux"},
             "arm64": {"architecture": "arm64", "os": "linux", "variant": "v8"}}


class Layout:
    def __init__(self, root):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)
        self.refs = []  # index.json entries
        self.tmp = 0

    def path(self, digest):
        return os.path.join(self.blobs, digest.split(":", 1)[1])

    def tmpfile(self):
        self.tmp += 1
        return os.path.join(self.root, f".tmp-{self.tmp}")

    def put_bytes(self, data, media_type):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(self.path(digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def put_json(self, obj, media_type):
        return self.put_bytes(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode(), media_type)

    def put_file(self, src, digest, size, media_type):
        dst = self.path(digest)
        if not os.path.exists(dst):
            try:
                os.link(src, dst)  # the cache is on the same file system most of the time
            except OSError:
                with open(src, "rb") as i, open(dst + ".part", "wb") as o:
                    while b := i.read(CHUNK):
                        o.write(b)
                os.rename(dst + ".part", dst)
        return {"mediaType": media_type, "digest": digest, "size": size}

    def tag(self, desc, ref):
        d = dict(desc)
        d["annotations"] = {"org.opencontainers.image.ref.name": ref}
        self.refs.append(d)

    def finish(self):
        with open(os.path.join(self.root, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        with open(os.path.join(self.root, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": self.refs}, f)


def random_layer(layout, name, payload, compress):
    """A layer tar holding opt/NAME/payload.bin of PAYLOAD random bytes; returns (descriptor, diff_id)."""
    tmp = layout.tmpfile()
    raw = hashlib.sha256()
    packed = hashlib.sha256()
    comp = zlib.compressobj(1, zlib.DEFLATED, 31) if compress else None  # wbits 31: gzip, mtime 0
    size = 0
    with open(tmp, "wb") as out:
        def emit(b):
            nonlocal size
            raw.update(b)
            if comp:
                b = comp.compress(b)
            if b:
                packed.update(b)
                out.write(b)
                size += len(b)

        for d in ("opt/", f"opt/{name}/"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, MTIME
            emit(ti.tobuf(tarfile.PAX_FORMAT))
        ti = tarfile.TarInfo(f"opt/{name}/payload.bin")
        ti.size, ti.mode, ti.mtime = payload, 0o644, MTIME
        emit(ti.tobuf(tarfile.PAX_FORMAT))
        left = payload
        while left:
            n = min(CHUNK, left)
            emit(os.urandom(n))
            left -= n
        emit(b"\0" * ((-payload) % 512) + b"\0" * 1024)
        if comp:
            b = comp.flush()
            packed.update(b)
            out.write(b)
            size += len(b)
    diff_id = "sha256:" + raw.hexdigest()
    digest = "sha256:" + packed.hexdigest()
    os.rename(tmp, layout.path(digest))
    return {"mediaType": MT_TGZ if compress else MT_TAR, "digest": digest, "size": size}, diff_id


def base_layer(layout, gz):
    """A cached gzip layer file: its digest and diff_id, from FILE.json when still current."""
    st = os.stat(gz)
    meta_path = gz + ".json"
    key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("key") != key:
            raise ValueError
    except (OSError, ValueError):
        packed = hashlib.sha256()
        raw = hashlib.sha256()
        with open(gz, "rb") as f:
            while b := f.read(CHUNK):
                packed.update(b)
        tar_size = 0
        with gzip.open(gz, "rb") as f:
            while b := f.read(CHUNK):
                raw.update(b)
                tar_size += len(b)
        meta = {"key": key, "digest": "sha256:" + packed.hexdigest(),
                "diff_id": "sha256:" + raw.hexdigest(), "tar_size": tar_size}
        with open(meta_path + ".tmp", "w") as f:
            json.dump(meta, f)
        os.rename(meta_path + ".tmp", meta_path)
    return layout.put_file(gz, meta["digest"], st.st_size, MT_TGZ), meta["diff_id"], meta["tar_size"]


def image(layout, arch, layers, history):
    """Config and manifest for LAYERS [(descriptor, diff_id)]; returns (manifest descriptor, config size)."""
    config = dict(PLATFORMS[arch])
    config.update({
        "created": CREATED,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/bash"]},
        "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
        "history": [{"created": CREATED, "created_by": h} for h in history],
    })
    cfg = layout.put_json(config, MT_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cfg,
                "layers": [desc for desc, _ in layers]}
    return layout.put_json(manifest, MT_MANIFEST), cfg["size"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="OCI layout directory to write (new)")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--app-bytes", type=int, required=True)
    ap.add_argument("--big-bytes", type=int, required=True)
    ap.add_argument("--uncompressed", action="store_true", help="app layers uncompressed")
    ap.add_argument("--base-amd64", help="gzip rootfs layer for linux/amd64")
    ap.add_argument("--base-arm64", help="gzip rootfs layer for linux/arm64")
    ap.add_argument("--random-base", type=int, help="random base layers of this many bytes instead")
    a = ap.parse_args()
    if a.random_base is None and not (a.base_amd64 and a.base_arm64):
        ap.error("give --base-amd64 and --base-arm64, or --random-base")

    layout = Layout(a.out)
    compress = not a.uncompressed
    if a.random_base is not None:
        b_amd, d_amd = random_layer(layout, "base-amd64", a.random_base, True)
        b_arm, d_arm = random_layer(layout, "base-arm64", a.random_base, True)
        tar_amd = tar_arm = a.random_base
        base_how = "random base layer"
    else:
        b_amd, d_amd, tar_amd = base_layer(layout, a.base_amd64)
        b_arm, d_arm, tar_arm = base_layer(layout, a.base_arm64)
        base_how = "debian rootfs"

    unique = b_amd["size"]  # blob bytes of the app set + index, each blob once
    for i in range(1, a.count + 1):
        app = random_layer(layout, f"app-{i}", a.app_bytes, compress)
        desc, cfg = image(layout, "amd64", [(b_amd, d_amd), app], [base_how, f"app-{i} payload"])
        layout.tag(desc, f"bench/app-{i}:1.0")
        unique += app[0]["size"] + desc["size"] + cfg

    children = []
    unique += b_arm["size"]
    for arch, base in (("amd64", (b_amd, d_amd)), ("arm64", (b_arm, d_arm))):
        app = random_layer(layout, f"multi-{arch}", a.app_bytes, compress)
        desc, cfg = image(layout, arch, [base, app], [base_how, f"multi-{arch} payload"])
        children.append(dict(desc, platform=PLATFORMS[arch]))
        unique += app[0]["size"] + desc["size"] + cfg
    idx = layout.put_json({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": children}, MT_INDEX)
    layout.tag(idx, "bench/multi:1.0")
    unique += idx["size"]

    big = random_layer(layout, "big", a.big_bytes, False)
    desc, cfg = image(layout, "amd64", [big], ["big payload"])
    layout.tag(desc, "bench/big-1:1.0")
    big_bytes = big[0]["size"] + desc["size"] + cfg
    layout.finish()

    print(f"SET_BYTES={unique}")
    print(f"BIG_BYTES={big_bytes}")
    print(f"BASE_AMD64_GZ={b_amd['size']} BASE_AMD64_TAR={tar_amd}")
    print(f"BASE_ARM64_GZ={b_arm['size']} BASE_ARM64_TAR={tar_arm}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(1)
