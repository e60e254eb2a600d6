"""Deployments: an Azure ML app root laid out on the local disk. ``layout`` builds the
``azureml-models/<name>/<version>/<entry>`` tree every deployment shares and holds ``temporary``,
the one "deploy, use, clean up" of the package (the v2 layout, ``modelstore.v2.layout``, builds on
it).

``from modelstore.deployment import Deployment, ModelSource, build_deployment, temporary`` is the
public import path.
"""

from __future__ import annotations

from modelstore.deployment.layout import (
    BUILD_LOCK,
    BUILD_PREFIX,
    TEMPORARY_PREFIX,
    DeployedModel,
    Deployment,
    ModelSource,
    app_root_occupants,
    build_deployment,
    temporary,
)

__all__ = [
    "BUILD_LOCK",
    "BUILD_PREFIX",
    "TEMPORARY_PREFIX",
    "DeployedModel",
    "Deployment",
    "ModelSource",
    "app_root_occupants",
    "build_deployment",
    "temporary",
]
