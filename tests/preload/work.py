# SPDX-License-Identifier: MIT
"""Real work for python3 under LD_PRELOAD: a large dict and list built,
sorted, serialised to JSON and back, grouped, and a digest of it all
printed.  Deterministic: the same output on any malloc.

usage: work.py N   (N records; 300000 takes a few seconds)
"""
import collections
import hashlib
import json
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
rng = random.Random(12345)
letters = "abcdefghijklmnopqrstuvwxyz"

records = {}
for i in range(n):
    key = "".join(rng.choice(letters) for _ in range(6)) + "-" + str(i)
    records[key] = {
        "id": i,
        "name": key.upper(),
        "score": rng.random() * 1000,
        "tags": [letters[(i * k) % 26] * (k % 5 + 1) for k in range(i % 7)],
        "blob": "x" * (i % 300),
    }

keys = sorted(records)
by_score = sorted(records.values(), key=lambda r: (r["score"], r["id"]))
h = hashlib.sha256()
for k in keys[:: max(1, n // 5000)]:
    h.update(k.encode())
print("keys", len(keys), keys[0], keys[-1], h.hexdigest()[:16])
print("lowest", by_score[0]["name"], "highest", by_score[-1]["name"])

# JSON round trips, in chunks, and a check that they agree
total = 0
for start in range(0, n, 20000):
    chunk = [records[k] for k in keys[start:start + 20000]]
    text = json.dumps(chunk, sort_keys=True)
    back = json.loads(text)
    assert back == chunk, "json round trip differs"
    total += len(text)
print("json bytes", total)

# grouping, counting, string building
groups = collections.defaultdict(list)
for r in records.values():
    groups[r["name"][0]].append(r["id"])
counts = collections.Counter(t for r in records.values() for t in r["tags"])
print("groups", sorted((g, len(v)) for g, v in groups.items())[:5])
print("tags", counts.most_common(5))
parts = []
for i in range(0, n, 3):
    parts.append("%d:%s" % (i, keys[i % len(keys)][:4]))
joined = ",".join(parts)
print("joined", len(joined), hashlib.md5(joined.encode()).hexdigest())

# delete half, rebuild, to churn the heap
for k in keys[::2]:
    del records[k]
for i in range(n // 2):
    records["new%d" % i] = [i] * (i % 50)
print("final", len(records), sum(len(v) for v in records.values() if isinstance(v, list)))
