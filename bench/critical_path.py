#!/usr/bin/env python3
"""What a lazy start must fetch before the first exec of an eStargz image: the footer,
the TOC, and the chunks of the entrypoint's file, by HTTP Range from the registry (here
through the bandwidth-limited proxy). Prints JSON: bytes and seconds.

usage: critical_path.py REGISTRY REPO TAG PATH_IN_IMAGE
"""
import gzip
import io
import json
import sys
import tarfile
import time
import urllib.request

registry, repo, tag, path = sys.argv[1:5]
base = f"http://{registry}/v2/{repo}"


def get(url, first=None, last=None, accept=None):
    req = urllib.request.Request(url)
    if first is not None:
        req.add_header("Range", f"bytes={first}-{last}")
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req) as resp:
        return resp.read()


manifest = json.loads(get(f"{base}/manifests/{tag}", accept="application/vnd.oci.image.manifest.v1+json"))
layer = manifest["layers"][0]
blob = f"{base}/blobs/{layer['digest']}"
size = layer["size"]
start = time.perf_counter()
footer = get(blob, size - 51, size - 1)
toc_offset = int(footer[16:32], 16)
member = get(blob, toc_offset, size - 52)
toc = json.loads(tarfile.open(fileobj=io.BytesIO(gzip.decompress(member))).extractfile("stargz.index.json").read())
offsets = sorted({e["offset"] for e in toc["entries"] if "offset" in e} | {toc_offset})
wanted = [e for e in toc["entries"] if e["name"] == path and "offset" in e]
fetched = len(footer) + len(member)
for e in wanted:
    end = offsets[offsets.index(e["offset"]) + 1]
    fetched += len(get(blob, e["offset"], end - 1))
elapsed = time.perf_counter() - start
print(json.dumps({"bytes": fetched, "toc_bytes": len(member), "seconds": elapsed, "chunks": len(wanted)}))
