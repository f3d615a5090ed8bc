#!/usr/bin/python3
"""Pushes every named image of an OCI layout (the store) to a plain-HTTP registry on loopback, over
one kept-alive connection: setup for bench/scale, where one process per image would take longer
than what is measured. Names keep their repository and tag under the given registry.

    push-layout.py STORE 127.0.0.1:5000
"""
import hashlib
import http.client
import json
import os
import sys

store, registry = sys.argv[1], sys.argv[2]
host, port = registry.split(":")
conn = http.client.HTTPConnection(host, int(port))


def request(method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response, data


def blob(digest):
    with open(os.path.join(store, "blobs", *digest.split(":")), "rb") as f:
        return f.read()


pushed = set()
index = json.load(open(os.path.join(store, "index.json")))
for entry in index["manifests"]:
    name = entry.get("annotations", {}).get("org.opencontainers.image.ref.name")
    if not name:
        continue
    repository, tag = name.split("/", 1)[1].rsplit(":", 1)
    manifest = blob(entry["digest"])
    for descriptor in [json.loads(manifest)["config"]] + (json.loads(manifest).get("layers") or []):
        key = (repository, descriptor["digest"])
        if key in pushed:
            continue
        response, _ = request("HEAD", f"/v2/{repository}/blobs/{descriptor['digest']}")
        if response.status != 200:
            data = blob(descriptor["digest"])
            assert hashlib.sha256(data).hexdigest() == descriptor["digest"].split(":")[1]
            response, _ = request("POST", f"/v2/{repository}/blobs/uploads/")
            location = response.getheader("Location")
            location = location.split(registry, 1)[-1] if "://" in location else location
            separator = "&" if "?" in location else "?"
            response, _ = request("PUT", f"{location}{separator}digest={descriptor['digest']}", data,
                                  {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})
            assert response.status == 201, (response.status, descriptor)
        pushed.add(key)
    response, _ = request("PUT", f"/v2/{repository}/manifests/{tag}", manifest,
                          {"Content-Type": entry["mediaType"], "Content-Length": str(len(manifest))})
    assert response.status == 201, (response.status, name)
