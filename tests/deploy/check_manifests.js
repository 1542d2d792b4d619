#!/usr/bin/env node
// Offline checks of deploy/: renders every kustomization with `kubectl kustomize`, validates each rendered object
// against the Kubernetes JSON schemas of npm kubernetes-models (Kubernetes 1.27) and, for the Prometheus Operator
// kinds, @kubernetes-models/prometheus-operator; then checks the invariants that make a rollout work the first
// time (probes, drain timing, selectors, HPA metric, security). Prints one line per check and a closing
// "N passed, M failed" line; exits 1 if any check failed.
// Usage: node tests/deploy/check_manifests.js [REPO_ROOT]
"use strict";
const { execFileSync } = require("child_process");
const fs = require("fs");
const path = require("path");
const yaml = require("js-yaml");

const ROOT = path.resolve(process.argv[2] || path.join(__dirname, "..", ".."));
const KUSTOMIZATIONS = ["deploy/k8s/base", "deploy/k8s/overlays/gpu", "deploy/k8s/overlays/cpu",
                        "deploy/k8s/prometheus-adapter"];
const SERVING = ["deploy/k8s/overlays/gpu", "deploy/k8s/overlays/cpu"];
// Extra time the server may need after its drain deadline to cancel what is left and exit.
const EXIT_SLACK_S = 10;

