#!/usr/bin/env python3
"""deploy_check.py - reads the deployment files under docker/ for test_deploy.sh.

The deployment files are configuration, not code: what can go wrong in them is a name
that does not match (a metric funcmond does not serve, a prefix the sidecar does not
watch, a port nobody listens on, a mount that hides the file it should show). This
helper parses them (YAML with PyYAML, JSON, Dockerfiles line by line) and either prints
what test_deploy.sh compares against a running funcmond, or checks how the files fit
together and prints one line per mismatch. Exit 0 when all is well, 1 with the reasons.

Usage:
  deploy_check.py names DASHBOARD.json ALERTS.yml   metric names the PromQL uses: "file name"
  deploy_check.py expr EXPR                         metric names of one PromQL expression
  deploy_check.py queries DASHBOARD.json ALERTS.yml every expression: "kind<TAB>title<TAB>expr"
  deploy_check.py compose RESOLVED.yml DOCKER_DIR   compose semantics (docker-compose config output)
  deploy_check.py kubernetes FILE.yaml              the pod, its shared /dev/shm, Service, scraping
  deploy_check.py dockerfile FILE KEY               one fact of the last stage, or of the builder:
        user | packages | healthcheck | entrypoint | expose | env:NAME | builder-run | copies
"""
import json
import re
import sys

import yaml

# PromQL words that are not metric names when they stand alone.
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                "unless", "inf", "nan", "atan2", "start", "end"}
GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"


def metric_names(expr):
    """The metric names a PromQL expression selects. Strings, label matchers, ranges and
    grouping label lists are removed first; what remains is functions (followed by a
    parenthesis), keywords, numbers, durations, Grafana variables ($x) and metric names."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(GROUPING, " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w$:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call is None and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def variable_expr(query):
    """The PromQL inside a Grafana query variable: label_values(EXPR, label) gives EXPR,
    label_values(label) none, query_result(EXPR) gives EXPR."""
    if isinstance(query, dict):
        query = query.get("query", "")
    query = (query or "").strip()
    m = re.fullmatch(r"label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)", query, re.S)
    if m:
        return m.group(1)
    if re.fullmatch(r"label_values\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)", query):
        return None
    m = re.fullmatch(r"query_result\((.*)\)", query, re.S)
    if m:
        return m.group(1)
    return query or None


def dashboard_queries(path):
    """(kind, title, expr) of every panel target and query variable of a dashboard."""
    with open(path) as f:
        dash = json.load(f)
    out = []

    def walk(panels):
        for p in panels or []:
            for t in p.get("targets") or []:
                if t.get("expr"):
                    out.append(("panel", p.get("title", "?"), t["expr"]))
            walk(p.get("panels"))

    walk(dash.get("panels"))
    for v in (dash.get("templating") or {}).get("list") or []:
        if v.get("type") == "query":
            e = variable_expr(v.get("query") or v.get("definition"))
            if e:
                out.append(("variable", v.get("name", "?"), e))
    return out


def alert_queries(path):
    """(kind, name, expr) of every rule of a Prometheus rule file."""
    with open(path) as f:
        doc = yaml.safe_load(f)
    out = []
    for g in doc.get("groups") or []:
        for r in g.get("rules") or []:
            out.append(("alert" if "alert" in r else "record", r.get("alert") or r.get("record"), str(r["expr"])))
    return out


def cmd_names(dashboard, alerts):
    for path, queries in ((dashboard, dashboard_queries(dashboard)), (alerts, alert_queries(alerts))):
        names = set()
        for _, _, e in queries:
            names |= metric_names(e)
        for n in sorted(names):
            print(f"{path} {n}")
    return 0


def cmd_queries(dashboard, alerts):
    for kind, title, e in dashboard_queries(dashboard) + alert_queries(alerts):
        print(f"{kind}\t{title}\t{' '.join(e.split())}")
    return 0


def size_bytes(s):
    """Docker's size syntax: 256m, 1g, 1048576, 64mb."""
    m = re.fullmatch(r"\s*(\d+)\s*([bkmg]?)b?\s*", str(s).lower())
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)]


def env_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env if "=" in e)
    return env


def mounts_of(service):
    """{container path: host path} of a service's bind mounts (resolved config: absolute)."""
    out = {}
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            out[parts[1]] = parts[0]
        else:
            out[v["target"]] = v.get("source")
    return out


