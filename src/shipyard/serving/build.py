"""Deployment files for a served model: a Dockerfile and Kubernetes manifests.

``shipyard build churn@champion`` writes, into ``build/churn/`` (or ``--output``)::

    Dockerfile             python:3.X-slim, the Shipyard wheel + pinned model libraries,
                           a non-root user, `shipyard serve MODEL@ALIAS --host 0.0.0.0`
    requirements.txt       the model's libraries at the versions that registered it
    wheels/shipyard-*.whl  this Shipyard, as a wheel
    k8s/configmap.yaml     the store URIs the service reads its registry from
    k8s/deployment.yaml    the Deployment: liveness /healthz, readiness /readyz (after
                           load and warm-up), startup probe, resources, non-root
    k8s/service.yaml       a ClusterIP Service on port 80 -> 8000
    k8s/hpa.yaml           an autoscaling/v2 HorizontalPodAutoscaler on CPU

The container serves the alias, not a frozen copy: it reads the registry (metadata
store + artifact store, from the ConfigMap) and hot-swaps when the alias moves. The
embedded SQLite store is a file on one machine; a cluster needs the scale backends
(``postgresql://`` and ``s3://``), which the ConfigMap names. The API key, if any, goes
in a Secret (``shipyard-serving``, key ``api-key``), never in the manifests.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard._version import __version__
from shipyard.core.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.models.records import ModelVersion

__all__ = ["BuildReport", "build_deployment_files", "install_command", "pinned_requirements"]

CONTAINER_PORT = 8000
# The distributions each model type needs at serving time (beyond Shipyard's own).
_LIBRARIES = {
    "sklearn": ("scikit-learn", "skops", "pandas"),
    "lightgbm": ("lightgbm", "pandas"),
    "xgboost": ("xgboost", "xgboost-cpu", "pandas"),
    "onnx": ("onnxruntime", "onnx"),
    "python": ("pandas", "cloudpickle"),
}
_SERVING = ("uvicorn", "httptools", "uvloop")
_K8S_NAME = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class BuildReport:
    """The files written and the image's install command."""

    folder: Path
    files: tuple[Path, ...]
    install: str


def _installed(distribution: str) -> str | None:
    try:
        return importlib_metadata.version(distribution)
    except importlib_metadata.PackageNotFoundError:
        return None


def pinned_requirements(version: ModelVersion) -> list[str]:
    """``name==version`` of the libraries the model and the server need, as installed here."""
    wanted = [*_LIBRARIES.get(version.model_type, ()), *_SERVING]
    pins = []
    for name in wanted:
        installed = _installed(name)
        if installed is not None:
            pins.append(f"{name}=={installed}")
    return pins


def install_command(wheel_name: str) -> str:
    """The Dockerfile's install step (run as is by the tests in a fresh venv)."""
    return (
        "python -m pip install --no-cache-dir --disable-pip-version-check "
        f"-r requirements.txt wheels/{wheel_name}"
    )


def _k8s_name(name: str) -> str:
    text = _K8S_NAME.sub("-", name.lower()).strip("-")[:50] or "model"
    return f"shipyard-{text}"


