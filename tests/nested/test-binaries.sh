#!/bin/sh
# test-binaries.sh NAME...: reads cargo's --message-format=json on stdin and
# prints the paths of the test executables with those target names.
set -eu
want=" $* "
python3 -c '
import json, sys
want = set(sys.argv[1:])
found = {}
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in want \
            and m["profile"].get("test"):
        found[m["target"]["name"]] = m["executable"]
missing = want - set(found)
if missing:
    sys.exit("test-binaries: not built: " + " ".join(sorted(missing)))
print(" ".join(found[n] for n in sys.argv[1:]))
' "$@"
