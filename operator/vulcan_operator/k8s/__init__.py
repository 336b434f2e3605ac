"""Our Kubernetes access: the client (`client`) and applying desired objects (`apply`)."""

from vulcan_operator.k8s.apply import NotOurs, apply, contains
from vulcan_operator.k8s.client import PLURALS, Api, ApiError, Ref

__all__ = ["PLURALS", "Api", "ApiError", "NotOurs", "Ref", "apply", "contains"]
