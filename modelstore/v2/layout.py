"""A v2 online deployment laid out as Azure ML lays it out in its container, on the local disk.

The app root plays ``/var/azureml-app``: the model goes to ``azureml-models/<name>/<version>/``
(through :func:`modelstore.deployment.temporary`, the same layout, links and clean-up as v1
deployments), the code folder appears under its own name beside it, and the environment is the
one a managed online deployment gives its scoring script (``AML_APP_ROOT`` at the code folder,
``AZUREML_ENTRY_SCRIPT`` as written, ``AZUREML_MODEL_DIR`` at the version folder), with the
YAML's ``environment_variables`` on top. docs/azureml-v2.md records those values and their
sources.

A registered model (``azureml:NAME:VERSION``, ``azureml:NAME@latest``, ``azureml:NAME@ALIAS``) is
resolved in the local registry through its REF (``NAME:VERSION``, ``NAME@latest``,
``NAME@ALIAS``), so what REFs can name a v2 file can name too: an Azure label is an alias here.
An inline ``path:`` model is anonymous, as in Azure: it gets a 64-hex-character name derived
from its content and version 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from modelstore.deployment import DeployedModel, ModelSource, temporary
from modelstore.errors import AliasNotFoundError, DeploymentRefusedError, ModelNotFoundError
from modelstore.layout import APP_ROOT_ENV, MODEL_DIR_ENV, MODELS_DIRNAME, models_root
from modelstore.refs import LATEST, parse_ref
from modelstore.v2.common import AssetReference
from modelstore.v2.deployment_spec import OnlineDeploymentSpec
from modelstore.v2.model_spec import InlineModelSpec

if TYPE_CHECKING:
    from modelstore.registry import Registry

ENTRY_SCRIPT_ENV = "AZUREML_ENTRY_SCRIPT"
V2_PREFIX = "modelstore-v2-"
"""Prefix of the temporary app root of a v2 deployment."""
ANONYMOUS_VERSION = 1
"""The version Azure gives an anonymous (inline) model."""
_CHUNK = 1024 * 1024


class V2Deployment(BaseModel):
    """A v2 deployment laid out locally and the environment its scoring script gets."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="the deployment's name (blue, green...)")
    app_root: Path = Field(description="the folder playing /var/azureml-app")
    code_dir: Path | None = Field(description="the code folder inside the app root, if any")
    entry_script: str | None = Field(description="AZUREML_ENTRY_SCRIPT: the scoring_script")
    model: DeployedModel | None = Field(description="where the model landed, if there is one")
    working_dir: Path = Field(description="where the container's start script cds to")
    env: dict[str, str] = Field(description="the container's variables, then the YAML's")

    @property
    def script_path(self) -> Path | None:
        """The scoring script inside the laid-out app root."""
        if self.code_dir is None or self.entry_script is None:
            return None
        return self.code_dir / self.entry_script