let passed = 0;
let failed = 0;
function check(name, fn) {
  try {
    fn();
    passed++;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}
function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

function render(dir) {
  const out = execFileSync("kubectl", ["kustomize", path.join(ROOT, dir)],
                           { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return yaml.loadAll(out).filter((d) => d);
}

function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  let mod;
  if (group === "monitoring.coreos.com") {
    mod = require(`@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}`);
  } else {
    mod = require(group === "" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`);
  }
  expect(mod[kind], `no schema for ${apiVersion} ${kind}`);
  return mod[kind];
}

// JSON with sorted keys: kustomize reorders map keys.
const canonical = (v) => Array.isArray(v) ? `[${v.map(canonical).join(",")}]`
  : v && typeof v === "object" ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`
  : JSON.stringify(v);
const find = (objs, kind, name) => objs.find((o) => o.kind === kind && (!name || o.metadata.name === name));
const selects = (selector, labels) =>
  Object.entries(selector || {}).every(([k, v]) => labels[k] === v) && Object.keys(selector || {}).length > 0;

// Resolves $(VAR) references in a container arg against its env.
function resolveArg(arg, container) {
  return arg.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name) => {
    const e = (container.env || []).find((x) => x.name === name);
    expect(e && typeof e.value === "string", `arg ${arg} refers to env ${name}, which has no literal value`);
    return e.value;
  });
}
function flag(container, name) {
  const args = (container.args || []).map((a) => resolveArg(a, container));
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? undefined : a.slice(name.length + 3);
}

function checkServing(dir, objs) {
  const dep = find(objs, "Deployment", "llama-chat");
  const pod = dep.spec.template;
  const c = pod.spec.containers.find((x) => x.name === "server");
  const grpcPort = (c.ports || []).find((p) => p.name === "grpc");
  const metricsPort = (c.ports || []).find((p) => p.name === "metrics");
  check(`${dir}: server listens where its ports say`, () => {
    expect(grpcPort && metricsPort, "container ports grpc and metrics missing");
    expect(Number(flag(c, "port")) === grpcPort.containerPort, `--port != containerPort ${grpcPort.containerPort}`);
    expect(Number(flag(c, "metrics_port")) === metricsPort.containerPort, "--metrics_port != metrics port");
  });
  check(`${dir}: startup, readiness and liveness probes use grpc.health.v1 on the serving port, service ""`, () => {
    for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      const p = c[kind];
      expect(p && p.grpc, `${kind} is not a grpc probe`);
      expect(p.grpc.port === grpcPort.containerPort, `${kind} port ${p.grpc.port} != ${grpcPort.containerPort}`);
      expect(p.grpc.service === "", `${kind} service is ${JSON.stringify(p.grpc.service)}, server registers ""`);
    }
  });
  const drain = Number(flag(c, "drain_timeout"));
  const preStop = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec &&
    c.lifecycle.preStop.exec.command[0] === "sleep" ? Number(c.lifecycle.preStop.exec.command[1]) : NaN;
  const grace = pod.spec.terminationGracePeriodSeconds;
  const maxStream = Number((pod.metadata.annotations || {})["llama-chat/max-stream-seconds"]);
  check(`${dir}: drain timing (preStop ${preStop}s, drain ${drain}s, longest stream ${maxStream}s, grace ${grace}s)`,
    () => {
      expect(preStop > 0 && drain > 0 && maxStream > 0, "preStop sleep, --drain_timeout or max-stream annotation unset");
      expect(drain >= maxStream, "--drain_timeout shorter than the longest stream: drains would cut streams");
      expect(grace >= preStop + drain + maxStream + EXIT_SLACK_S,
        `terminationGracePeriodSeconds ${grace} < preStop ${preStop} + drain ${drain} + longest stream ${maxStream} + ${EXIT_SLACK_S}`);
      const live = c.livenessProbe.periodSeconds * c.livenessProbe.failureThreshold;
      expect(live > drain, `liveness window ${live}s <= drain ${drain}s: a draining pod (NOT_SERVING) gets restarted`);
      const startup = c.startupProbe.periodSeconds * c.startupProbe.failureThreshold;
      expect(startup >= 60, `startup probe allows only ${startup}s for model load`);
    });
  check(`${dir}: model from a read-only PersistentVolumeClaim`, () => {
    const vol = pod.spec.volumes.find((v) => v.persistentVolumeClaim);
    expect(vol, "no PVC volume");
    expect(find(objs, "PersistentVolumeClaim", vol.persistentVolumeClaim.claimName), "PVC not in the render");
    expect(vol.persistentVolumeClaim.readOnly === true, "PVC volume not readOnly");
    const m = c.volumeMounts.find((x) => x.name === vol.name);
    expect(m && m.readOnly === true, "model mount not readOnly");
    expect(flag(c, "model_dir").startsWith(m.mountPath + "/"), "--model_dir is not on the model volume");
    const rm = flag(c, "safety_model_dir");
    expect(!rm || rm.startsWith(m.mountPath + "/"), "--safety_model_dir is not on the model volume");
  });
  check(`${dir}: non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp, /tmp emptyDir`, () => {
    const ps = pod.spec.securityContext;
    const cs = c.securityContext;
    expect(ps.runAsNonRoot === true && ps.runAsUser > 0, "pod not runAsNonRoot with a non-zero uid");
    expect(ps.seccompProfile && ps.seccompProfile.type === "RuntimeDefault", "seccomp not RuntimeDefault");
    expect(cs.readOnlyRootFilesystem === true, "root filesystem writable");
    expect(cs.allowPrivilegeEscalation === false, "privilege escalation allowed");
    expect(JSON.stringify(cs.capabilities.drop) === '["ALL"]', "capabilities not dropped");
    const tmp = c.volumeMounts.find((x) => x.mountPath === "/tmp");
    expect(tmp && pod.spec.volumes.find((v) => v.name === tmp.name && v.emptyDir), "/tmp is not an emptyDir");
    expect(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, "resources unset");
  });
  check(`${dir}: Services, PodDisruptionBudget and PodMonitor select the server pods`, () => {
    const labels = pod.metadata.labels;
    const headless = find(objs, "Service", "llama-chat-headless");
    const svc = find(objs, "Service", "llama-chat");
    expect(headless && headless.spec.clusterIP === "None", "no headless Service");
    expect(svc && (svc.spec.type || "ClusterIP") === "ClusterIP" && svc.spec.clusterIP !== "None", "no ClusterIP Service");
    for (const s of [headless, svc]) {
      expect(selects(s.spec.selector, labels), `Service ${s.metadata.name} does not select the pods`);
      for (const p of s.spec.ports) {
        expect(p.targetPort === "grpc" || p.targetPort === grpcPort.containerPort, `${s.metadata.name} targets ${p.targetPort}`);
      }
    }
    expect(selects(find(objs, "PodDisruptionBudget").spec.selector.matchLabels, labels), "PDB does not select the pods");
    const pm = find(objs, "PodMonitor");
    expect(selects(pm.spec.selector.matchLabels, labels), "PodMonitor does not select the pods");
    expect(pm.spec.podMetricsEndpoints.every((e) => e.port === "metrics" && e.path === "/metrics"),
      "PodMonitor does not scrape port metrics at /metrics");
  });
  check(`${dir}: HPA scales the Deployment on the metric the prometheus-adapter rule serves`, () => {
    const hpa = find(objs, "HorizontalPodAutoscaler");
    expect(hpa.apiVersion === "autoscaling/v2", "HPA is not autoscaling/v2");
    expect(hpa.spec.scaleTargetRef.kind === "Deployment" && hpa.spec.scaleTargetRef.name === dep.metadata.name,
      "HPA does not target the Deployment");
    const m = hpa.spec.metrics.find((x) => x.type === "Pods");
    expect(m && m.pods.metric.name === "llama_chat_num_requests_waiting", "HPA does not use per-pod waiting requests");
    const adapter = render("deploy/k8s/prometheus-adapter");
    const rules = yaml.load(find(adapter, "ConfigMap").data["config.yaml"]).rules;
    const rule = rules.find((r) => r.name.as === m.pods.metric.name);
    expect(rule, `no prometheus-adapter rule exposes ${m.pods.metric.name}`);
    expect(rule.seriesQuery.startsWith(m.pods.metric.name + "{"), "adapter rule reads another series");
    expect(rule.resources.overrides.pod.resource === "pod" && rule.resources.overrides.namespace.resource === "namespace",
      "adapter rule does not map namespace/pod labels onto resources");
  });
  return { dep, c };
}

function main() {
  const rendered = {};
  for (const dir of KUSTOMIZATIONS) {
    check(`${dir}: kubectl kustomize renders`, () => {
      rendered[dir] = render(dir);
      expect(rendered[dir].length > 0, "empty render");
    });
  }
  for (const dir of KUSTOMIZATIONS) {
    for (const o of rendered[dir] || []) {
      check(`${dir}: ${o.apiVersion} ${o.kind}/${o.metadata.name} validates against its schema`, () => {
        const Model = modelFor(o.apiVersion, o.kind);
        new Model(o).validate();
      });
    }
  }
  const serving = {};
  for (const dir of SERVING) {
    if (rendered[dir]) serving[dir] = checkServing(dir, rendered[dir]);
  }
  check("overlays/gpu: one nvidia.com/gpu per pod, CUDA backend", () => {
    const { c } = serving["deploy/k8s/overlays/gpu"];
    expect(String(c.resources.requests["nvidia.com/gpu"]) === "1" && String(c.resources.limits["nvidia.com/gpu"]) === "1",
      "GPU request/limit is not 1");
    expect(flag(c, "backend") === "cuda", "backend is not cuda");
  });
  check("overlays/cpu: no GPU, CPU backend, the default model", () => {
    const { dep, c } = serving["deploy/k8s/overlays/cpu"];
    expect(!JSON.stringify(dep).includes("nvidia.com/gpu"), "GPU still requested or tolerated");
    expect(flag(c, "backend") === "cpu", "backend is not cpu");
    expect(flag(c, "model_dir").endsWith("/stories15M"), "model is not stories15M");
    expect(flag(c, "safety_model_dir").endsWith("/stories15M-safety-rm"), "not the default safety reward model");
  });
  check("base PrometheusRule carries exactly the groups of deploy/prometheus/alerts.yaml", () => {
    const rule = find(rendered["deploy/k8s/base"], "PrometheusRule");
    const file = yaml.load(fs.readFileSync(path.join(ROOT, "deploy/prometheus/alerts.yaml"), "utf8"));
    expect(canonical(rule.spec.groups) === canonical(file.groups),
      "out of date: run deploy/prometheus/gen-prometheusrule.sh");
  });
  check("Grafana dashboard: every llama_chat selector filters on $namespace and $pod; variables exist", () => {
    const d = JSON.parse(fs.readFileSync(path.join(ROOT, "deploy/grafana/llama-chat-dashboard.json"), "utf8"));
    const vars = d.templating.list.map((v) => v.name);
    for (const v of ["datasource", "namespace", "pod"]) expect(vars.includes(v), `variable ${v} missing`);
    let n = 0;
    for (const p of d.panels.filter((x) => x.type !== "row")) {
      expect(p.targets && p.targets.length > 0, `panel ${p.title} has no query`);
      expect(p.datasource && p.datasource.uid === "${datasource}", `panel ${p.title} not on $datasource`);
      for (const t of p.targets) {
        const sels = t.expr.match(/llama_chat_[a-z0-9_]+(\{[^}]*\})?/g) || [];
        expect(sels.length > 0, `${p.title}: ${t.expr} reads no llama_chat metric`);
        for (const s of sels) {
          expect(s.includes('namespace="$namespace"') && s.includes('pod=~"$pod"'), `${p.title}: ${s} not filtered`);
        }
        n++;
      }
    }
    expect(n >= 20, `only ${n} queries`);
  });
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
