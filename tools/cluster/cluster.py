#!/usr/bin/env python3
"""A local wasmCloud v2 cluster serving the edgeslm HTTP service, on 127.0.0.1 only.

    cluster.py up SERVICE.wasm [--hosts N]        start everything; serve until Ctrl-C
    cluster.py smoke SERVICE.wasm                 start, one classify per host and through the balancer, stop
    cluster.py failover SERVICE.wasm REPORT.md    the failover runs (with and without retries)
    cluster.py memory SERVICE.wasm UNBAKED.wasm   RSS per host: the baked image, then file-loaded weights

The pieces, each bound to 127.0.0.1 explicitly:
- an OCI registry (Debian's `docker-registry`): wasmCloud hosts pull components from a
  registry, not from a path; `wash oci push` puts the service there;
- NATS (`nats-server`): the hosts' control plane;
- N wasmCloud v2 hosts (`wash host`), each serving wasi:http on its own port;
- HAProxy in front: round robin, health checks on /v1/health, and (unless asked not to)
  retries of failed requests on another host.

The component is placed on each host by the request wasmCloud's Kubernetes operator sends:
`workload.start` on `runtime.host.<host id>`, JSON in the shape of the
`wasmcloud.runtime.v2` protobuf messages (docs/cluster.md). Everything started is stopped,
and its temporary directory removed, when the script ends.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSIFY = open(os.path.join(ROOT, "examples/http-service/classify.json"), "rb").read()


def log(msg):
    print(f"cluster: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"cluster: {what} did not come up in {timeout} s")


def http_get(port, path, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def nats_request(port, subject, payload, timeout=120):
    """One NATS request-reply over the plain text protocol (no client library needed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        f.readline()  # INFO
        inbox = f"_INBOX.cluster.{os.getpid()}"
        data = json.dumps(payload).encode()
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' + f"SUB {inbox} 1\r\nPUB {subject} {inbox} {len(data)}\r\n".encode() + data + b"\r\n")
        while True:
            line = f.readline().decode().strip()
            if line.startswith("MSG"):
                n = int(line.split()[-1])
                return json.loads(f.read(n + 2)[:-2])
            if line.startswith("-ERR"):
                raise SystemExit(f"cluster: NATS: {line}")
            if line.startswith("PING"):
                s.sendall(b"PONG\r\n")


class Host:
    def __init__(self, name, port, proc, host_id, log_path):
        self.name, self.port, self.proc, self.id, self.log_path = name, port, proc, host_id, log_path

    def rss_mb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0


class Cluster:
    def __init__(self, wasm, hosts=3, pool_size=1, model=None):
        """`model`: a GGUF for an unbaked service, mounted read-only at /models."""
        self.wasm, self.n_hosts, self.pool_size, self.model = wasm, hosts, pool_size, model
        self.dir = tempfile.mkdtemp(prefix="edgeslm-cluster-")
        self.procs = []
        self.hosts = {}
        self.balancer = None

    def spawn(self, name, args):
        out = open(os.path.join(self.dir, f"{name}.log"), "ab")
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.dir)
        self.procs.append(p)
        return p

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop_all()
            raise
        return self

    def __exit__(self, *exc):
        self.stop_all()

    def start(self):
        # The registry (docker-registry's default is every interface: the address is set here).
        self.registry_port = free_port()
        cfg = os.path.join(self.dir, "registry.yml")
        with open(cfg, "w") as f:
            f.write(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {self.dir}/registry\n"
                    f"http:\n  addr: 127.0.0.1:{self.registry_port}\nlog:\n  level: warn\n")
        self.spawn("registry", ["docker-registry", "serve", cfg])
        wait_for("the registry", lambda: http_get(self.registry_port, "/v2/")[0] == 200)
        # NATS (its default is every interface too).
        self.nats_port = free_port()
        self.spawn("nats", ["nats-server", "-a", "127.0.0.1", "-p", str(self.nats_port)])
        wait_for("NATS", lambda: socket.create_connection(("127.0.0.1", self.nats_port), timeout=1).close() is None)
        self.image = f"127.0.0.1:{self.registry_port}/edgeslm-service:latest"
        clock = time.time()
        subprocess.run(["wash", "oci", "push", "--insecure", self.image, self.wasm], check=True, capture_output=True)
        log(f"pushed {os.path.getsize(self.wasm) / 1e6:.0f} MB to {self.image} in {time.time() - clock:.1f} s")
        for i in range(1, self.n_hosts + 1):
            self.start_host(f"h{i}")
        self.start_balancer(retries=True)

    def start_host(self, name, port=None):
        port = port or free_port()
        log_path = os.path.join(self.dir, f"{name}.log")
        open(log_path, "ab").close()
        start = os.path.getsize(log_path)
        nats = f"nats://127.0.0.1:{self.nats_port}"
        proc = self.spawn(name, ["wash", "host", "--scheduler-nats-url", nats, "--data-nats-url", nats, "--http-addr", f"127.0.0.1:{port}",
                                 "--host-name", name, "--allow-insecure-registries"])
        host_id = []

        def started():
            with open(log_path, "rb") as f:
                f.seek(start)
                m = re.search(rb'Host started host_id="([^"]+)"', f.read())
            if proc.poll() is not None:
                raise SystemExit(f"cluster: {name} exited: see {log_path}")
            if m:
                host_id.append(m.group(1).decode())
            return bool(m)

        wait_for(f"host {name}", started)
        clock = time.time()
        reply = nats_request(self.nats_port, f"runtime.host.{host_id[0]}.workload.start", {
            "workloadId": f"edgeslm-{name}",
            "workload": {
                "namespace": "default",
                "name": "edgeslm",
                "witWorld": {
                    "components": [{"name": "edgeslm", "image": self.image, "poolSize": self.pool_size, "localResources": self.resources()}],
                    # wash host routes by the Host header; 127.0.0.1 is what the balancer and tests send.
                    "hostInterfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"], "config": {"host": "127.0.0.1"}}],
                },
                "volumes": [{"name": "models", "hostPath": {"localPath": os.path.dirname(self.model)}}] if self.model else [],
            },
        })
        state = reply.get("workloadStatus", {}).get("workloadState")
        if state != "WORKLOAD_STATE_RUNNING":
            raise SystemExit(f"cluster: {name}: workload.start answered {reply}")
        wait_for(f"the service on {name}", lambda: http_get(port, "/v1/health")[0] == 200)
        log(f"{name}: host {host_id[0]} on 127.0.0.1:{port}, service placed and answering in {time.time() - clock:.1f} s")
        self.hosts[name] = Host(name, port, proc, host_id[0], log_path)
        return self.hosts[name]

    def resources(self):
        if not self.model:
            return {"environment": {}}
        return {
            "environment": {"EDGESLM_MODEL": "/models/" + os.path.basename(self.model)},
            "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
        }

    def start_balancer(self, retries):
        if self.balancer:
            self.stop(self.balancer, signal.SIGTERM)
        self.balancer_port = getattr(self, "balancer_port", None) or free_port()
        servers = "\n".join(f"  server {h.name} 127.0.0.1:{h.port} check" for h in self.hosts.values())
        retry = "  retries 3\n  option redispatch 1\n  retry-on all-retryable-errors\n" if retries else "  retries 0\n"
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(f"""global
  maxconn 512
defaults
  mode http
  timeout connect 1s
  timeout client 120s
  timeout server 120s
  # A request is kept until answered, so that it can be sent again to another host.
  option http-buffer-request
{retry}frontend edgeslm
  bind 127.0.0.1:{self.balancer_port}
  default_backend hosts
backend hosts
  balance roundrobin
  option httpchk
  # wash host routes by the Host header: the check must send one.
  http-check send meth GET uri /v1/health ver HTTP/1.1 hdr host 127.0.0.1
  http-check expect status 200
  # A busy host answers its check late, not never: 5 s before a check counts as failed.
  timeout check 5s
  default-server inter 500ms fall 2 rise 2
  http-response set-header x-edgeslm-host %s
{servers}
""")
        self.balancer = self.spawn("haproxy", ["haproxy", "-db", "-f", cfg])
        # Up when every host has passed its health checks (`rise 2`).
        wait_for("HAProxy", lambda: http_get(self.balancer_port, "/v1/health")[0] == 200)
        time.sleep(1.5)
        wait_for("HAProxy's health checks", lambda: http_get(self.balancer_port, "/v1/health")[0] == 200)
        log(f"HAProxy on 127.0.0.1:{self.balancer_port} ({'with' if retries else 'without'} retries)")

    def stop(self, proc, sig):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p, signal.SIGTERM)
        subprocess.run(["rm", "-rf", self.dir])


