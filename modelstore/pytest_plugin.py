"""pytest plugin (entry point ``pytest11``): fixtures for testing a ``score.py`` in milliseconds.

``model_registry`` and ``fake_model_registry`` give each test its own registry;
``azureml_deployment`` lays models out as Azure ML does and sets the environment a deployed
script sees; ``scoring_client`` loads a script through the very app ``modelstore serve`` runs.

pytest loads this module in every run where modelstore is installed, so it imports only pytest
and the standard library; SQLAlchemy, Flask and pyfakefs are imported inside the fixtures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from modelstore.deployment import Deployment
    from modelstore.registry import Registry
    from modelstore.testing import EndpointClient, ScoringClient
    from modelstore.v2.probes import ProbeTiming

REAL_REGISTRY = "model_registry"
FAKE_REGISTRY = "fake_model_registry"
PYFAKEFS_FIXTURE = "fs"
_PLUGIN_FIXTURES = frozenset({REAL_REGISTRY, FAKE_REGISTRY, "azureml_deployment", "scoring_client"})
_INSTALL_HINT = "pip install modelstore[testing]"


# --- registries ------------------------------------------------------------------------------


@pytest.fixture
def model_registry(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Registry]:
    """An empty modelstore ``Registry`` of this test only, in a temporary folder on disk.

    Its catalog is its own SQLite file; ``MODELSTORE_HOME`` points at it for the test (and
    ``MODELSTORE_DB_URL``, ``AML_APP_ROOT``, ``AZUREML_MODEL_DIR`` are unset), so
    ``get_model_path`` outside a deployment and the CLI see this registry, never your real one.
    Closed and forgotten after the test::

        def test_latest_version(model_registry):
            model_registry.register("model.pkl", name="my_model")
            assert model_registry.register("model.pkl", name="my_model").version == 2
    """
    if PYFAKEFS_FIXTURE in request.fixturenames or FAKE_REGISTRY in request.fixturenames:
        pytest.fail(
            f"{REAL_REGISTRY} keeps its catalog in a real SQLite file, which pyfakefs cannot "
            f"fake; in a test that uses '{PYFAKEFS_FIXTURE}' use {FAKE_REGISTRY} instead",
            pytrace=False,
        )
    from modelstore.registry import Registry

    home = tmp_path_factory.mktemp("modelstore-home")
    _point_environment_at(monkeypatch, home, db_url=None)
    registry = Registry(home=home)
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture
def fake_model_registry(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Registry]:
    """``model_registry`` on pyfakefs's fake filesystem: no byte of it touches the disk.

    The tree and its locks live in the fake filesystem of pyfakefs's ``fs`` fixture (the same
    one, if the test also asks for ``fs``); the catalog is an in-memory SQLite database of this
    test only, named by ``MODELSTORE_DB_URL`` so ``get_model_path`` finds the same models. The
    Python installation is visible read-only in the fake filesystem, so libraries that read
    their own data files (scikit-learn, ``importlib.metadata``) work inside the test. Files from
    the real disk must be added with ``fs.add_real_file(...)`` before registering them::

        def test_register(fake_model_registry, fs):
            fs.create_file("/work/model.pkl", contents=b"weights")
            fake_model_registry.register("/work/model.pkl", name="my_model")

    Needs pyfakefs (``pip install modelstore[testing]``).
    """
    if REAL_REGISTRY in request.fixturenames:
        pytest.fail(
            f"a test gets one registry: ask for {REAL_REGISTRY} (real disk) or "
            f"{FAKE_REGISTRY} (pyfakefs), not both",
            pytrace=False,
        )
    _fake_filesystem(request)
    import sqlite3
    import tempfile
    import uuid

    from modelstore.registry import Registry

    database = f"file:modelstore-{uuid.uuid4().hex}?mode=memory&cache=shared"
    db_url = f"sqlite:///{database}&uri=true"
    # A shared in-memory database lives as long as one connection to it is open: this one
    # keeps the catalog alive for the whole test, whatever the registry's pool does.
    keepalive = sqlite3.connect(database, uri=True)
    try:
        home = Path(tempfile.mkdtemp(prefix="modelstore-home-"))  # in the fake filesystem
        _point_environment_at(monkeypatch, home, db_url=db_url)
        registry = Registry(home=home, db_url=db_url)
        try:
            yield registry
        finally:
            registry.close()
    finally:
        keepalive.close()


def _point_environment_at(monkeypatch: pytest.MonkeyPatch, home: Path, db_url: str | None) -> None:
    """Make every way modelstore finds "the registry" land on this test's one, and leave no
    deployment variables from the caller's shell that would hide it from ``get_model_path``."""
    from modelstore.layout import (
        APP_ROOT_ENV,
        DB_URL_ENV,
        HOME_ENV,
        MODEL_DIR_ENV,
        STORE_URL_ENV,
    )

    monkeypatch.setenv(HOME_ENV, os.fspath(home))
    monkeypatch.delenv(STORE_URL_ENV, raising=False)  # a test's registry never writes to a team's
    if db_url is None:
        monkeypatch.delenv(DB_URL_ENV, raising=False)
    else:
        monkeypatch.setenv(DB_URL_ENV, db_url)
    monkeypatch.delenv(APP_ROOT_ENV, raising=False)
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)


