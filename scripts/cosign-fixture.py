#!/usr/bin/python3
"""Cosign-format signatures and OCI 1.1 referrers in a real registry, for airgap's tests.

Debian's skopeo and podman are built without sigstore, so nothing packaged here writes or checks
cosign signatures. This helper writes them as cosign 2.x does by default (the tag layout of
cosign's specs/SIGNATURE_SPEC.md) and checks them independently of airgap's Swift code:

  cosign-fixture.py keygen DIR                   # DIR/cosign.key (PKCS#8 PEM, unencrypted) and DIR/cosign.pub
  cosign-fixture.py attach REGISTRY REPO TAG KEY # sign REPO:TAG, attach an SBOM referrer, sign the SBOM; prints JSON
  cosign-fixture.py verify REGISTRY REPO TAG PUB # exit 0 when REPO:TAG has a .sig by PUB over its digest
  cosign-fixture.py sign REGISTRY KEY REPO:TAG … # a cosign signature for each (the benchmark's setup)
  cosign-fixture.py artifacts REGISTRY REPO      # REPO/chart:0.1.0 (a Helm chart as Helm 3 pushes it) and
                                                 # REPO/module:1 (artifactType, no layers); prints JSON digests

Signatures: ECDSA P-256 / SHA-256 over the simple-signing payload's bytes, ASN.1 DER, standard
base64 in the layer annotation dev.cosignproject.cosign/signature; the manifest is tagged
sha256-<hex>.sig in the image's repository. The SBOM is an OCI artifact (artifactType
application/spdx+json, empty config, subject = the image), pushed by digest, and listed in the
referrers tag schema's index (tag sha256-<hex>), as go-containerregistry does on a registry
without the referrers API. Plain HTTP, no auth: the test registry on 127.0.0.1.
"""
import base64
import hashlib
import json
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    return urllib.request.urlopen(req, timeout=30)