def classify(port, timeout=120):
    """One classify request: (status, host that answered or None, seconds, error)."""
    clock = time.time()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/v1/classify", CLASSIFY, {"content-type": "application/json", "host": "127.0.0.1"})
        r = c.getresponse()
        body = r.read()
        err = None if r.status == 200 else body[:200].decode(errors="replace")
        return r.status, r.getheader("x-edgeslm-host"), time.time() - clock, err
    except OSError as e:
        return 0, None, time.time() - clock, str(e)
    finally:
        c.close()


def smoke(wasm):
    with Cluster(wasm) as c:
        for h in c.hosts.values():
            status, _, secs, err = classify(h.port)
            assert status == 200, (h.name, status, err)
            log(f"{h.name}: classify 200 in {secs * 1000:.0f} ms")
        seen = set()
        for _ in range(2 * len(c.hosts)):
            status, host, _, err = classify(c.balancer_port)
            assert status == 200, (status, err)
            seen.add(host)
        assert seen == set(c.hosts), f"the balancer used {seen}"
        log(f"balancer: {2 * len(c.hosts)} classify requests, all 200, spread over {sorted(seen)}")
    print("cluster smoke: ok")


def run_load(c, n, rate, events):
    """`n` classify requests at `rate` per second through the balancer, with `events`
    ([(second, label, action)]) done on schedule; returns the results and RSS samples."""
    results, rss = [None] * n, []
    t0 = time.time()

    def one(i):
        delay = t0 + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        results[i] = (time.time() - t0,) + classify(c.balancer_port)

    def scheduler():
        for at, label, action in events:
            delay = t0 + at - time.time()
            if delay > 0:
                time.sleep(delay)
            log(f"t={time.time() - t0:.0f} s: {label}")
            action()

    def sampler():
        while any(r is None for r in results):
            rss.append({h.name: h.rss_mb() for h in c.hosts.values()})
            time.sleep(1)

    threads = [threading.Thread(target=scheduler), threading.Thread(target=sampler)]
    for t in threads:
        t.start()
    with ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(one, range(n)))
    for t in threads:
        t.join()
    return results, rss