def _uses_fake_filesystem(request: pytest.FixtureRequest) -> bool:
    return FAKE_REGISTRY in request.fixturenames or PYFAKEFS_FIXTURE in request.fixturenames


def _fake_filesystem(request: pytest.FixtureRequest) -> Any:
    """pyfakefs's ``fs`` for this test, prepared so modelstore and the libraries a score.py
    uses keep working inside it; one clear line when pyfakefs is missing."""
    import importlib.util

    if importlib.util.find_spec("pyfakefs") is None:
        pytest.fail(
            f"{FAKE_REGISTRY} runs on pyfakefs, which is not installed: {_INSTALL_HINT}",
            pytrace=False,
        )
    _import_modelstore_before_pyfakefs()
    try:
        fs = request.getfixturevalue(PYFAKEFS_FIXTURE)
    except pytest.FixtureLookupError:
        pytest.fail(
            f"{FAKE_REGISTRY} needs pyfakefs's pytest plugin (its '{PYFAKEFS_FIXTURE}' fixture), "
            f"which is disabled in this run (-p no:fakefs?): enable it, or {_INSTALL_HINT}",
            pytrace=False,
        )
    if not getattr(fs, "_modelstore_ready", False):
        _show_python_installation(fs)
        fs._modelstore_ready = True
    return fs


