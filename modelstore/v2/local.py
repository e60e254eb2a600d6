"""Serving one v2 deployment YAML here, as ``modelstore serve -f`` and ``score -f`` do.

:func:`local_deployment` turns the YAML into what a local server needs: the app root laid out
as the cloud lays it out (:mod:`modelstore.v2.layout`), the environment mapping the scoring
script sees, the serving settings resolved once from that mapping, the worker count, and the
lines to tell the user about what is not emulated (the ``environment:``, the cloud-only keys,
request settings that disagree with ``WORKER_COUNT``). Every refusal happens before anything
is laid out, or removes what was (the app root never outlives a refused start or Ctrl-C).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from modelstore.errors import InvalidArgumentError, SpecError, UsageError
from modelstore.v2.deployment_spec import EnvironmentSpec, OnlineDeploymentSpec
from modelstore.v2.layout import V2Deployment, temporary_v2_deployment
from modelstore.v2.load import load_deployment_spec
from modelstore.v2.yamlfile import read_yaml_mapping

if TYPE_CHECKING:
    from modelstore.registry import Registry
    from modelstore.serving.settings import ServingSettings

WORKER_COUNT_ENV = "WORKER_COUNT"
PROVIDED_HERE = frozenset({"azureml-inference-server-http", "azureml-defaults"})
"""Packages of the inference image that modelstore itself stands in for."""
_NOT_PACKAGES = frozenset({"pip", "python"})


class EnvironmentMismatchError(UsageError):
    """``--check-env``: packages the deployment's conda file lists are missing here or at
    another version. ``mismatches`` holds one text per package."""

    def __init__(self, message: str, *, file: str, mismatches: list[str], **advice: Any) -> None:
        super().__init__(message, **advice)
        self.file = file
        self.mismatches = mismatches


@dataclass(frozen=True)
class LocalDeployment:
    """One v2 deployment ready to serve in this process."""

    deployment: V2Deployment
    spec: OnlineDeploymentSpec
    env: dict[str, str]
    """The environment the server runs in: this process's, then the deployment's on top."""
    settings: ServingSettings
    workers: int
    notes: list[str] = field(default_factory=list)
    """``Warning: ...`` and ``Info: ...`` lines for the user, one thing each."""


def load_one_deployment(files: Sequence[str | os.PathLike[str]]) -> OnlineDeploymentSpec:
    """The one deployment YAML in ``files``; an endpoint, or several files, are the endpoint
    emulation, which is not there yet: refused in one line."""
    if not files:
        raise InvalidArgumentError("give a deployment YAML with -f, e.g. -f blue-deployment.yml")
    if len(files) > 1:
        names = ", ".join(os.fspath(f) for f in files)
        raise InvalidArgumentError(
            f"several files ({names}) make an endpoint, which only 'modelstore serve' (or "
            "modelstore.v2.endpoint.local_endpoint) runs; give one deployment YAML with -f"
        )
    path = os.fspath(files[0])
    if is_endpoint_file(path):
        raise InvalidArgumentError(
            f"{path} is an online endpoint YAML, which only 'modelstore serve' (or "
            "modelstore.v2.endpoint.local_endpoint) runs with its deployments; give one "
            "deployment YAML with -f"
        )
    return load_deployment_spec(path)


def is_endpoint_file(path: str) -> bool:
    """An endpoint YAML: its ``$schema`` says so, or it has endpoint keys and no deployment
    ones. A file that cannot be read is left to the deployment loader to report."""
    try:
        data = read_yaml_mapping(Path(path), path)
    except SpecError:
        return False
    schema = str(data.get("$schema", "")).lower()
    if "onlineendpoint" in schema:
        return True
    if "onlinedeployment" in schema:
        return False
    endpoint_keys = {"auth_mode", "traffic", "mirror_traffic"}
    deployment_keys = {"endpoint_name", "model", "code_configuration", "instance_type"}
    return bool(endpoint_keys & set(data)) and not deployment_keys & set(data)


# --- the environment: not emulated, compared ---------------------------------------------------


def environment_mismatches(environment: EnvironmentSpec) -> tuple[str, list[str]]:
    """The conda file's name and the packages it lists that are missing here or at another
    version (``name==2.0 (here 1.5)``, ``name (not installed)``). Python is compared with this
    interpreter; ``pip`` and the inference server (which modelstore plays) are skipped."""
    conda = environment.conda_file
    if conda is None:
        return "", []
    if isinstance(conda, Path):
        shown = os.fspath(conda)
        try:
            with open(conda, encoding="utf-8") as handle:
                content = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError) as exc:
            return shown, [f"the conda file cannot be read ({exc})"]
    else:
        shown, content = "the inline conda file", conda
    requirements: list[tuple[str, bool]] = []  # (text, is_conda)
    dependencies = content.get("dependencies", []) if isinstance(content, dict) else []
    for item in dependencies or []:
        if isinstance(item, str):
            requirements.append((item, True))
        elif isinstance(item, dict):
            requirements.extend((str(pip), False) for pip in item.get("pip", []) or [])
    mismatches = [
        problem
        for text, is_conda in requirements
        if (problem := _mismatch(text, is_conda)) is not None
    ]
    return shown, mismatches


_REQUIREMENT = re.compile(
    r"^\s*(?:[\w.-]+::)?(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?P<spec>[^;#]*)"
)


def _mismatch(text: str, is_conda: bool) -> str | None:
    """One requirement checked against what is installed here; None when it is satisfied or
    cannot be checked (a URL, an option such as ``-r file``)."""
    match = _REQUIREMENT.match(text)
    if text.strip().startswith(("-", "git+", "http:", "https:", "file:")) or match is None:
        return None
    name, spec = match.group("name"), match.group("spec").strip().replace(" ", "")
    canonical = re.sub(r"[-_.]+", "-", name).lower()
    if canonical in PROVIDED_HERE or canonical == "pip":
        return None
    if is_conda and spec and spec[0] not in "=<>!~":
        spec = f"={spec}"  # conda's "numpy 1.26" means numpy=1.26
    if canonical == "python":
        here = ".".join(str(part) for part in sys.version_info[:3])
    else:
        try:
            here = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return f"{name} (not installed)"
    if spec and not _satisfies(here, spec, conda=is_conda):
        return f"{name}{spec} (here {here})"
    return None


def _satisfies(version: str, spec: str, *, conda: bool) -> bool:
    """Whether ``version`` meets ``spec`` (pip's ``==1.2``, ``>=1,<2``; conda's ``=1.2`` meaning
    any 1.2.x). Unparseable specs count as met: this check must never refuse a valid file."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion

    if conda and spec.startswith("=") and not spec.startswith("=="):
        prefix = spec[1:].rstrip("*").rstrip(".")
        return version == prefix or version.startswith(prefix + ".")
    try:
        return SpecifierSet(spec).contains(version, prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return True


# --- notes about what is not emulated ------------------------------------------------------------


def startup_notes(
    spec: OnlineDeploymentSpec, workers: int, *, check_env: bool = False
) -> list[str]:
    """What the user should know before the server starts, one line each.

    With ``check_env``, packages of the conda file that are missing or at another version are
    EnvironmentMismatchError instead of a warning.
    """
    notes: list[str] = []
    environment = spec.environment
    if environment is not None:
        where = f"{sys.executable} (Python {sys.version.split()[0]})"
        notes.append(
            f"Warning: environment: is not emulated; the scoring script runs in this Python, "
            f"{where}"
        )
        if isinstance(environment, EnvironmentSpec):
            shown, mismatches = environment_mismatches(environment)
            if mismatches:
                message = (
                    f"packages of {shown} missing or at another version here: "
                    f"{', '.join(mismatches)}"
                )
                if check_env:
                    raise EnvironmentMismatchError(
                        message,
                        hint="install them in this Python, or pass check_env=False "
                        "(nothing was started)",
                        remedy="check_env",
                        file=shown,
                        mismatches=mismatches,
                    )
                notes.append(f"Warning: {message}")
    ignored = spec.ignored_keys
    if ignored:
        notes.append(f"Info: Azure-only keys accepted and ignored here: {', '.join(ignored)}")
    concurrency = spec.request_settings.max_concurrent_requests_per_instance
    if concurrency != workers:
        notes.append(
            "Warning: request_settings.max_concurrent_requests_per_instance is "
            f"{concurrency} but the server runs {workers} worker{'s' if workers > 1 else ''} "
            f"(WORKER_COUNT): in Azure, requests beyond the workers queue or are refused "
            "(429); set both to the same number"
        )
    return notes


def worker_count(spec: OnlineDeploymentSpec, given: int | None, default: int = 1) -> int:
    """Workers as azmlinfsrv in the container counts them: an explicit ``given`` count wins,
    then the YAML's ``WORKER_COUNT``, then ``default``."""
    if given is not None:
        return given
    text = spec.environment_variables.get(WORKER_COUNT_ENV, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise InvalidArgumentError(
            f"environment_variables.WORKER_COUNT={text!r} is not a whole number of worker "
            "processes (1 or more); fix the deployment YAML"
        )
    return int(text)


# --- the whole start ---------------------------------------------------------------------------


@contextlib.contextmanager
def local_deployment(
    files: Sequence[str | os.PathLike[str]],
    registry: Callable[[], Registry] | None = None,
    *,
    check_env: bool = False,
    workers: int | None = None,
    environ: Mapping[str, str] | None = None,
    parent: str | os.PathLike[str] | None = None,
    prefix: str = "modelstore-v2-",
    **overrides: Any,
) -> Iterator[LocalDeployment]:
    """Load, check and lay out the deployment YAML in ``files``; yield what a server needs.

    ``registry`` opens the registry, called only for an ``azureml:`` model. ``workers`` is an
    explicit worker count (else the YAML's ``WORKER_COUNT``, else 1). ``overrides`` are the
    serving settings given as options (``cors_origins``, ``numpy_json``...), laid over the
    settings resolved from ``environ`` (default: this process's) with the deployment's
    variables on top. Refusals (a bad file, ``--check-env``, an unknown model, a script that
    does not compile) come before the app root exists or remove it; it is removed on exit.
    """
    from modelstore.serving.loader import check_entry_script
    from modelstore.serving.settings import ServingSettings

    spec = load_one_deployment(files)
    if spec.code_configuration is None:
        raise InvalidArgumentError(
            f"{os.fspath(files[0])} has no code_configuration, so there is no scoring script "
            "to serve; add code_configuration with code and scoring_script"
        )
    count = worker_count(spec, workers)
    notes = startup_notes(spec, count, check_env=check_env)
    check_entry_script(spec.code_configuration.script_path)
    needs_registry = spec.model is not None and not hasattr(spec.model, "path")
    opened = registry() if needs_registry and registry is not None else None
    with temporary_v2_deployment(spec, opened, parent=parent, prefix=prefix) as deployment:
        base = os.environ if environ is None else environ
        env = {**base, **deployment.env}
        flags = {
            **overrides,
            "workers": count,
            "request_timeout_ms": spec.request_settings.request_timeout_ms,
            "max_concurrent_requests_per_instance": (
                spec.request_settings.max_concurrent_requests_per_instance
            ),
        }
        settings = ServingSettings.resolve(base, deployment.working_dir, flags, deployment.env)
        yield LocalDeployment(
            deployment=deployment,
            spec=spec,
            env=env,
            settings=settings,
            workers=count,
            notes=notes,
        )


@contextlib.contextmanager
def applied(local: LocalDeployment) -> Iterator[None]:
    """Give this process the deployment's environment and working directory (the container's
    start script changes into ``AML_APP_ROOT``), for a server whose workers inherit them;
    both are restored on exit."""
    before_env = dict(os.environ)
    before_cwd = os.getcwd()
    os.environ.update(local.deployment.env)
    os.chdir(local.deployment.working_dir)
    try:
        yield
    finally:
        os.chdir(before_cwd)
        os.environ.clear()
        os.environ.update(before_env)
