"""STS and the instance metadata endpoint of `cvm-operator simulator`, driven by the official
Python SDK: the typed STS client (tencentcloud-sdk-python-sts, responses type-checked against its
models), the SDK's own credential providers pointed at the simulator (STSAssumeRoleCredential,
DefaultTkeOIDCRoleArnProvider with the TKE_* environment, CVMRoleCredential) each then signing
CVM calls, and requests signed the way the documentation's current example signs them
(`content-type;host;x-tc-action`) by an independent implementation.

Run with `hack/python-sdk-test.sh` (fixtures come from test_sdk_interop.py).
"""

import functools
import hashlib
import hmac
import http.client
import json
import time
import urllib.request

import pytest

from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cvm.v20170312 import cvm_client, models
from tencentcloud.sts.v20180813 import sts_client, models as sts_models

from test_sdk_interop import (  # noqa: F401  (sim and _no_proxy are fixtures)
    IMAGE, REGION, SIM_ID, SIM_KEY, ZONE, TypeChecked, _hmac, _no_proxy, expect_error, make_client, req, sim)

TARGET = "200000000002"
ROLE = "qcs::cam::uin/%s:roleName/py-role" % TARGET
OIDC_TOKEN = "py-oidc-token-0123456789"


def sts(sim, method="POST", cred=None):
    hp = HttpProfile(protocol="http", endpoint=sim.host, reqMethod=method, reqTimeout=10)
    cred = cred or credential.Credential(SIM_ID, SIM_KEY)
    return TypeChecked(sts_client.StsClient(cred, REGION, ClientProfile(httpProfile=hp)), sts_models)


def cvm_with(sim, cred):
    hp = HttpProfile(protocol="http", endpoint=sim.host, reqTimeout=10)
    return TypeChecked(cvm_client.CvmClient(cred, REGION, ClientProfile(httpProfile=hp)))


def opener():
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def roles(sim):
    """A role in account TARGET that the simulator key's account may assume, which also trusts
    an OIDC provider, and an instance role; returns the key's own account."""
    account = sts(sim).GetCallerIdentity(sts_models.GetCallerIdentityRequest()).AccountId
    config = {"roles": [{"arn": ROLE, "trustedAccounts": [account],
                         "webIdentity": {"providerId": "tke-oidc", "tokens": [OIDC_TOKEN]}}],
              "instanceRole": {"roleName": "py-node", "roleArn": ROLE, "durationSecs": 3600}}
    put = urllib.request.Request("http://%s/_sim/sts" % sim.host, data=json.dumps(config).encode(), method="PUT")
    with opener().open(put, timeout=5) as r:
        assert r.status == 204
    return account


@pytest.fixture
def sdk_sts_over_http(monkeypatch):
    """The SDK's credential providers build their own HttpProfile (https); the simulator is
    plain HTTP on loopback."""
    monkeypatch.setattr(credential, "HttpProfile", functools.partial(HttpProfile, protocol="http"))


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_get_caller_identity(sim, method):
    who = sts(sim, method).GetCallerIdentity(sts_models.GetCallerIdentityRequest())
    assert who.Type == "CAMUser"
    assert who.AccountId.isdigit() and len(who.AccountId) == 12
    assert who.Arn == "qcs::cam::uin/%s:uin/%s" % (who.AccountId, who.AccountId)
    assert who.RequestId


def test_assume_role_typed_client(sim, roles):
    c = sts(sim)
    resp = c.AssumeRole(req(sts_models.AssumeRoleRequest, RoleArn=ROLE, RoleSessionName="py-session",
                            DurationSeconds=900))
    now = int(time.time())
    assert now + 890 <= resp.ExpiredTime <= now + 910
    assert resp.Expiration.endswith("Z")
    tmp = resp.Credentials
    assert tmp.TmpSecretId.startswith("AKID") and tmp.TmpSecretKey and tmp.Token

    # The temporary credentials act in the role's account.
    role_cred = credential.Credential(tmp.TmpSecretId, tmp.TmpSecretKey, tmp.Token)
    who = sts(sim, cred=role_cred).GetCallerIdentity(sts_models.GetCallerIdentityRequest())
    assert (who.Type, who.AccountId, who.PrincipalId) == ("CAMRole", TARGET, roles)
    assert who.UserId.endswith(":py-session")
    in_role = cvm_with(sim, role_cred)
    run = models.RunInstancesRequest()
    run.from_json_string(json.dumps({"Placement": {"Zone": ZONE}, "ImageId": IMAGE, "InstanceType": "S5.SMALL1"}))
    iid = in_role.RunInstances(run).InstanceIdSet[0]
    assert [i.InstanceId for i in in_role.DescribeInstances(models.DescribeInstancesRequest()).InstanceSet] == [iid]
    assert make_client(sim, "POST").DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 0

    # A wrong token is refused.
    forged = cvm_with(sim, credential.Credential(tmp.TmpSecretId, tmp.TmpSecretKey, "not-the-token"))
    expect_error(lambda: forged.DescribeZones(models.DescribeZonesRequest()), "AuthFailure.TokenFailure")

    expect_error(lambda: c.AssumeRole(req(sts_models.AssumeRoleRequest, RoleArn=ROLE.replace("py-role", "nobody"),
                                          RoleSessionName="s1")), "ResourceNotFound.RoleNotFound")
    expect_error(lambda: c.AssumeRole(req(sts_models.AssumeRoleRequest, RoleArn=ROLE, RoleSessionName="s1",
                                          DurationSeconds=43201)), "InvalidParameter.OverTimeError")
    expect_error(lambda: c.AssumeRole(req(sts_models.AssumeRoleRequest, RoleArn=ROLE, RoleSessionName="a b")),
                 "InvalidParameter.ParamError")