def _show_python_installation(fs: Any) -> None:
    """Map the standard library, site-packages and modelstore itself read-only into the fake
    filesystem (lazily: nothing is read until used).

    Imports read the real disk anyway, but the data files libraries open at run time (alembic's
    migration scripts, scikit-learn's CSS, package metadata) would otherwise be "missing".
    """
    import site
    import sysconfig

    import modelstore

    candidates = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib")}
    candidates.add(sysconfig.get_paths()["platlib"])
    candidates.update(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        candidates.add(site.getusersitepackages())
    candidates.add(os.path.dirname(os.path.abspath(modelstore.__file__)))
    roots = [os.path.abspath(path) for path in candidates]
    for root in sorted(roots):
        if any(root != other and root.startswith(other + os.sep) for other in roots):
            continue  # an enclosing folder maps it already
        try:
            fs.add_real_directory(root, read_only=True)
        except OSError:  # absent on the real disk, or already mapped by the test
            continue


_imported = False
_FIXTURE_MODULES = (
    "modelstore.deployment",
    "modelstore.resolve",
    "modelstore.serving.app",
    "modelstore.serving.settings",
    "modelstore.testing",
    "modelstore.v2.layout",  # scoring_client.from_deployment: pydantic specs with Path fields
    "flask.testing",
)


def _import_modelstore_before_pyfakefs() -> None:
    """Import (once per process) what the fixtures run, and run it once on the real disk.

    pyfakefs unloads, after each test, every module first imported while it was active; the
    lazy imports of SQLAlchemy's dialect, alembic and Flask would then be repeated in every
    test (and modelstore's classes would change identity between tests). Doing it here, before
    ``fs`` starts, keeps them loaded.
    """
    global _imported
    if _imported:
        return
    import importlib
    import tempfile

    for module in _FIXTURE_MODULES:
        importlib.import_module(module)
    from modelstore.registry import Registry

    with tempfile.TemporaryDirectory(prefix="modelstore-warmup-") as scratch:
        Registry(home=scratch, db_url="sqlite://").close()
    _imported = True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of a test that combines these fixtures with pyfakefs starts (the test
    may list ``fs`` first), import modelstore's heavy modules while the real disk is visible."""
    names = set(getattr(item, "fixturenames", ()))
    if names & _PLUGIN_FIXTURES and (FAKE_REGISTRY in names or PYFAKEFS_FIXTURE in names):
        _import_modelstore_before_pyfakefs()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Once every fixture is set up and before the test body runs, give an
    ``azureml_deployment`` that has no registry yet the one the test's fixtures chose (or a
    fresh real-disk one), so the test never sees the real registry."""
    funcargs = getattr(item, "funcargs", {})
    deployments = funcargs.get("azureml_deployment")
    if isinstance(deployments, _Deployments):
        deployments.choose_registry()


_REGISTRY_SIGNALS = frozenset({REAL_REGISTRY, FAKE_REGISTRY, PYFAKEFS_FIXTURE})
_DEPLOYMENT_ENV = ("AML_APP_ROOT", "AZUREML_MODEL_DIR")


def _registry_in_use(request: pytest.FixtureRequest) -> tuple[Registry, str]:
    """The fake registry when the test runs on pyfakefs, else the real-disk one."""
    fixture = FAKE_REGISTRY if _uses_fake_filesystem(request) else REAL_REGISTRY
    registry: Registry = request.getfixturevalue(fixture)
    return registry, fixture


# --- deployments -----------------------------------------------------------------------------


class _Deployments:
    """The ``azureml_deployment`` factory: one deployment per test, as one Azure ML service."""

    def __init__(self, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
        self._request = request
        self._monkeypatch = monkeypatch
        self._deployment: Deployment | None = None
        self._copy = False
        self._registry: Registry | None = None
        self._registry_fixture = ""
        self._variables_at_setup: dict[str, str | None] | None = None
        if _REGISTRY_SIGNALS & set(request.fixturenames):
            self.choose_registry()
        else:
            # A fixture set up later may still ask for a registry by name (the README's
            # two-registries pattern): pytest_runtest_call chooses once every fixture is set
            # up, keeping what those fixtures set.
            self._variables_at_setup = {name: os.environ.get(name) for name in _DEPLOYMENT_ENV}

    def choose_registry(self) -> Registry:
        """The test's registry, set up now if no fixture asked for one. It must happen before
        the test body runs: the registry fixtures unset AML_APP_ROOT and AZUREML_MODEL_DIR,
        which must not undo what the test itself sets."""
        if self._registry is None:
            at_setup = self._variables_at_setup
            set_since = {
                name: value
                for name, value in ((name, os.environ.get(name)) for name in _DEPLOYMENT_ENV)
                if at_setup is not None and value is not None and value != at_setup.get(name)
            }
            self._registry, self._registry_fixture = _registry_in_use(self._request)
            for name, value in set_since.items():  # set by the test's own fixtures: kept
                self._monkeypatch.setenv(name, value)
        return self._registry

    def __call__(self, *models: str | os.PathLike[str], copy: bool = False) -> Deployment:
        """Deploy ``models`` (REFs such as ``"my_model:1"`` or unregistered local paths)."""
        if self._deployment is not None and copy != self._copy:
            raise self._second_deployment(f"with copy={copy}")
        return self.ensure(models, copy=copy)

    def ensure(
        self, models: Sequence[str | os.PathLike[str]], *, copy: bool | None = None
    ) -> Deployment:
        """Deploy ``models``, or return the test's deployment if it holds exactly those
        (``copy=None``: links for a new deployment, whatever the existing one uses)."""
        registry, fixture = self.choose_registry(), self._registry_fixture
        refs = [os.fspath(model) for model in models]
        if self._deployment is None:
            copy = bool(copy)
            # kept (like tmp_path) for a look after the test; pytest cleans its folder up
            deployment = _deploy(registry, fixture, refs, self._app_root_parent(), copy=copy)
            for variable, value in deployment.env.items():
                self._monkeypatch.setenv(variable, value)
            self._deployment, self._copy = deployment, copy
            return deployment
        # Resolve the request exactly as the registry does by laying it out aside (links only).
        probe = _deploy(registry, fixture, refs, self._app_root_parent(), copy=False, keep=False)
        if _contents(probe) != _contents(self._deployment):
            raise self._second_deployment(f"of {_describe(probe)}")
        return self._deployment

    def _second_deployment(self, what: str) -> Exception:
        from modelstore.errors import DeploymentRefusedError

        assert self._deployment is not None
        return DeploymentRefusedError(
            f"this test already deployed {_describe(self._deployment)} at "
            f"{self._deployment.app_root}, so it cannot also get a deployment {what}: a test "
            "gets one deployment (one Azure ML service); ask for the same models again, or "
            "split the test in two"
        )

    @property
    def deployed(self) -> Deployment | None:
        """The test's deployment, if one was made."""
        return self._deployment

    def app_root_parent(self) -> Path | None:
        return self._app_root_parent()

    def _app_root_parent(self) -> Path | None:
        """pytest's temporary folder of this run; on pyfakefs, the fake system's one (None)."""
        if _uses_fake_filesystem(self._request):
            return None
        factory: pytest.TempPathFactory = self._request.getfixturevalue("tmp_path_factory")
        return factory.getbasetemp()