def _find_wheel(wheel: Path | None, folder: Path) -> Path:
    """The Shipyard wheel for the image: given, or built from this source checkout."""
    if wheel is not None:
        if not wheel.is_file() or wheel.suffix != ".whl":
            raise NotFoundError(f"Wheel {wheel} does not exist.", hint="Give a .whl file.")
        return wheel
    source = Path(__file__).resolve().parents[3]
    if not (source / "pyproject.toml").is_file():
        raise ConfigError(
            "Shipyard is not installed from a source checkout here, so no wheel can be built.",
            hint="Pass --wheel PATH to the shipyard wheel to put in the image.",
        )
    folder.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(  # noqa: S603 - fixed arguments, our own interpreter
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(folder),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    built = sorted(folder.glob(f"shipyard-{__version__}-*.whl"))
    if completed.returncode != 0 or not built:
        raise ConfigError(
            f"Building the Shipyard wheel failed: {completed.stderr.strip()[-400:]}",
            hint="Pass --wheel PATH to a wheel built beforehand.",
        )
    return built[-1]


def build_deployment_files(
    version: ModelVersion,
    reference: str,
    output: Path,
    config: Config,
    *,
    wheel: Path | None = None,
    image: str | None = None,
    replicas: int = 2,
    max_replicas: int = 10,
) -> BuildReport:
    """Write the Dockerfile, requirements, wheel and manifests; return what was written."""
    import shutil

    if not 1 <= replicas <= max_replicas <= 1000:
        raise ConfigError(
            f"replicas {replicas} / max {max_replicas}: need 1 <= replicas <= max <= 1000."
        )
    name = _k8s_name(version.name)
    image = image or f"{name}:v{version.number}"
    output.mkdir(parents=True, exist_ok=True)
    wheels = output / "wheels"
    source_wheel = _find_wheel(wheel, wheels)
    wheels.mkdir(exist_ok=True)
    target_wheel = wheels / source_wheel.name
    if source_wheel.resolve() != target_wheel.resolve():
        shutil.copy2(source_wheel, target_wheel)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    requirements = pinned_requirements(version)
    files: dict[str, str] = {
        "requirements.txt": "\n".join(requirements) + "\n",
        "Dockerfile": _dockerfile(python, target_wheel.name, reference),
        ".dockerignore": "*\n!requirements.txt\n!wheels/\n",
        "k8s/configmap.yaml": _yaml(_configmap(name, config)),
        "k8s/deployment.yaml": _yaml(_deployment(name, image, replicas, version)),
        "k8s/service.yaml": _yaml(_service(name)),
        "k8s/hpa.yaml": _yaml(_hpa(name, replicas, max_replicas)),
    }
    written = []
    for relative, text in files.items():
        path = output / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    written.append(target_wheel)
    return BuildReport(output, tuple(written), install_command(target_wheel.name))


def _dockerfile(python: str, wheel_name: str, reference: str) -> str:
    return f"""# Built by `shipyard build {reference}` (Shipyard {__version__}).
FROM python:{python}-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt ./
COPY wheels/ ./wheels/
RUN {install_command(wheel_name)}
RUN useradd --create-home --uid 10001 shipyard && mkdir -p /app/project \\
    && chown shipyard /app/project
USER 10001
WORKDIR /app/project
EXPOSE {CONTAINER_PORT}
# The store URIs come from the environment (k8s/configmap.yaml); the API key, if any,
# from the SHIPYARD_SERVING_API_KEY variable (a Secret).
CMD ["shipyard", "serve", "{reference}", "--host", "0.0.0.0", "--port", "{CONTAINER_PORT}"]
"""


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "shipyard"}


def _configmap(name: str, config: Config) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-config", "labels": _labels(name)},
        "data": {
            # The embedded defaults point at files of this machine: replace them with the
            # scale backends (postgresql://..., s3://...) the cluster can reach.
            "SHIPYARD_STORE_METADATA": config.store.metadata,
            "SHIPYARD_STORE_ARTIFACTS": config.store.artifacts,
            "SHIPYARD_SERVING_POLL_SECONDS": config.get("serving.poll_seconds", "2") or "2",
        },
    }


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _deployment(name: str, image: str, replicas: int, version: ModelVersion) -> dict[str, Any]:
    labels = _labels(name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"shipyard.dev/model-version": version.reference},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [
                        {
                            "name": "model",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [
                                {"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}
                            ],
                            "envFrom": [{"configMapRef": {"name": f"{name}-config"}}],
                            "env": [
                                {
                                    "name": "SHIPYARD_SERVING_API_KEY",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": "shipyard-serving",
                                            "key": "api-key",
                                            "optional": True,
                                        }
                                    },
                                }
                            ],
                            "startupProbe": _probe("/healthz", 2, 60),
                            "livenessProbe": _probe("/healthz", 10, 3),
                            "readinessProbe": _probe("/readyz", 5, 2),
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "512Mi"},
                                "limits": {"cpu": "2", "memory": "2Gi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def _service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _hpa(name: str, replicas: int, max_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }


def _yaml(document: dict[str, Any]) -> str:
    """YAML without a YAML library: JSON is YAML 1.2, and kubectl reads it as such."""
    return json.dumps(document, indent=2) + "\n"