def get_manifest(registry, repo, ref):
    with request("GET", f"http://{registry}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}) as r:
        data = r.read()
        return data, r.headers.get("Content-Type").split(";")[0].strip()


def put_blob(registry, repo, data):
    digest = digest_of(data)
    with request("POST", f"http://{registry}/v2/{repo}/blobs/uploads/", data=b"") as r:
        location = r.headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    separator = "&" if "?" in location else "?"
    request("PUT", f"{location}{separator}digest={digest}", data=data,
            headers={"Content-Type": "application/octet-stream"}).close()
    return {"mediaType": "", "size": len(data), "digest": digest}


def put_manifest(registry, repo, ref, data, media_type):
    request("PUT", f"http://{registry}/v2/{repo}/manifests/{ref}", data=data, headers={"Content-Type": media_type}).close()
    return digest_of(data)


def load_private(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def load_public(path):
    with open(path, "rb") as f:
        return serialization.load_pem_public_key(f.read())


def payload_for(registry, repo, digest):
    # cosign's docker-reference is the repository without tag (SimpleContainerImage in sigstore/sigstore).
    return compact({"critical": {"identity": {"docker-reference": f"{registry}/{repo}"},
                                 "image": {"docker-manifest-digest": digest},
                                 "type": "cosign container image signature"},
                    "optional": None})


def sign(registry, repo, subject, key):
    """Pushes sha256-<hex>.sig for `subject` (a manifest digest); returns the signature manifest's digest."""
    payload = payload_for(registry, repo, subject)
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    layer = put_blob(registry, repo, payload)
    layer["mediaType"] = SIMPLE_SIGNING
    layer["annotations"] = {SIGNATURE_ANNOTATION: signature}
    # The config cosign writes: go-containerregistry's empty image with the payload as one layer.
    config_bytes = compact({"architecture": "", "created": "0001-01-01T00:00:00Z",
                            "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}, "config": {}})
    config = put_blob(registry, repo, config_bytes)
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]})
    tag = subject.replace(":", "-", 1) + ".sig"
    return put_manifest(registry, repo, tag, manifest, OCI_MANIFEST)


def attach(registry, repo, tag, key_path):
    key = load_private(key_path)
    data, media_type = get_manifest(registry, repo, tag)
    subject = {"mediaType": media_type, "size": len(data), "digest": digest_of(data)}
    signature = sign(registry, repo, subject["digest"], key)

    sbom_bytes = compact({"spdxVersion": "SPDX-2.3", "name": f"{repo}:{tag}", "SPDXID": "SPDXRef-DOCUMENT",
                          "dataLicense": "CC0-1.0", "packages": []})
    sbom_layer = put_blob(registry, repo, sbom_bytes)
    sbom_layer["mediaType"] = "application/spdx+json"
    empty = put_blob(registry, repo, b"{}")
    empty["mediaType"] = "application/vnd.oci.empty.v1+json"
    sbom_manifest = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
                             "config": empty, "layers": [sbom_layer], "subject": subject,
                             "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}})
    sbom = put_manifest(registry, repo, digest_of(sbom_manifest), sbom_manifest, OCI_MANIFEST)
    referrers = compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "size": len(sbom_manifest), "digest": sbom, "artifactType": "application/spdx+json",
         "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}}]})
    index = put_manifest(registry, repo, subject["digest"].replace(":", "-", 1), referrers, OCI_INDEX)
    sbom_signature = sign(registry, repo, sbom, key)
    print(json.dumps({"subject": subject["digest"], "signature": signature, "sbom": sbom, "referrersIndex": index,
                      "sbomSignature": sbom_signature}))


def verify(registry, repo, tag, pub_path):
    public = load_public(pub_path)
    data, _ = get_manifest(registry, repo, tag)
    subject = digest_of(data)
    try:
        sig_manifest, _ = get_manifest(registry, repo, subject.replace(":", "-", 1) + ".sig")
    except urllib.error.HTTPError as error:
        print(f"no signature for {subject}: HTTP {error.code}", file=sys.stderr)
        return 1
    for layer in json.loads(sig_manifest)["layers"]:
        with request("GET", f"http://{registry}/v2/{repo}/blobs/{layer['digest']}") as r:
            payload = r.read()
        if digest_of(payload) != layer["digest"]:
            print("payload does not match its digest", file=sys.stderr)
            continue
        try:
            public.verify(base64.b64decode(layer["annotations"][SIGNATURE_ANNOTATION]), payload, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, KeyError, ValueError):
            print("signature does not verify", file=sys.stderr)
            continue
        claimed = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
        if claimed != subject:
            print(f"payload names {claimed}, the image is {subject}", file=sys.stderr)
            continue
        print(f"verified: {repo}:{tag} {subject}")
        return 0
    return 1


def artifacts(registry, repo):
    """Two OCI artifacts that are no images: a Helm chart (config and layer of Helm's media types)
    and an artifact with an artifactType, the empty config and no layers at all."""
    import gzip
    import io
    import tarfile
    chart = io.BytesIO()
    with tarfile.open(fileobj=chart, mode="w", format=tarfile.PAX_FORMAT) as tar:
        body = b"apiVersion: v2\nname: demo\nversion: 0.1.0\n"
        info = tarfile.TarInfo("demo/Chart.yaml")
        info.size, info.mtime = len(body), 0
        tar.addfile(info, io.BytesIO(body))
    layer_bytes = gzip.compress(chart.getvalue(), mtime=0)
    chart_repo = f"{repo}/chart"
    layer = put_blob(registry, chart_repo, layer_bytes)
    layer["mediaType"] = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    config = put_blob(registry, chart_repo, compact({"apiVersion": "v2", "name": "demo", "version": "0.1.0"}))
    config["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    chart_manifest = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer],
                              "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}})
    chart_digest = put_manifest(registry, chart_repo, "0.1.0", chart_manifest, OCI_MANIFEST)

    module_repo = f"{repo}/module"
    empty = put_blob(registry, module_repo, b"{}")
    empty["mediaType"] = "application/vnd.oci.empty.v1+json"
    module_manifest = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.module.v1",
                               "config": empty, "layers": [], "annotations": {"org.example.purpose": "test"}})
    module_digest = put_manifest(registry, module_repo, "1", module_manifest, OCI_MANIFEST)
    print(json.dumps({"chart": chart_digest, "module": module_digest}))


def keygen(directory):
    key = ec.generate_private_key(ec.SECP256R1())
    with open(f"{directory}/cosign.key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(f"{directory}/cosign.pub", "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "keygen" and len(sys.argv) == 3:
        keygen(sys.argv[2])
    elif command == "attach" and len(sys.argv) == 6:
        attach(*sys.argv[2:6])
    elif command == "verify" and len(sys.argv) == 6:
        sys.exit(verify(*sys.argv[2:6]))
    elif command == "sign" and len(sys.argv) >= 5:
        key = load_private(sys.argv[3])
        for item in sys.argv[4:]:
            repo, tag = item.rsplit(":", 1)
            data, _ = get_manifest(sys.argv[2], repo, tag)
            sign(sys.argv[2], repo, digest_of(data), key)
    elif command == "artifacts" and len(sys.argv) == 4:
        artifacts(*sys.argv[2:4])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
