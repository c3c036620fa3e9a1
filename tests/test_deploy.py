"""deploy/: the Kubernetes manifests validate offline against the bundled API schemas and agree
with what `voicepipe serve` does; the Dockerfile refers to files and commands that exist."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml
from serve_helpers import ROOT

from voicepipe.cli import build_parser
from voicepipe.serve.settings import DEFAULT_DRAIN_TIMEOUT_S, DEFAULT_MAX_SESSIONS

kubernetes_validate = pytest.importorskip("kubernetes_validate")

DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def _resources() -> dict[str, dict]:
    found = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            found[doc["kind"]] = doc
    return found


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_manifest_validates_strictly_offline(path):
    version = kubernetes_validate.latest_version()  # the schemas ship in the package
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_would_catch_a_misspelt_field():
    deployment = _resources()["Deployment"]
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 60
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def _container() -> dict:
    return _resources()["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def test_the_deployment_probes_drains_and_takes_secrets_from_a_secret():
    spec = _resources()["Deployment"]["spec"]["template"]["spec"]
    container = _container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # the pod is killed only after the preStop wait and the whole drain
    assert spec["terminationGracePeriodSeconds"] > float(pre_stop[1]) + DEFAULT_DRAIN_TIMEOUT_S
    secrets = {env["name"]: env["valueFrom"]["secretKeyRef"] for env in container["env"] if "valueFrom" in env}
    assert set(secrets) == {"VOICEPIPE_SERVE_TOKEN", "VOICEPIPE_METRICS_TOKEN", "AZURE_VOICELIVE_API_KEY"}
    assert all("value" not in env for env in container["env"] if env["name"] in secrets)


def test_metrics_are_behind_a_token_from_the_secret_and_the_probes_are_not():
    container = _container()
    parsed = build_parser().parse_args(container["args"][1:])
    (named,) = [o.split("=", 1)[1] for o in parsed.set if o.startswith("serve.metrics_token_env=")]
    secrets = {env["name"]: env["valueFrom"]["secretKeyRef"] for env in container["env"] if "valueFrom" in env}
    assert secrets[named]["name"] == "voicepipe" and secrets[named]["key"] != secrets["VOICEPIPE_SERVE_TOKEN"]["key"]
    # the probes need no token: /healthz and /readyz stay open
    assert {container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]} == {
        "/readyz", "/healthz"}
    assert "httpHeaders" not in container["readinessProbe"]["httpGet"]
    # and the scrape job's example sends it
    text = (DEPLOY / "kubernetes" / "deployment.yaml").read_text()
    assert "authorization: {type: Bearer, credentials_file:" in text and secrets[named]["key"] in text


def test_the_deployment_runs_a_command_voicepipe_accepts():
    args = _container()["args"]
    assert args[0] == "voicepipe"
    parsed = build_parser().parse_args(args[1:])
    assert parsed.command == "serve" and parsed.host == "0.0.0.0"
    assert all((ROOT / profile).is_file() for profile in parsed.profiles)
    assert _container()["ports"][0]["containerPort"] == parsed.port


def test_the_service_and_the_autoscaler_point_at_the_deployment_and_its_metric():
    resources = _resources()
    labels = resources["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert resources["Service"]["spec"]["selector"].items() <= labels.items()
    hpa = resources["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == resources["Deployment"]["metadata"]["name"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    source = (ROOT / "voicepipe" / "serve" / "metrics.py").read_text()
    assert f'"{name}"' in source  # the series /metrics exposes
    workers = int(_container()["args"][_container()["args"].index("--workers") + 1])
    assert float(metric["pods"]["target"]["averageValue"]) < workers * DEFAULT_MAX_SESSIONS


# -- the container file -------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_the_dockerfile_copies_what_exists_and_installs_the_serve_extra():
    instructions = _instructions()
    bases = [args for op, args in instructions if op == "FROM"]
    assert bases and all(re.match(r"python:3\.\d+-slim\b", base) for base in bases)
    for op, args in instructions:
        if op == "COPY" and not args.startswith("--from"):
            *sources, _target = shlex.split(args)
            for source in sources:
                assert (ROOT / source).exists(), source
    serve_extra = re.search(r'(?m)^serve = \[(.*)\]$', (ROOT / "pyproject.toml").read_text()).group(1)
    installs = " ".join(args for op, args in instructions if op == "RUN")
    assert '".[serve]"' in installs and '"gunicorn' in serve_extra and '"prometheus-client' in serve_extra


def test_the_dockerfile_runs_as_a_user_serves_its_port_and_checks_health():
    instructions = dict(_instructions())  # the last of each kind: the final stage
    assert instructions["USER"] not in ("root", "0")
    command = json.loads(instructions["CMD"])
    assert command[0] == "voicepipe"
    parsed = build_parser().parse_args(command[1:])
    assert parsed.command == "serve" and parsed.host == "0.0.0.0"
    assert all((ROOT / profile).is_file() for profile in parsed.profiles)
    assert instructions["EXPOSE"] == str(parsed.port)
    assert f"127.0.0.1:{parsed.port}/healthz" in instructions["HEALTHCHECK"]
