"""The permission matrix, driven by the method registry: every method, every role (API.md §7)."""

from __future__ import annotations

import pytest

from camsvc.app import App
from camsvc.auth import Role

ROLES = [None, "viewer", "operator", "admin"]


def _methods() -> list[tuple[str, Role]]:
    """Every registered method and its role, from an App built on throw-away paths."""
    import tempfile

    from camsvc.config import config_from_dict

    with tempfile.TemporaryDirectory() as tmp:
        app = App(
            config_from_dict(
                {
                    "security": {
                        "jwt_secret_key": "registry-only",
                        "api_keys_path": f"{tmp}/k.json",
                    },
                    "storage": {"db_path": f"{tmp}/camsvc.db"},
                    "snapshots": {"path": f"{tmp}/s"},
                    "recording": {"path": f"{tmp}/r"},
                }
            )
        )
        app.catalog.close()
        return [(spec.name, spec.role) for spec in app.registry]


# The expected minimum role per method, from API.md §7; every registered method must appear.
SPEC_ROLES = {
    "ping": Role.NONE,
    "rpc.discover": Role.NONE,
    "authenticate": Role.NONE,
    "get_camera_list": Role.VIEWER,
    "get_camera_status": Role.VIEWER,
    "get_camera_capabilities": Role.VIEWER,
    "take_snapshot": Role.OPERATOR,
    "start_recording": Role.OPERATOR,
    "stop_recording": Role.OPERATOR,
    "list_recordings": Role.VIEWER,
    "list_snapshots": Role.VIEWER,
    "get_recording_info": Role.VIEWER,
    "get_snapshot_info": Role.VIEWER,
    "delete_recording": Role.OPERATOR,
    "delete_snapshot": Role.OPERATOR,
    "start_streaming": Role.OPERATOR,
    "stop_streaming": Role.OPERATOR,
    "get_stream_url": Role.VIEWER,
    "get_stream_status": Role.VIEWER,
    "get_streams": Role.VIEWER,
    "get_metrics": Role.ADMIN,
    "get_status": Role.ADMIN,
    "get_storage_info": Role.ADMIN,
    "get_system_status": Role.VIEWER,
    "get_server_info": Role.VIEWER,
    "set_retention_policy": Role.ADMIN,
    "cleanup_old_files": Role.ADMIN,
    "subscribe_events": Role.VIEWER,
    "unsubscribe_events": Role.VIEWER,
    "get_subscription_stats": Role.VIEWER,
    "discover_external_streams": Role.OPERATOR,
    "add_external_stream": Role.OPERATOR,
    "remove_external_stream": Role.OPERATOR,
    "get_external_streams": Role.VIEWER,
    "set_discovery_interval": Role.ADMIN,
}


@pytest.mark.parametrize(("method", "role"), _methods())
def test_registry_role_matches_spec(method, role):
    """Each registered method's minimum role is the one API.md §7 gives."""
    assert method in SPEC_ROLES, f"{method} is not in API.md §7"
    assert role == SPEC_ROLES[method]


@pytest.mark.parametrize(("method", "required"), _methods())
@pytest.mark.parametrize("role", ROLES)
async def test_matrix(service, connect, method, required, role):
    """Below the minimum role: -32001 (no session) or -32002 naming it; at or above: neither."""
    client = await connect(service, role)
    reply = await client.request(method, {})
    error = reply.get("error")
    have = Role.parse(role) if role else Role.NONE
    if have < required:
        if role is None:
            assert error["code"] == -32001 and error["data"]["reason"] == "auth_required"
        else:
            assert error["code"] == -32002
            assert error["message"] == "Permission denied"
            assert error["data"]["required_role"] == required.label
    else:
        # authenticate itself answers -32001 for a missing token: that is its result, not a gate.
        gates = (-32001, -32002) if required is not Role.NONE else (-32002,)
        assert error is None or error["code"] not in gates, reply