def summarize(results, rss, seconds):
    lat = sorted(r[3] for r in results if r[1] == 200)
    failed = [r for r in results if r[1] != 200]
    per_host = {}
    for r in results:
        if r[1] == 200:
            per_host[r[2]] = per_host.get(r[2], 0) + 1
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")
    peak = {}
    for sample in rss:
        for k, v in sample.items():
            peak[k] = max(peak.get(k, 0), v)
    return {
        "requests": len(results), "ok": len(lat), "failed": len(failed),
        "throughput_rps": round(len(lat) / seconds, 2), "p50_ms": round(pct(0.5)), "p99_ms": round(pct(0.99)),
        "per_host": dict(sorted(per_host.items())), "peak_rss_mb": {k: round(v) for k, v in sorted(peak.items())},
        "failures": [{"t": round(r[0], 1), "status": r[1], "error": r[4]} for r in failed][:10],
    }


def failover(wasm, report, n=240, rate=2.0):
    seconds = n / rate
    runs = {}
    with Cluster(wasm) as c:
        for h in c.hosts.values():  # the first request of an instance pays its start
            classify(h.port)
        for retries in (True, False):
            c.start_balancer(retries=retries)
            h2, h3 = c.hosts["h2"], c.hosts["h3"]
            events = [
                (0.25 * seconds, "SIGTERM h2", lambda: c.stop(h2.proc, signal.SIGTERM)),
                (0.45 * seconds, "SIGKILL h3", lambda: c.stop(h3.proc, signal.SIGKILL)),
                (0.65 * seconds, "h2 and h3 started again", lambda: (c.start_host("h2", h2.port), c.start_host("h3", h3.port))),
            ]
            log(f"load: {n} classify requests over {seconds:.0f} s, {'with' if retries else 'without'} retries")
            results, rss = run_load(c, n, rate, events)
            runs["with retries" if retries else "without retries"] = summarize(results, rss, seconds)
            # After the restart: which hosts answered in the last quarter.
            late = sorted({r[2] for r in results if r[0] > 0.8 * seconds and r[1] == 200})
            runs["with retries" if retries else "without retries"]["hosts_in_last_fifth"] = late
    write_report(report, runs, n, seconds)
    # What must hold: with retries no request fails through the kills; in both runs all three
    # hosts answer again after the restart.
    problems = [f"{name}: {r['failed']} failed" for name, r in runs.items() if name == "with retries" and r["failed"]]
    problems += [f"{name}: only {r['hosts_in_last_fifth']} answered after the restart" for name, r in runs.items() if len(r["hosts_in_last_fifth"]) < 3]
    if problems:
        raise SystemExit("cluster failover: FAILED: " + "; ".join(problems))
    print("cluster failover: ok")