def cmd_compose(resolved, docker_dir):
    import os

    with open(resolved) as f:
        cfg = yaml.safe_load(f)
    errs = []
    svcs = cfg.get("services") or {}
    for s in ("demo", "funcmond", "prometheus", "grafana"):
        if s not in svcs:
            errs.append(f"no service {s}")
    if errs:
        return report(errs)
    demo, fmd, prom, graf = svcs["demo"], svcs["funcmond"], svcs["prometheus"], svcs["grafana"]
    repo = os.path.dirname(os.path.abspath(docker_dir))

    if demo.get("ipc") != "shareable":
        errs.append(f"demo: ipc is {demo.get('ipc')!r}, not 'shareable'")
    if fmd.get("ipc") != "service:demo":
        errs.append(f"funcmond: ipc is {fmd.get('ipc')!r}, not 'service:demo' (it must see the demo's /dev/shm)")
    if fmd.get("pid") != "service:demo":
        errs.append(f"funcmond: pid is {fmd.get('pid')!r}, not 'service:demo' (it checks the segments' pids)")
    shm = size_bytes(demo.get("shm_size", 0))
    if shm is None or shm <= 64 << 20:
        errs.append(f"demo: shm_size {demo.get('shm_size')!r} is not above Docker's 64 MB default")

    client_prefix = env_of(demo).get("FUNCMON_SHM_PREFIX", "funcmon")
    sidecar_prefix = env_of(fmd).get("SIDECAR_SHM_PREFIX", "funcmon")
    if client_prefix != sidecar_prefix:
        errs.append(f"segment prefixes differ: demo FUNCMON_SHM_PREFIX={client_prefix!r}, "
                    f"funcmond SIDECAR_SHM_PREFIX={sidecar_prefix!r}")

    for name, dockerfile in (("demo", "docker/Dockerfile.demo"), ("funcmond", "docker/Dockerfile.funcmond")):
        b = svcs[name].get("build") or {}
        if os.path.abspath(b.get("context", "")) != repo or b.get("dockerfile") != dockerfile:
            errs.append(f"{name}: builds {b.get('dockerfile')!r} in {b.get('context')!r}, not {dockerfile} in the repository")

    # funcmond listens where Prometheus scrapes.
    listen = env_of(fmd).get("HTTP_LISTEN", "127.0.0.1:10000")
    host, _, port = listen.rpartition(":")
    if host not in ("0.0.0.0", "[::]", ""):
        errs.append(f"funcmond: HTTP_LISTEN {listen!r} is not reachable from the prometheus container")
    # On every interface the debug endpoints need a token (the metrics Prometheus scrapes
    # never do); in the resolved file it is the value of the variable it comes from.
    if not env_of(fmd).get("HTTP_AUTH_TOKEN"):
        errs.append("funcmond: listens on every interface with no HTTP_AUTH_TOKEN: /debug is open to the network")
    pm = mounts_of(prom)
    conf_arg = [a for a in prom.get("command") or [] if a.startswith("--config.file=")]
    conf_in = conf_arg[0].split("=", 1)[1] if conf_arg else "/etc/prometheus/prometheus.yml"
    conf_host = pm.get(conf_in)
    if conf_host != os.path.join(docker_dir, "prometheus", "prometheus.yml"):
        errs.append(f"prometheus: {conf_in} is mounted from {conf_host!r}, not docker/prometheus/prometheus.yml")
    else:
        with open(conf_host) as f:
            pcfg = yaml.safe_load(f)
        targets = [t for j in pcfg.get("scrape_configs") or [] for sc in j.get("static_configs") or []
                   for t in sc.get("targets") or []]
        if f"funcmond:{port}" not in targets:
            errs.append(f"prometheus.yml scrapes {targets}, not funcmond:{port} (funcmond's HTTP_LISTEN {listen})")
        for rf in pcfg.get("rule_files") or []:
            inside = rf if rf.startswith("/") else os.path.join(os.path.dirname(conf_in), rf)
            if inside not in pm:
                errs.append(f"prometheus: rule file {rf} ({inside}) is not mounted")
            elif not os.path.isfile(pm[inside]):
                errs.append(f"prometheus: rule file {inside} is mounted from {pm[inside]}, which does not exist")

    gm = mounts_of(graf)
    prov = gm.get("/etc/grafana/provisioning")
    if prov != os.path.join(docker_dir, "grafana", "provisioning"):
        errs.append(f"grafana: /etc/grafana/provisioning is mounted from {prov!r}, not docker/grafana/provisioning")
    else:
        with open(os.path.join(prov, "dashboards", "funcmon.yml")) as f:
            providers = yaml.safe_load(f).get("providers") or []
        for p in providers:
            path = (p.get("options") or {}).get("path")
            src = gm.get(path)
            if src is None or not os.path.isfile(os.path.join(src, "funcmon.json")):
                errs.append(f"grafana: dashboard provider path {path} does not hold funcmon.json (mounted from {src!r})")
        with open(os.path.join(prov, "datasources", "prometheus.yml")) as f:
            sources = yaml.safe_load(f).get("datasources") or []
        urls = [d.get("url") for d in sources if d.get("type") == "prometheus"]
        if "http://prometheus:9090" not in urls:
            errs.append(f"grafana: no Prometheus data source at http://prometheus:9090 (have {urls})")
    return report(errs)


