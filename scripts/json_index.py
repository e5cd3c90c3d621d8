# An allocation-heavy python3 program for the README's HTML report and the trace-size comparison.
import json, re
docs = []
for i in range(4000):
    d = {"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 17), "x" * (i % 50)]}
    docs.append(json.dumps(d))
index = {}
for s in docs:
    for w in re.findall(r"[a-z]+-\d+", s):
        index.setdefault(w, []).append(s)
print(len(index))
