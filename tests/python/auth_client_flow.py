"""The stock `mlflow.server.auth.client.AuthServiceClient` against tandem, end to end. Run by
test_access.py in the venv that has `mlflow[auth]`; exits non-zero on the first failure."""

import os

import contextlib
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException
from mlflow.server.auth.client import AuthServiceClient

URL = os.environ["TANDEM_URL"]
ADMIN, ADMIN_PW = os.environ["TANDEM_ADMIN"], os.environ["TANDEM_ADMIN_PW"]


class Raised:
    value = None


@contextlib.contextmanager
def raises(kind):
    """pytest.raises without pytest (this venv is the stock server's)."""
    caught = Raised()
    try:
        yield caught
    except kind as e:  # noqa: PERF203 - the point of the helper
        caught.value = e
        return
    raise AssertionError(f"{kind.__name__} was not raised")


def elevate_admin(url, reason):
    r = requests.post(f"{url}/api/tandem/v1/access/elevate", auth=(ADMIN, ADMIN_PW), timeout=30,
                      json={"role": "admin", "scope": "*", "for_seconds": 3600, "reason": reason})
    assert r.status_code == 200, r.text


def as_user(name, password):
    os.environ["MLFLOW_TRACKING_USERNAME"] = name
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password


def main():
    url = URL
    as_user(ADMIN, ADMIN_PW)
    auth = AuthServiceClient(url)
    # No standing right changes access, the admin's included.
    with raises(RestException) as e:
        auth.create_user("frank", "frank-password-1")
    assert e.value.error_code == "PERMISSION_DENIED"
    elevate_admin(url, "onboard frank")
    user = auth.create_user("frank", "frank-password-1")
    assert (user.username, user.is_admin) == ("frank", False)
    assert auth.get_user("frank").username == "frank"
    admin = MlflowClient(url)
    exp = admin.create_experiment("frank-exp")
    other = admin.create_experiment("other-exp")
    admin.create_registered_model("frank-model")
    admin.create_registered_model("other-model")

    auth.grant_user_permission("frank", "experiment", exp, "READ")
    auth.grant_user_permission("frank", "registered_model", "frank-model", "MANAGE")
    got = auth.get_user_permission("frank", "experiment", exp)
    assert (got.allowed, got.permission) == (True, "READ")
    assert auth.get_user_permission("frank", "experiment", other).permission == "NO_PERMISSIONS"

    as_user("frank", "frank-password-1")
    frank = MlflowClient(url)
    assert frank.get_experiment(exp).name == "frank-exp"
    assert [e.experiment_id for e in frank.search_experiments()] == [exp]
    with raises(RestException) as e:
        frank.create_run(exp)
    assert e.value.error_code == "PERMISSION_DENIED"
    with raises(RestException):
        frank.get_experiment(other)
    seen = [m.name for m in frank.search_registered_models()]
    assert seen == ["frank-model"], seen
    frank.set_registered_model_tag("frank-model", "owner", "frank")
    with raises(RestException):
        frank.get_registered_model("other-model")
    # Frank changes his own password with the current one.
    AuthServiceClient(url).update_user_password("frank", "frank-password-2", current_password="frank-password-1")
    with raises(MlflowException):
        MlflowClient(url).get_experiment(exp)
    as_user("frank", "frank-password-2")
    assert MlflowClient(url).get_experiment(exp)

    # EDIT lets him log runs; a revoke takes everything on that experiment back.
    as_user(ADMIN, ADMIN_PW)
    auth.grant_user_permission("frank", "experiment", exp, "EDIT")
    assert auth.get_user_permission("frank", "experiment", exp).permission == "EDIT"
    as_user("frank", "frank-password-2")
    run = MlflowClient(url).create_run(exp)
    MlflowClient(url).log_metric(run.info.run_id, "m", 1.0)
    as_user(ADMIN, ADMIN_PW)
    auth.revoke_user_permission("frank", "experiment", exp)
    as_user("frank", "frank-password-2")
    with raises(RestException):
        MlflowClient(url).get_run(run.info.run_id)

    # MLflow 3's role objects: a role in the workspace, with permissions on resources.
    as_user(ADMIN, ADMIN_PW)
    role = auth.create_role("default", "exp-readers", description="reads one experiment")
    assert (role.name, role.workspace) == ("exp-readers", "default")
    with raises(RestException) as e:
        auth.create_role("default", "exp-readers")
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"
    perm = auth.add_role_permission(role.id, "experiment", other, "READ")
    with raises(RestException) as e:
        auth.add_role_permission(role.id, "prompt", "*", "READ")
    assert e.value.error_code == "NOT_IMPLEMENTED"
    auth.assign_role("frank", role.id)
    assert [r.name for r in auth.list_user_roles("frank")] == ["exp-readers"]
    assert [a.role_id for a in auth.list_role_users(role.id)] == [role.id]
    assert [r.id for r in auth.list_roles("default")] == [role.id]
    as_user("frank", "frank-password-2")
    assert MlflowClient(url).get_experiment(other).name == "other-exp"
    with raises(RestException):
        MlflowClient(url).create_run(other)
    as_user(ADMIN, ADMIN_PW)
    auth.update_role_permission(perm.id, "EDIT")
    assert [p.permission for p in auth.list_role_permissions(role.id)] == ["EDIT"]
    as_user("frank", "frank-password-2")
    MlflowClient(url).create_run(other)
    as_user(ADMIN, ADMIN_PW)
    auth.remove_role_permission(perm.id)
    as_user("frank", "frank-password-2")
    with raises(RestException):
        MlflowClient(url).get_experiment(other)
    as_user(ADMIN, ADMIN_PW)
    assert auth.update_role(role.id, name="renamed").name == "renamed"
    assert auth.get_role(role.id).description == "reads one experiment"
    auth.unassign_role("frank", role.id)
    assert auth.list_user_roles("frank") == []
    auth.delete_role(role.id)
    with raises(RestException) as e:
        auth.get_role(role.id)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    as_user(ADMIN, ADMIN_PW)
    auth.update_user_admin("frank", True)
    assert auth.get_user("frank").is_admin
    auth.update_user_admin("frank", False)
    assert not auth.get_user("frank").is_admin
    auth.delete_user("frank")
    with raises(RestException):
        auth.get_user("frank")
    as_user("frank", "frank-password-2")
    with raises(MlflowException) as e:
        MlflowClient(url).get_experiment(exp)
    assert "UNAUTHENTICATED" in str(e.value) or "401" in str(e.value)

    print("auth client flow: ok")


if __name__ == "__main__":
    main()