def cmd_kubernetes(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    errs = []
    kinds = [d.get("kind") for d in docs]
    deps = [d for d in docs if d.get("kind") == "Deployment"]
    svcs = [d for d in docs if d.get("kind") == "Service"]
    if len(deps) != 1 or len(svcs) != 1:
        return report([f"want one Deployment and one Service, have {kinds}"])
    dep, svc = deps[0], svcs[0]
    tmpl = dep["spec"]["template"]
    spec = tmpl["spec"]
    labels = tmpl["metadata"].get("labels") or {}
    if dep["spec"]["selector"].get("matchLabels") != labels:
        errs.append("the Deployment's selector does not match its pod labels")
    if any(labels.get(k) != v for k, v in (svc["spec"].get("selector") or {}).items()):
        errs.append("the Service's selector does not match the pod labels")

    shm_vols = [v["name"] for v in spec.get("volumes") or []
                if (v.get("emptyDir") or {}).get("medium") == "Memory"]
    if not shm_vols:
        errs.append("no emptyDir volume with medium: Memory")
    containers = {c["name"]: c for c in spec.get("containers") or []}
    sidecar = [c for c in containers.values() if c.get("image", "").startswith("funcmond")]
    apps = [c for c in containers.values() if not c.get("image", "").startswith("funcmond")]
    if len(sidecar) != 1 or not apps:
        return report(errs + [f"want the app and one funcmond container, have {list(containers)}"])
    sidecar = sidecar[0]
    for c in apps + [sidecar]:
        on_shm = [m["name"] for m in c.get("volumeMounts") or [] if m.get("mountPath") == "/dev/shm"]
        if not on_shm or on_shm[0] not in shm_vols:
            errs.append(f"container {c['name']}: the memory emptyDir is not mounted at /dev/shm")

    def env(c, name, default):
        for e in c.get("env") or []:
            if e["name"] == name and "value" in e:
                return str(e["value"])
        return default

    for c in apps:
        if env(c, "FUNCMON_SHM_PREFIX", "funcmon") != env(sidecar, "SIDECAR_SHM_PREFIX", "funcmon"):
            errs.append(f"container {c['name']}: FUNCMON_SHM_PREFIX differs from funcmond's SIDECAR_SHM_PREFIX")
    if spec.get("shareProcessNamespace") is not True:
        errs.append("shareProcessNamespace is not true: funcmond cannot see the app's pid")
    uid = (spec.get("securityContext") or {}).get("runAsUser")
    if not uid:
        errs.append("the pod does not run as a non-root runAsUser")
    for c in containers.values():
        cu = (c.get("securityContext") or {}).get("runAsUser", uid)
        if cu != uid:
            errs.append(f"container {c['name']}: runAsUser {cu} differs from the pod's {uid} (segments are per uid)")

    listen = env(sidecar, "HTTP_LISTEN", "127.0.0.1:10000")
    host, _, port = listen.rpartition(":")
    if host not in ("0.0.0.0", "[::]", ""):
        errs.append(f"funcmond: HTTP_LISTEN {listen} is not reachable from outside the pod")
    # Reachable from outside the pod: the debug endpoints need a token, from a Secret that
    # must exist (an optional reference starts funcmond without one).
    token = [e for e in sidecar.get("env") or [] if e["name"] == "HTTP_AUTH_TOKEN"]
    ref = ((token[0].get("valueFrom") or {}).get("secretKeyRef") or {}) if token else {}
    if not ref.get("name") or not ref.get("key"):
        errs.append("funcmond: HTTP_AUTH_TOKEN does not come from a Secret (valueFrom.secretKeyRef)")
    elif ref.get("optional"):
        errs.append(f"funcmond: the Secret {ref['name']} of HTTP_AUTH_TOKEN is optional: without it /debug is open")
    ports = {str(p["containerPort"]): p.get("name") for p in sidecar.get("ports") or []}
    if port not in ports:
        errs.append(f"funcmond: port {port} of HTTP_LISTEN is not a containerPort ({list(ports)})")
    ann = tmpl["metadata"].get("annotations") or {}
    if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != port or \
            ann.get("prometheus.io/path", "/metrics") != "/metrics":
        errs.append(f"pod: prometheus.io annotations {ann} do not point at funcmond's {port}/metrics")
    if any(k.startswith("prometheus.io/") for k in (svc["metadata"].get("annotations") or {})):
        errs.append("Service: prometheus.io annotations beside the pod's would scrape funcmond twice")
    svc_ports = {p.get("name"): p for p in svc["spec"].get("ports") or []}
    if not any(str(p.get("targetPort")) in (port, ports.get(port)) for p in svc_ports.values()):
        errs.append(f"the Service exposes no port to funcmond's {port}")
    for d in docs:
        if d.get("kind") == "ServiceMonitor":
            for ep in d["spec"].get("endpoints") or []:
                p = svc_ports.get(ep.get("port"))
                if p is None or str(p.get("targetPort")) not in (port, ports.get(port)):
                    errs.append(f"ServiceMonitor: endpoint port {ep.get('port')!r} is not the Service's funcmond port")
    return report(errs)


def dockerfile_stages(path):
    """The stages of a Dockerfile: [(FROM line, [(INSTRUCTION, arguments)])], with
    continuation lines joined and comments dropped."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"\\\n", " ", text)
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        inst, _, args = line.partition(" ")
        inst = inst.upper()
        if inst == "FROM":
            stages.append((args.strip(), []))
        elif stages:
            stages[-1][1].append((inst, " ".join(args.split())))
    return stages


def cmd_dockerfile(path, key):
    stages = dockerfile_stages(path)
    if len(stages) < 2:
        print(f"{path}: {len(stages)} stage(s), want a builder and a runtime stage", file=sys.stderr)
        return 1
    builder, runtime = stages[0][1], stages[-1][1]
    last = lambda inst: ([a for i, a in runtime if i == inst] or [""])[-1]
    if key == "user":
        print(last("USER"))
    elif key == "healthcheck":
        print(last("HEALTHCHECK"))
    elif key == "entrypoint":
        print(last("ENTRYPOINT"))
    elif key == "expose":
        print(" ".join(a for i, a in runtime if i == "EXPOSE"))
    elif key.startswith("env:"):
        name = key[4:]
        for i, a in runtime:
            if i == "ENV":
                for m in re.finditer(r'(\w+)=("[^"]*"|\S+)', a):
                    if m.group(1) == name:
                        print(m.group(2).strip('"'))
    elif key == "builder-run":
        for i, a in builder:
            if i == "RUN":
                print(a)
    elif key == "copies":
        # COPY --from=builder SOURCE... DEST, one source a line (the builder's paths).
        for i, a in runtime:
            if i == "COPY" and a.startswith("--from="):
                for src in a.split()[1:-1]:
                    print(src)
    elif key == "packages":
        # The packages apt-get installs in the runtime stage.
        for i, a in runtime:
            if i != "RUN":
                continue
            for cmd in re.split(r"&&|;", a):
                words = cmd.split()
                if "apt-get" in words and "install" in words:
                    for w in words[words.index("install") + 1:]:
                        if not w.startswith("-"):
                            print(w)
    else:
        print(f"unknown key {key}", file=sys.stderr)
        return 2
    return 0


def report(errs):
    for e in errs:
        print(e)
    return 1 if errs else 0


def main(argv):
    if len(argv) == 4 and argv[1] == "names":
        return cmd_names(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "expr":
        for n in sorted(metric_names(argv[2])):
            print(n)
        return 0
    if len(argv) == 4 and argv[1] == "queries":
        return cmd_queries(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "compose":
        return cmd_compose(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "kubernetes":
        return cmd_kubernetes(argv[2])
    if len(argv) == 4 and argv[1] == "dockerfile":
        return cmd_dockerfile(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
