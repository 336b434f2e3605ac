"""Vulcan Operator: runs the Vulcan Engine scheduling service on Kubernetes."""

GROUP = "vulcan-engine.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
