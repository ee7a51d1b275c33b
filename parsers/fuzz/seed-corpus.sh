#!/bin/sh
# Seeds the fuzz corpora from the real captures: every datagram of every
# stream for `parse`; for `log_format`, HAProxy's formats each followed by a
# real line of that format. Corpora are not committed (see .gitignore).
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/parse corpus/log_format
/usr/bin/env python3 - <<'PY'
import base64, glob, hashlib, json

def save(directory, data):
    with open(f"corpus/{directory}/{hashlib.sha1(data).hexdigest()}", "wb") as f:
        f.write(data)

formats = {
    "httplog": "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r",
    "tcplog": "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq",
}
for path in sorted(glob.glob("../../fixtures/haproxy-2.6/*.datagrams.jsonl")):
    labels = path.replace(".datagrams.", ".expected.")
    for raw, label in zip(open(path), open(labels)):
        save("parse", base64.b64decode(json.loads(raw)["b64"]))
        l = json.loads(label)
        fmt = formats.get(l.get("template"))
        if fmt:
            save("log_format", (fmt + "\n" + l["message"]).encode())
PY
echo "corpus/parse: $(ls corpus/parse | wc -l) inputs, corpus/log_format: $(ls corpus/log_format | wc -l)"