def _deploy(
    registry: Registry,
    fixture: str,
    refs: list[str],
    parent: Path | None,
    *,
    copy: bool,
    keep: bool = True,
) -> Deployment:
    """A deployment in a new temporary app root inside ``parent``; ``keep=False`` removes it
    again at once (its description stays valid)."""
    from modelstore.errors import ModelNotFoundError

    try:
        with registry.temporary_deployment(
            refs, copy=copy, keep=keep, prefix="azureml-app-", parent=parent
        ) as deployment:
            return deployment
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(
            f"{exc} (this test's registry is {fixture}: register a model with "
            f"{fixture}.register(path, name=...) before deploying it)"
        ) from None


def _contents(deployment: Deployment) -> frozenset[tuple[str, int, str]]:
    return frozenset(
        (model.name, model.version, os.fspath(model.source)) for model in deployment.models
    )


def _describe(deployment: Deployment) -> str:
    if not deployment.models:
        return "no models"
    return ", ".join(
        f"{model.name}:{model.version}"
        + ("" if model.registered else f" (unregistered {model.source})")
        for model in deployment.models
    )


@pytest.fixture
def azureml_deployment(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> _Deployments:
    """Deploy models as Azure ML does: ``azureml_deployment("my_first_model:1", "other:2")``.

    Lays out ``<app root>/azureml-models/<name>/<version>/<entry>`` in a fresh temporary app
    root (links into the registry; ``copy=True`` copies), sets ``AML_APP_ROOT`` and
    ``AZUREML_MODEL_DIR`` exactly as Azure ML would for these models (restored after the test)
    and returns the ``Deployment``. Models are REFs of the test's registry
    (``fake_model_registry`` when the test uses it or ``fs``, else ``model_registry``) or local
    files and folders that are not registered (deployed as ``<name>/0/<entry>``)::

        def test_init_finds_the_model(model_registry, azureml_deployment):
            model_registry.register("model.pkl", name="my_model")
            deployment = azureml_deployment("my_model:1")
            assert os.environ["AZUREML_MODEL_DIR"] == str(deployment.model_dir)

    A test gets one deployment: asking again for the same models returns it, asking for
    different ones raises ``DeploymentRefusedError``; an unknown model raises
    ``ModelNotFoundError`` listing what is registered.
    """
    return _Deployments(request, monkeypatch)


# --- scoring ---------------------------------------------------------------------------------


class _ScoringClients:
    """The ``scoring_client`` factory."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch,
        deployments: _Deployments,
    ) -> None:
        self._request = request
        self._monkeypatch = monkeypatch
        self._deployments = deployments
        self._loaded_modules: set[str] = set()
        self._v2: contextlib.ExitStack | None = None

    def from_deployment(
        self, deployment_yml: str | os.PathLike[str], **settings: Any
    ) -> ScoringClient:
        """A client for an Azure ML v2 deployment YAML, laid out and started as a managed
        online deployment starts it (see ``modelstore.v2.layout``): its model (an inline path,
        or ``azureml:NAME:VERSION``/``@latest`` from the test's registry), its code folder, its
        environment and ``environment_variables``, and the code folder as the current
        directory. All of it ends with the test. One deployment per test, as one container."""
        from modelstore.errors import DeploymentRefusedError
        from modelstore.serving.app import create_app
        from modelstore.serving.settings import ServingSettings
        from modelstore.testing import ScoringClient
        from modelstore.v2.deployment_spec import OnlineDeploymentSpec
        from modelstore.v2.layout import temporary_v2_deployment
        from modelstore.v2.load import load_deployment_spec

        if self._v2 is not None or self._deployments.deployed is not None:
            raise DeploymentRefusedError(
                "this test already has a deployment, so it cannot also get one from "
                f"{os.fspath(deployment_yml)}: a test gets one deployment (one container); "
                "split the test in two"
            )
        fs = _fake_filesystem(self._request) if _uses_fake_filesystem(self._request) else None
        spec: OnlineDeploymentSpec = load_deployment_spec(self._find_yaml(deployment_yml, fs))
        if spec.code_configuration is None:
            raise DeploymentRefusedError(
                f"{os.fspath(deployment_yml)} has no code_configuration, so there is no scoring "
                "script to load; add code_configuration with code and scoring_script"
            )
        registry = None
        if spec.model is not None and not hasattr(spec.model, "path"):  # an azureml: reference
            registry = self._deployments.choose_registry()
        parent = self._deployments.app_root_parent()
        stack = contextlib.ExitStack()
        self._request.addfinalizer(stack.close)
        self._v2 = stack
        deployment = stack.enter_context(temporary_v2_deployment(spec, registry, parent=parent))
        for variable, value in deployment.env.items():
            self._monkeypatch.setenv(variable, value)
        self._monkeypatch.chdir(deployment.working_dir)
        script = deployment.script_path
        assert script is not None
        settings.setdefault("request_timeout_ms", spec.request_settings.request_timeout_ms)
        serving = ServingSettings.from_environ(
            os.environ, entry_script=Path(spec.code_configuration.scoring_script), **settings
        )
        return ScoringClient(self._load(script, lambda: create_app(serving), fake=fs is not None))

    def from_endpoint(
        self,
        endpoint_yml: str | os.PathLike[str],
        *deployment_ymls: str | os.PathLike[str],
        traffic: Mapping[str, int] | None = None,
        auth: bool = False,
        seed: int | None = None,
        probe_timing: ProbeTiming = "fast",
        **settings: Any,
    ) -> EndpointClient:
        """A client for an Azure ML v2 endpoint and its deployments, started as ``modelstore
        serve -f endpoint.yml -f blue.yml ...`` starts them: each deployment in its own server
        process (its own environment, working directory and ``init()``, as each is its own
        container), ready once its readiness probe passed. Requests go through the endpoint's
        router in this process (``traffic``, else the YAML's; the ``azureml-model-deployment``
        header; with ``auth``, ``Authorization: Bearer`` one of ``client.keys``); ``seed``
        makes the traffic split reproducible. Real processes read the real disk, so pyfakefs
        is refused. Everything stops, and the app roots are removed, after the test."""
        from modelstore.errors import DeploymentRefusedError
        from modelstore.testing import EndpointClient
        from modelstore.v2.endpoint import local_endpoint

        if _uses_fake_filesystem(self._request):
            raise DeploymentRefusedError(
                "scoring_client.from_endpoint starts a server process per deployment, and "
                "processes cannot see pyfakefs's files; use tmp_path and model_registry "
                "instead of fs / fake_model_registry in this test"
            )
        files = [self._find_yaml(f, None) for f in (endpoint_yml, *deployment_ymls)]
        stack = contextlib.ExitStack()
        self._request.addfinalizer(stack.close)
        endpoint = stack.enter_context(
            local_endpoint(
                files,
                self._deployments.choose_registry,
                traffic=traffic,
                auth=auth,
                seed=seed,
                probe_timing=probe_timing,
                **settings,
            )
        )
        return EndpointClient(endpoint)

    def _find_yaml(self, given: str | os.PathLike[str], fs: Any) -> Path:
        """The YAML in the current directory or next to the test file; on pyfakefs, one found
        only on the real disk brings its folder (code, model) into the fake one, read-only."""
        path = Path(given)
        candidates = [path] if path.is_absolute() else [Path(os.path.abspath(path))]
        if not path.is_absolute():
            candidates.append(self._request.path.parent / path)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        if fs is not None:
            real = path if path.is_absolute() else self._request.path.parent / path
            try:
                fs.add_real_directory(real.parent, read_only=True)
            except OSError:
                pass
            else:
                if real.is_file():
                    return real
        return candidates[0]  # the loader says it does not exist

    def __call__(
        self,
        entry_script: str | os.PathLike[str],
        *,
        models: Sequence[str | os.PathLike[str]] = (),
        **settings: Any,
    ) -> ScoringClient:
        from modelstore.serving.app import create_app
        from modelstore.serving.settings import ServingSettings
        from modelstore.testing import ScoringClient

        fs = _fake_filesystem(self._request) if _uses_fake_filesystem(self._request) else None
        if models and self._v2 is not None:
            from modelstore.errors import DeploymentRefusedError

            raise DeploymentRefusedError(
                "this test already has a deployment from a v2 YAML, so it cannot also deploy "
                "models: a test gets one deployment (one container); split the test in two"
            )
        if models:
            self._deployments.ensure(models)
        script = self._find(entry_script, fs)
        serving = ServingSettings.from_environ(os.environ, entry_script=script, **settings)
        return ScoringClient(self._load(script, lambda: create_app(serving), fake=fs is not None))

    def _find(self, entry_script: str | os.PathLike[str], fs: Any) -> Path:
        """An absolute script path; relative ones are looked up in the current directory, then
        next to the test file. On pyfakefs, a script that exists only on the real disk is added
        to the fake filesystem read-only."""
        from modelstore.errors import EntryScriptError

        given = Path(entry_script)
        test_dir = self._request.path.parent
        if given.is_absolute():
            candidates = [given]
        else:
            candidates = [Path(os.path.abspath(given)), test_dir / given]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        real_candidates = candidates
        if fs is not None and not given.is_absolute():
            real_candidates = [self._request.config.invocation_params.dir / given, test_dir / given]
        if fs is not None:
            for candidate in real_candidates:
                try:
                    fs.add_real_file(candidate, read_only=True)
                except OSError:
                    continue
                return candidate
        tried = ", ".join(dict.fromkeys(os.fspath(path) for path in real_candidates + candidates))
        raise EntryScriptError(
            f"entry script {os.fspath(entry_script)!r} not found (looked for {tried}); give a "
            "path relative to the current directory or to the test file, or an absolute one"
        )

    def _load(self, script: Path, start: Any, *, fake: bool) -> Any:
        """Run ``start`` (load the script, call init()) so that what it changes in the process
        — environment variables, ``sys.path``, sibling modules of the script — ends with the
        test, as it would end with a server process."""
        from modelstore.errors import EntryScriptError
        from modelstore.serving.logs import SERVER_LOGGER

        self._monkeypatch.setattr(sys, "path", list(sys.path))
        environ_before = dict(os.environ)
        modules_before = set(sys.modules)
        errors = _ErrorRecorder()
        server_logger = logging.getLogger(SERVER_LOGGER)
        server_logger.addHandler(errors)
        try:
            return start()
        except EntryScriptError as exc:
            # The server logs the script's own traceback and raises one line; a test report
            # needs both, whatever the logging configuration of the test run.
            lines = [str(exc)]
            if fake and "ModuleNotFoundError" in lines[0]:
                lines.append(_FAKE_IMPORT_NOTE)
            if not errors.lines and len(lines) == 1:
                raise
            raise type(exc)("\n".join([*lines, *errors.lines])) from None
        finally:
            server_logger.removeHandler(errors)
            self._keep_environment_changes_for_this_test_only(environ_before)
            folder = os.path.dirname(os.path.realpath(script))
            for name in set(sys.modules) - modules_before:
                if _is_sibling_module(name, sys.modules[name], folder):
                    self._loaded_modules.add(name)

    def _keep_environment_changes_for_this_test_only(self, before: dict[str, str]) -> None:
        for variable in set(before) | set(os.environ):
            now = os.environ.get(variable)
            if now == before.get(variable):
                continue
            if variable in before:  # hand the change to monkeypatch, which will undo it
                os.environ[variable] = before[variable]
            else:
                del os.environ[variable]
            if now is None:
                self._monkeypatch.delenv(variable)
            else:
                self._monkeypatch.setenv(variable, now)

    def forget_loaded_modules(self) -> None:
        """Sibling modules a script imported must not answer the next test's imports."""
        for name in self._loaded_modules:
            sys.modules.pop(name, None)
        self._loaded_modules.clear()


def _is_sibling_module(name: str, module: Any, folder: str) -> bool:
    """Whether ``module`` was imported from the script's own folder (``helper.py``,
    ``utils/x.py`` beside it), not from a library installed anywhere below that folder (a
    project's ``.venv``): libraries stay loaded, many of them (numpy...) cannot load twice."""
    source = getattr(module, "__file__", None)
    if not source:
        return False
    try:
        relative = os.path.relpath(os.path.realpath(source), folder)
    except ValueError:  # another drive (Windows)
        return False
    first = relative.split(os.sep, 1)[0]
    if first == os.pardir:
        return False
    return first.split(".", 1)[0] == name.split(".", 1)[0]


_FAKE_IMPORT_NOTE = (
    "Note: this test runs on pyfakefs, and Python's import system reads the real disk only: "
    "a module the script imports must exist on the real disk, not just in the fake filesystem."
)


class _ErrorRecorder(logging.Handler):
    """Keeps the server's error log lines (tracebacks included) while a script starts."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def scoring_client(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    azureml_deployment: _Deployments,
) -> Iterator[_ScoringClients]:
    """Load a ``score.py`` as ``modelstore serve`` does and call it over (fake) HTTP.

    ``scoring_client("score.py", models=["my_model:1"], **settings)`` deploys the models
    (through ``azureml_deployment``, so the same models after an explicit deployment just
    work), loads the script as a fresh module, runs ``init()`` and returns a client whose
    ``.post(json=..., data=..., files=..., headers=...)``, ``.get(...)`` and ``.options(...)``
    return what the server would answer (``.status_code``, ``.headers``, ``.text``,
    ``.content``, ``.json()``): same app, Flask's test client, no network. ``settings`` are
    those of ``modelstore serve`` (``cors_origins``, ``scoring_timeout_ms``, ``numpy_json``,
    ``validation_400``...)::

        def test_score(model_registry, scoring_client):
            model_registry.register("model.pkl", name="my_model")
            client = scoring_client("score.py", models=["my_model:1"])
            assert client.post(json={"data": [[1, 2, 3]]}).status_code == 200

    A relative script path is looked up in the current directory, then next to the test file
    (on pyfakefs, a script found only on the real disk is added read-only). A script that
    cannot start (missing, no ``init``/``run``, ``init()`` raised) raises ``EntryScriptError``,
    its message followed by the server's log of the failure (the script's traceback).
    Environment variables, ``sys.path`` entries and sibling modules the script sets up are
    undone after the test, as if its server process had ended.

    ``scoring_client.from_deployment("blue-deployment.yml", **settings)`` does the same for an
    Azure ML v2 deployment YAML: model, code folder and environment as the cloud lays them out
    (the registry is the test's, for ``azureml:`` models), removed after the test.

    ``scoring_client.from_endpoint("endpoint.yml", "blue.yml", "green.yml", traffic=...,
    auth=..., seed=...)`` starts a v2 endpoint: each deployment in its own server process, the
    requests routed by traffic and the ``azureml-model-deployment`` header as Azure routes them
    (the answer names the deployment in that header); stopped after the test.
    """
    clients = _ScoringClients(request, monkeypatch, azureml_deployment)
    try:
        yield clients
    finally:
        clients.forget_loaded_modules()