def memory(baked, unbaked, out):
    """RSS of one host with the service placed, at its peak while answering 6 requests per
    pool slot and after, with pools of 1 and 4, for the baked image and the file-loaded one."""
    model = os.path.join(ROOT, "models/gemma-3-270m-q4_k_m.gguf")
    rows = []
    for label, wasm, path in (("baked image", baked, None), ("file-loaded (EDGESLM_MODEL, read-only mount)", unbaked, model)):
        for pool in (1, 4):
            with Cluster(wasm, hosts=1, pool_size=pool, model=path) as c:
                h = c.hosts["h1"]
                idle = h.rss_mb()
                peak, done = [idle], threading.Event()

                def sample():
                    while not done.is_set():
                        peak.append(h.rss_mb())
                        time.sleep(0.05)

                sampler = threading.Thread(target=sample)
                sampler.start()
                first = classify(h.port)
                with ThreadPoolExecutor(max_workers=pool) as ex:
                    answers = list(ex.map(lambda _: classify(h.port), range(6 * pool)))
                done.set()
                sampler.join()
                assert all(a[0] == 200 for a in answers + [first]), answers
                lat = sorted(a[2] for a in answers)
                rows.append((label, pool, round(idle), round(max(peak)), round(h.rss_mb()), round(first[2] * 1000), round(lat[len(lat) // 2] * 1000)))
                log(f"{label}, pool {pool}: {rows[-1]}")
    with open(out, "a") as f:
        f.write("\n## Memory per host\n\nOne `wash host` with the service placed (`poolSize` warm instances), RSS after "
                "placing it, its peak while answering (sampled every 50 ms) and after; the first request's time and the "
                "median of the next ones (`classify`, as many at once as the pool holds).\n\n"
                "| service | poolSize | RSS placed | peak RSS | RSS after | first request | median request |\n|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r[0]} | {r[1]} | {r[2]} MB | {r[3]} MB | {r[4]} MB | {r[5]} ms | {r[6]} ms |\n")
    log(f"report: {out}")


def write_report(path, runs, n, seconds):
    lines = [
        "# The HTTP service on a local wasmCloud v2 cluster: failover under load",
        "",
        f"`scripts/cluster failover` on one machine (2 cores, 127.0.0.1): a registry, NATS, three `wash host` "
        f"processes (wasmCloud 2.10.3) each running the baked Gemma 3 270M service (pool of one warm instance), "
        f"HAProxy 2.6 in front with health checks every 500 ms. Load: {n} classify requests "
        f"(examples/http-service/classify.json) at an even rate over {seconds:.0f} s. At 25% of the run h2 gets "
        f"SIGTERM, at 45% h3 gets SIGKILL, at 65% both are started again (a new host process, the component placed "
        f"again over NATS). The same run twice: HAProxy retrying a failed request on another host "
        f"(`retries 3`, `option redispatch`, `retry-on all-retryable-errors`), then not.",
        "",
        "| run | requests | ok | failed | throughput | p50 | p99 | answers per host | hosts answering in the last fifth | peak RSS per host |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        hosts = ", ".join(f"{k}: {v}" for k, v in r["per_host"].items())
        rss = ", ".join(f"{k}: {v} MB" for k, v in r["peak_rss_mb"].items())
        lines.append(f"| {name} | {r['requests']} | {r['ok']} | {r['failed']} | {r['throughput_rps']}/s | {r['p50_ms']} ms | "
                     f"{r['p99_ms']} ms | {hosts} | {', '.join(r['hosts_in_last_fifth'])} | {rss} |")
    lines += ["", "Failed requests (first ten per run):", ""]
    for name, r in runs.items():
        lines.append(f"- {name}: " + ("none" if not r["failures"] else "; ".join(f"t={f['t']} s {f['status']} {f['error']}" for f in r["failures"])))
    lines += ["", "Raw figures:", "", "```json", json.dumps(runs, indent=1), "```", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    log(f"report: {path}")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("up", "smoke", "failover", "memory"):
        sys.exit(__doc__)
    mode, wasm = sys.argv[1], os.path.abspath(sys.argv[2])
    if mode == "memory":
        memory(wasm, os.path.abspath(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else os.path.join(ROOT, "bench/results/cluster.md"))
    elif mode == "smoke":
        smoke(wasm)
    elif mode == "failover":
        failover(wasm, sys.argv[3] if len(sys.argv) > 3 else os.path.join(ROOT, "bench/results/cluster.md"))
    else:
        hosts = int(sys.argv[sys.argv.index("--hosts") + 1]) if "--hosts" in sys.argv else 3
        with Cluster(wasm, hosts=hosts) as c:
            for h in c.hosts.values():
                print(f"{h.name}: http://127.0.0.1:{h.port} (host {h.id})")
            print(f"balancer: http://127.0.0.1:{c.balancer_port}  (Ctrl-C stops everything)", flush=True)
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
