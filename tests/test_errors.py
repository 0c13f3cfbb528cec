"""The exception hierarchy (gateway/errors.py): one root, stable codes where they are read, a leaf module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gateway.composition.config import ConfigError
from gateway.connect._client import ConnectorFailure
from gateway.consent import ConsentError
from gateway.consent._rights import RightsError
from gateway.engine import RequestError
from gateway.errors import CitygateError, ClientRefusal, ConfigurationError, PartnerFault
from gateway.executor import AnswerTooLarge, SubgraphCircuitOpen, SubgraphUnavailable, UpstreamAddressRefused
from gateway.identity import IdentityError
from gateway.persisted import DocumentRefusal
from gateway.planner import DocumentError, PlanningBudgetExceeded, PlanningError
from gateway.planner._limits import LimitExceeded
from gateway.registry import RegistryError
from gateway.registry._worker import COMPOSITION_BUDGET_EXCEEDED, BudgetExceeded
from gateway.settings import SettingsError
from gateway.store import StoreInUse
from gateway.supergraph import SupergraphError

ERRORS = Path(__file__).resolve().parents[1] / "gateway" / "errors.py"


def test_the_errors_module_imports_nothing_from_the_gateway():
    tree = ast.parse(ERRORS.read_text())
    imported = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert all(
        isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "__future__" for node in imported
    )


@pytest.mark.parametrize(
    ("error_class", "base"),
    [
        (RequestError, ClientRefusal),
        (DocumentError, ClientRefusal),
        (LimitExceeded, ClientRefusal),
        (DocumentRefusal, ClientRefusal),
        (IdentityError, ClientRefusal),
        (PlanningError, ClientRefusal),
        (ConsentError, ClientRefusal),
        (RightsError, ClientRefusal),
        (SubgraphUnavailable, PartnerFault),
        (AnswerTooLarge, PartnerFault),
        (ConnectorFailure, PartnerFault),
        (SupergraphError, ConfigurationError),
        (SettingsError, ConfigurationError),
        (RegistryError, ConfigurationError),
        (ConfigError, ConfigurationError),
        (StoreInUse, ConfigurationError),
        (BudgetExceeded, CitygateError),
    ],
)
def test_errors_seen_outside_derive_from_the_root_through_whose_fault_they_are(error_class, base):
    assert issubclass(error_class, base) and issubclass(base, CitygateError)


def test_class_codes_are_the_codes_clients_and_partners_read():
    assert PlanningError("no route").code == "QUERY_PLANNING_FAILED"
    assert PlanningBudgetExceeded("too long").code == "QUERY_PLANNING_BUDGET_EXCEEDED"
    assert isinstance(PlanningBudgetExceeded("too long"), PlanningError)
    assert SubgraphUnavailable("down").code == "SUBREQUEST_HTTP_ERROR"
    assert SubgraphCircuitOpen("open").code == UpstreamAddressRefused("refused").code == "SUBGRAPH_UNAVAILABLE"
    assert SupergraphError("bad").code == "NOT_SERVABLE"
    assert BudgetExceeded("slow").code == COMPOSITION_BUDGET_EXCEEDED == "COMPOSITION_BUDGET_EXCEEDED"


def test_an_instance_code_wins_over_its_class_default():
    refused = ConsentError("CONSENT_NOT_FOUND", "no such consent")
    assert refused.code == "CONSENT_NOT_FOUND" and ClientRefusal.code == "BAD_REQUEST"
    assert RequestError("METHOD_NOT_ALLOWED", ["a mutation cannot be sent with GET"]).code == "METHOD_NOT_ALLOWED"