def test_sdk_assume_role_provider(sim, roles, sdk_sts_over_http):
    cred = credential.STSAssumeRoleCredential(SIM_ID, SIM_KEY, ROLE, "py-provider", 900, endpoint=sim.host)
    c = cvm_with(sim, cred)
    assert c.DescribeZones(models.DescribeZonesRequest()).TotalCount > 0
    assert c.DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 0
    st = sim.stats()
    assert st["calls"].get("AssumeRole") == 1, st
    assert not st["errors"], st


def test_sdk_tke_oidc_provider(sim, roles, sdk_sts_over_http, monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(OIDC_TOKEN)
    for k, v in {"TKE_REGION": REGION, "TKE_PROVIDER_ID": "tke-oidc",
                 "TKE_WEB_IDENTITY_TOKEN_FILE": str(token_file), "TKE_ROLE_ARN": ROLE}.items():
        monkeypatch.setenv(k, v)
    cred = credential.DefaultTkeOIDCRoleArnProvider().get_credentials()
    cred.endpoint = sim.host
    c = cvm_with(sim, cred)
    assert c.DescribeZones(models.DescribeZonesRequest()).TotalCount > 0
    who = sts(sim, cred=cred).GetCallerIdentity(sts_models.GetCallerIdentityRequest())
    assert (who.Type, who.AccountId) == ("CAMRole", TARGET)
    st = sim.stats()
    assert st["calls"].get("AssumeRoleWithWebIdentity") == 1 and not st["errors"], st

    # The SDK sends it unsigned (Authorization: SKIP); an unknown token is refused.
    token_file.write_text("someone-elses-token")
    other = credential.DefaultTkeOIDCRoleArnProvider().get_credentials()
    other.endpoint = sim.host
    expect_error(lambda: other.secret_id, "InvalidParameter.WebIdentityTokenError")


def test_sdk_cvm_role_provider(sim, roles):
    cred = credential.CVMRoleCredential()
    cred._role_endpoint = "http://%s/latest/meta-data/cam/security-credentials/" % sim.host
    assert cred.get_credential() is cred
    assert cred.role == "py-node"
    c = cvm_with(sim, cred)
    assert c.DescribeZones(models.DescribeZonesRequest()).TotalCount > 0
    who = sts(sim, cred=cred).GetCallerIdentity(sts_models.GetCallerIdentityRequest())
    assert (who.Type, who.AccountId) == ("CAMRole", TARGET)
    assert sim.stats()["metadata"] >= 2


# ------------------------------------------------- the documentation's signing, by hand


def sign_headers(secret_key, headers, body, timestamp, service="cvm"):
    """TC3 over any list of signed headers, names and values lower-cased as the documentation's
    current example does (`x-tc-action:describeinstances`); independent of the SDK."""
    names = sorted(k.lower() for k in headers)
    canonical_headers = "".join("%s:%s\n" % (k.lower(), v.strip().lower())
                                for k, v in sorted(headers.items(), key=lambda kv: kv[0].lower()))
    canonical = "\n".join(["POST", "/", "", canonical_headers, ";".join(names), hashlib.sha256(body).hexdigest()])
    date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    scope = "%s/%s/tc3_request" % (date, service)
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return canonical, scope, ";".join(names), hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()


def test_documentation_vector_signing_the_action():
    body = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    canonical, _, signed, sig = sign_headers(
        "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        {"Content-Type": "application/json; charset=utf-8", "Host": "cvm.tencentcloudapi.com",
         "X-TC-Action": "DescribeInstances"}, body, 1551113065)
    assert signed == "content-type;host;x-tc-action"
    # The canonical-request hash the documentation publishes.
    assert hashlib.sha256(canonical.encode()).hexdigest() == \
        "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
    # The same value src/cloud/sign.rs asserts (documentation_vector_signing_the_action).
    assert sig == "644be983de9a8a3f00db8eadaba61467c3b429e2215758ba897b738ca469fd26"


def send_signed_action(sim, signed_action, sent_action, body):
    ts = int(time.time())
    signed = {"Content-Type": "application/json", "Host": sim.host, "X-TC-Action": signed_action,
              "X-TC-Region": REGION}
    _, scope, names, sig = sign_headers(SIM_KEY, signed, body, ts)
    headers = dict(signed, **{"X-TC-Action": sent_action, "X-TC-Version": "2017-03-12",
                              "X-TC-Timestamp": str(ts),
                              "Authorization": "TC3-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
                                               % (SIM_ID, scope, names, sig)})
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        conn.request("POST", "/", body=body, headers=headers)
        doc = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return doc["Response"].get("Error", {}).get("Code", "<success>")


def test_signed_action_cannot_be_swapped(sim):
    c = make_client(sim, "POST")
    run = models.RunInstancesRequest()
    run.from_json_string(json.dumps({"Placement": {"Zone": ZONE}, "ImageId": IMAGE, "InstanceType": "S5.SMALL1"}))
    iid = c.RunInstances(run).InstanceIdSet[0]
    body = json.dumps({"InstanceIds": [iid]}).encode()
    # Signed with the action, the signature holds (any refusal is about the instance's state) …
    as_signed = send_signed_action(sim, "StartInstances", "StartInstances", body)
    assert not as_signed.startswith("AuthFailure"), as_signed
    # … and refused when the action is swapped after signing.
    assert send_signed_action(sim, "StartInstances", "TerminateInstances", body) == "AuthFailure.SignatureFailure"
    assert sim.stats()["calls"].get("TerminateInstances") == 1
    assert sim.stats()["states"].get("TERMINATING", 0) == 0
