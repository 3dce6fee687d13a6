"""The node SDK's public names are a contract with every node author: pinned here."""

from __future__ import annotations

import linkflow.nodes.sdk as sdk

PINNED = {
    "AddressGuard", "CheckContext", "CredentialCheck", "CredentialField", "CredentialType",
    "BinaryRef", "BlobStore", "ChildExecution", "CodeMode", "CodeRequest", "CodeResult",
    "CodeRunner", "amap_items", "ERROR_OUTPUT", "Item", "JsonObject", "Lineage", "MAIN", "Node",
    "NodeContext", "NodeError", "NodeGroup", "NodeResult", "OAuth2Flow", "OnError", "Pair",
    "Response", "Wait", "error_item", "map_items", "route_items",
}  # fmt: skip


def test_the_sdk_exports_exactly_the_pinned_names() -> None:
    """Removing or renaming an SDK name breaks custom nodes: it must be deliberate."""
    assert set(sdk.__all__) == PINNED
    for name in PINNED:
        assert getattr(sdk, name) is not None


def test_node_context_offers_what_node_authors_use() -> None:
    """The context protocol keeps its members (adding is fine, removing is not)."""
    members = {
        "execution_id", "workflow_id", "node_id", "node_name", "run_index", "attempt",
        "idempotency_key", "on_error", "inputs", "items", "state", "trigger_input",
        "raw_parameters", "param", "now", "uuid4", "log", "credential", "http", "blobs", "code",
        "resume", "run_workflow", "resolve_host",
    }  # fmt: skip
    assert members <= set(dir(sdk.NodeContext))
