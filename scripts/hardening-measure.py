#!/usr/bin/env python3
# Loopback-only measurement of a release hapwatch (cargo build --release first):
#   scripts/hardening-measure.py tcp N      RSS with N TCP clients each holding a 60 KB partial frame
#   scripts/hardening-measure.py routes N   RSS and the daemon's CPU after N distinct servers
#   scripts/hardening-measure.py page N R   N distinct servers at R lines/s, then a DOWN:
#                                           time until its webhook arrives (group_wait 0)
# Each run starts its own daemon on a free port with a fresh store and stops it.
import os, socket, subprocess, sys, time, tempfile, datetime

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "hapwatch")
def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) // 1024
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def daemon(extra, listen):
    d = tempfile.mkdtemp()
    cfg = os.path.join(d, "h.toml")
    open(cfg, "w").write(f'[storage]\npath = "{d}/h.db"\n{extra}[[listen]]\nurl = "{listen}"\n')
    p = subprocess.Popen([BIN, "serve", "--config", cfg], stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    return p

mode = sys.argv[1]
if mode == "tcp":
    n = int(sys.argv[2]); port = free_port()
    p = daemon("", f"tcp://127.0.0.1:{port}")
    base = rss(p.pid); conns = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        try: s.sendall(b"x" * 60000)
        except OSError: pass
        conns.append(s)
    time.sleep(3)
    print(f"tcp clients={n} (60 KB partial frame each): RSS {base} MB -> {rss(p.pid)} MB")
    for s in conns: s.close()
    time.sleep(3)
    print(f"  after they closed: RSS {rss(p.pid)} MB")
    p.terminate(); p.wait()
elif mode == "routes":
    n = int(sys.argv[2]); port = free_port()
    p = daemon("", f"udp://127.0.0.1:{port}")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%d/%b/%Y:%H:%M:%S.000")
    base_rss = rss(p.pid)
    t0 = time.time()
    for i in range(n):
        line = f'<134>Nov 23 01:23:33 lb1 haproxy[1]: 10.0.0.1:4242 [{now}] fe be_many/s{i} 0/0/1/5/6 200 100 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"'
        s.sendto(line.encode(), ("127.0.0.1", port))
        if i % 500 == 0: time.sleep(0.05)
    time.sleep(2)
    c0 = cpu(p.pid); time.sleep(20); c1 = cpu(p.pid)
    print(f"routes={n} sent in {time.time()-t0-22:.1f}s: RSS {base_rss} -> {rss(p.pid)} MB; idle pipeline CPU afterwards {100*(c1-c0)/20:.1f} % of a core")
    p.terminate(); p.wait()
elif mode == "page":
    import http.server, threading
    n, rate = int(sys.argv[2]), int(sys.argv[3])
    got = threading.Event()
    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
            got.set()
        def log_message(self, *a): pass
    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    port = free_port()
    p = daemon(f'[notify]\ngroup_wait = "0s"\n[[channel]]\nname = "ops"\ntype = "webhook"\nurl = "http://127.0.0.1:{hook.server_port}/"\n',
               f"udp://127.0.0.1:{port}")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%d/%b/%Y:%H:%M:%S.000")
    t0 = time.time()
    for i in range(n):
        line = f'<134>Nov 23 01:23:33 lb1 haproxy[1]: 10.0.0.1:4242 [{now}] fe be_many/s{i} 0/0/1/5/6 200 100 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"'
        s.sendto(line.encode(), ("127.0.0.1", port))
        lag = t0 + (i + 1) / rate - time.time()
        if lag > 0: time.sleep(lag)
    down = b"<129>Nov 23 01:23:33 lb1 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."
    sent = time.time(); s.sendto(down, ("127.0.0.1", port))
    ok = got.wait(30)
    print(f"{n} distinct servers at {rate}/s, then a DOWN: webhook after {1000*(time.time()-sent):.0f} ms" if ok else "no webhook within 30 s")
    p.terminate(); p.wait()