def anonymous_model_name(path: str | os.PathLike[str]) -> str:
    """The name of an inline model: 64 hex characters that change when its content changes.

    Azure names an anonymous model after a sha256 of its content hash; this is a sha256 of the
    relative names and bytes of its files. Same length and same stability (the same bytes give
    the same name), not the same digits as Azure's.
    """
    digest = hashlib.sha256()
    root = Path(path)
    files = [root] if not root.is_dir() else sorted(p for p in root.rglob("*") if p.is_file())
    for file in files:
        relative = file.name if file == root else file.relative_to(root).as_posix()
        digest.update(relative.encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def model_source(spec: OnlineDeploymentSpec, registry: Registry | None) -> ModelSource | None:
    """The model ``spec`` deploys, resolved now (nothing is written): None without ``model:``.

    ``registry`` is needed for an ``azureml:`` reference only.
    """
    model = spec.model
    if model is None:
        return None
    if isinstance(model, InlineModelSpec):
        return _inline_source(model)
    return _registered_source(model, registry)


def _inline_source(model: InlineModelSpec) -> ModelSource:
    version = ANONYMOUS_VERSION
    if model.version is not None:
        text = str(model.version).strip()
        if not text.isdigit() or int(text) < 1:
            raise DeploymentRefusedError(
                f"the inline model's version {model.version!r} is not a positive whole number; "
                "write an integer version or leave it out (nothing was written)"
            )
        version = int(text)
    name = model.name or anonymous_model_name(model.path)
    return ModelSource(name=name, version=version, entry_path=model.path, registered=False)


def _registered_source(reference: AssetReference, registry: Registry | None) -> ModelSource:
    # Through the registry's REF syntax, so every way a REF can name a version applies here.
    if reference.label is not None:
        text = f"{reference.name}@{reference.label}"
    else:
        text = f"{reference.name}:{LATEST if reference.version is None else reference.version}"
    if registry is None:
        raise ModelNotFoundError(
            f"model {reference.text} names a registered model, but no registry was given; "
            "pass the registry that holds it"
        )
    ref = parse_ref(text)
    try:
        found = registry.get(ref.target, ref.version)
    except AliasNotFoundError as exc:  # keeps its class, fields and advice for the front ends
        raise AliasNotFoundError(
            f"model {reference.text}: {exc.message} (registry {registry.home})",
            hint=exc.hint,
            remedy=exc.remedy,
            name=exc.name or reference.name,
            alias=exc.alias,
        ) from None
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(
            f"model {reference.text}: {exc} (registry {registry.home})"
        ) from None
    return ModelSource(  # path(): materialised into the home's cache from a shared store
        name=found.name,
        version=found.version,
        entry_path=registry.path(found.name, found.version),
        registered=True,
    )


def deployment_environment(
    spec: OnlineDeploymentSpec, app_root: Path, model: DeployedModel | None
) -> dict[str, str]:
    """The variables the scoring script sees: Azure's three, then ``environment_variables``.

    As in a managed deployment, ``AML_APP_ROOT`` is the code folder under its own name and
    ``AZUREML_ENTRY_SCRIPT`` the ``scoring_script`` as written; the YAML's values win, also
    over those three (azure-ai-ml merges them that way).
    """
    env: dict[str, str] = {}
    code = spec.code_configuration
    env[APP_ROOT_ENV] = os.fspath(app_root / code.code.name if code is not None else app_root)
    if code is not None:
        env[ENTRY_SCRIPT_ENV] = code.scoring_script
    if model is not None:
        env[MODEL_DIR_ENV] = os.fspath(models_root(app_root) / model.name / str(model.version))
    env.update(spec.environment_variables)
    return env


@contextlib.contextmanager
def temporary_v2_deployment(
    spec: OnlineDeploymentSpec,
    registry: Registry | None = None,
    *,
    copy: bool = False,
    parent: str | os.PathLike[str] | None = None,
    prefix: str = V2_PREFIX,
) -> Iterator[V2Deployment]:
    """Lay ``spec`` out in a new temporary app root, yield it, and remove it all on exit.

    The model is resolved before any folder is made (an unknown ``azureml:`` model is refused
    with nothing written). The app root is removed whole on exit, also on an error or Ctrl-C, by
    the process that entered only (see :func:`modelstore.deployment.temporary`). The code
    folder is linked (``copy=True``: copied); the environment is yielded, not applied.
    """
    source = model_source(spec, registry)
    code = spec.code_configuration
    if code is not None and code.code.name == MODELS_DIRNAME:
        raise DeploymentRefusedError(
            f"the code folder {code.code} is named {MODELS_DIRNAME!r}, where the model goes in "
            "the container; rename the code folder (nothing was written)"
        )
    store_dir = registry.home if registry is not None else None
    sources = [source] if source is not None else []
    with temporary(
        sources, copy=copy, store_dir=store_dir, prefix=prefix, parent=parent
    ) as laid_out:
        root = laid_out.app_root
        if source is None:
            os.rmdir(models_root(root))  # no model: no azureml-models, as in Azure
        code_dir: Path | None = None
        if code is not None:
            code_dir = root / code.code.name
            _place_code(code.code, code_dir, copy=copy)
        env = deployment_environment(spec, root, laid_out.models[0] if sources else None)
        yield V2Deployment(
            name=spec.name,
            app_root=root,
            code_dir=code_dir,
            entry_script=code.scoring_script if code is not None else None,
            model=laid_out.models[0] if sources else None,
            working_dir=_working_dir(env, root),
            env=env,
        )


def _place_code(source: Path, target: Path, *, copy: bool) -> None:
    """The code folder as a real folder of links to its entries (or a copy): the script's
    current directory is then ``<app root>/<code>`` as in the container (``os.getcwd()`` would
    name the source of a linked folder), and what the script writes there stays out of the
    user's source folder, as the container's writes do."""
    if copy:
        shutil.copytree(source, target, symlinks=True)
        return
    target.mkdir()
    for name in sorted(os.listdir(source)):
        entry = source / name
        os.symlink(entry, target / name, target_is_directory=os.path.isdir(entry))


def _working_dir(env: dict[str, str], root: Path) -> Path:
    """The start script changes into ``AML_APP_ROOT``, falling back to the app root."""
    wanted = env.get(APP_ROOT_ENV)
    return Path(wanted) if wanted and os.path.isdir(wanted) else root
